// The durable key-value table (the Lua store module): values kept across a
// reopen, binary-safe values, deletes, prefix listing that stops at the
// prefix's end, and a database shared with the message store.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "engine/store/key_value_store.h"
#include "engine/store/message_store.h"

using namespace junction::store;

TEST_CASE("key-value table: put, get, delete, keys by prefix, kept across a reopen", "[store][kv]") {
    char tmpl[] = "/tmp/junction-kv-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    const std::string db = dir + "/junction.db";
    {
        auto messages = openSqliteStore(db);  // the same file as the message store
        auto kv = openSqliteKeyValues(db, true);
        CHECK_FALSE(kv->get("a.1"));
        kv->put("a.1", "one");
        kv->put("a.2", std::string("t\0o", 3));
        kv->put("a.2", std::string("tw\0o", 4));  // replaced
        kv->put("b.1", "other");
        kv->put("a", "prefix itself");
        CHECK(kv->get("a.1") == std::optional<std::string>("one"));
        CHECK(kv->keys("a.", 10) == std::vector<std::string>{"a.1", "a.2"});
        CHECK(kv->keys("a", 10) == std::vector<std::string>{"a", "a.1", "a.2"});
        CHECK(kv->keys("a.", 1) == std::vector<std::string>{"a.1"});
        CHECK(kv->keys("", 10).size() == 4);
        CHECK(kv->remove("a.1"));
        CHECK_FALSE(kv->remove("a.1"));
    }
    {
        auto kv = openSqliteKeyValues(db, true);
        CHECK_FALSE(kv->get("a.1"));
        CHECK(kv->get("a.2") == std::optional<std::string>(std::string("tw\0o", 4)));
        CHECK(kv->get("b.1") == std::optional<std::string>("other"));
    }
    std::filesystem::remove_all(dir);
}
