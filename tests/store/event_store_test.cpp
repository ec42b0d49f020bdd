// The event log (engine/store/event_store.h): events written by its thread
// and read newest first, filtered, paged by id, pruned by age, kept across a
// reopen, in the message store's database file.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "engine/store/event_store.h"
#include "engine/store/message_store.h"

using namespace junction::store;
using namespace std::chrono_literals;

namespace {

struct Dir {
    std::string path;
    Dir() {
        char tmpl[] = "/tmp/junction-events-test-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~Dir() { std::filesystem::remove_all(path); }
};

std::vector<std::int64_t> ids(const std::vector<Event>& events) {
    std::vector<std::int64_t> out;
    for (const auto& e : events) out.push_back(e.id);
    return out;
}

}  // namespace

TEST_CASE("event log: write, read newest first, filter, page by id", "[store][events]") {
    Dir d;
    const std::string db = d.path + "/junction.db";
    auto messages = openSqliteStore(db);  // the same file as the message store
    auto events = openSqliteEvents(db, false);
    events->record({0, {}, "channel.started", "ris", "", "", "mllp :6661"});
    events->record({0, {}, "login.failed", "", "alice", "10.0.0.7", "GET /api/v1/stats: 401"});
    events->record({0, {}, "channel.stopped", "ris", "", "", ""});
    events->record({0, {}, "api.post", "ris", "alice", "10.0.0.7", "POST /api/v1/channels/ris/stop: 200"});
    auto all = events->list({});
    REQUIRE(all.size() == 4);
    CHECK(ids(all) == std::vector<std::int64_t>{4, 3, 2, 1});
    CHECK(all[0].type == "api.post");
    CHECK(all[0].user == "alice");
    CHECK(all[0].address == "10.0.0.7");
    CHECK(all[3].text == "mllp :6661");
    CHECK(std::chrono::system_clock::now() - all[0].time < 1min);

    CHECK(ids(events->list({"login.failed"})) == std::vector<std::int64_t>{2});
    CHECK(ids(events->list({"channel."})) == std::vector<std::int64_t>{3, 1});  // a prefix ending in '.'
    CHECK(events->list({"channel"}).empty());                                 // else the exact type
    CHECK(ids(events->list({"", "ris"})) == std::vector<std::int64_t>{4, 3, 1});
    CHECK(ids(events->list({"", "", "alice"})) == std::vector<std::int64_t>{4, 2});

    EventQuery page;
    page.limit = 2;
    auto first = events->list(page);
    CHECK(ids(first) == std::vector<std::int64_t>{4, 3});
    page.beforeId = first.back().id;
    CHECK(ids(events->list(page)) == std::vector<std::int64_t>{2, 1});
    page.beforeId = 1;
    CHECK(events->list(page).empty());
    CHECK(events->dropped() == 0);
}

TEST_CASE("event log: pruned by age, kept across a reopen", "[store][events]") {
    Dir d;
    const std::string db = d.path + "/junction.db";
    const auto now = std::chrono::system_clock::now();
    {
        auto events = openSqliteEvents(db, true);
        events->record({0, now - 100 * 24h, "channel.started", "old", "", "", ""});
        events->record({0, now - 91 * 24h, "channel.stopped", "old", "", "", ""});
        events->record({0, now - 1h, "channel.started", "new", "", "", ""});
        events->record({0, {}, "prune", "", "", "", "removed 0 message(s)"});
        CHECK(events->prune(now - 90 * 24h) == 2);
        CHECK(events->prune(now - 90 * 24h) == 0);
    }
    auto events = openSqliteEvents(db, true);
    auto left = events->list({});
    REQUIRE(left.size() == 2);
    CHECK(left[0].type == "prune");
    CHECK(left[1].channel == "new");
    // Ids go on from the highest ever given (a pruned id is not given again).
    events->record({0, {}, "channel.stopped", "new", "", "", ""});
    CHECK(events->list({}).front().id == 5);
}
