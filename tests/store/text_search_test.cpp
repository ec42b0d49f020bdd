// Searching the raw content (SearchQuery::text): through the text index, by
// reading the content of the messages it does not cover, after prune, and for
// storage modes that keep no raw content.
#include <catch2/catch.hpp>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "engine/store/message_store.h"
#include "tests/store/store_test_support.h"

using namespace junction::store;
using namespace std::chrono_literals;

namespace {

struct TextDir {
    std::string path;
    TextDir() {
        char tmpl[] = "/tmp/junction-text-test-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TextDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string db() const { return path + "/store.db"; }
};

StoreOptions textOptions(bool index) {
    StoreOptions o;
    o.synchronousFull = false;
    o.textIndex = index;
    return o;
}

MessageId put(MessageStore& s, const std::string& raw, StorageMode mode = StorageMode::Development,
              const std::string& channel = "orders", std::optional<Clock::time_point> at = {}) {
    NewMessage m;
    m.channel = channel;
    m.source = "test";
    m.raw = raw;
    m.storage = mode;
    m.receivedAt = at;
    return junction::testing::insertSync(s, std::move(m));
}

// Processed with no destination (Filtered): finished, prunable.
void finish(MessageStore& s, MessageId id, StorageMode mode = StorageMode::Development,
            const std::string& channel = "orders") {
    ProcessedMessage pm;
    pm.id = id;
    pm.channel = channel;
    pm.status = Status::Filtered;
    pm.storage = mode;
    std::promise<bool> p;
    auto f = p.get_future();
    s.recordProcessed(std::move(pm), [&](bool ok, const std::string&) { p.set_value(ok); });
    REQUIRE(f.get());
}

std::vector<MessageId> found(MessageStore& s, const std::string& text, MessageId before = 0, int limit = 100,
                             const std::string& channel = {}) {
    SearchQuery q;
    q.text = text;
    q.beforeId = before;
    q.limit = limit;
    q.channel = channel;
    std::vector<MessageId> ids;
    for (const auto& m : s.search(q)) ids.push_back(m.id);
    return ids;
}

std::int64_t scalar(const std::string& db, const std::string& sql) {
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_busy_timeout(h, 10000);  // the store's threads write meanwhile
    sqlite3_stmt* st = nullptr;
    std::int64_t v = -1;
    if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

std::string textTableOf(Clock::time_point tp) {
    using namespace std::chrono;
    year_month_day ymd{floor<days>(tp)};
    char buf[32];
    std::snprintf(buf, sizeof buf, "t_%04d%02u%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                  static_cast<unsigned>(ymd.day()));
    return buf;
}

std::int64_t tables(const std::string& db, const std::string& name) {
    return scalar(db, "SELECT count(*) FROM sqlite_master WHERE name = '" + name + "'");
}

// Rows of the text index of the day of `tp` (-1: no table).
std::int64_t indexed(const std::string& db, Clock::time_point tp) {
    return scalar(db + "-text", "SELECT count(*) FROM " + textTableOf(tp));
}

void execute(const std::string& db, const std::string& sql) {
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    CHECK(sqlite3_exec(h, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(h);
}

const std::string kOrm =
    "MSH|^~\\&|RIS|HOSP|PACS|HOSP|20240101120000||ORM^O01|CTRL1|P|2.5\rPID|1||P100^^^HOSP||Smith^John\r"
    "ORC|NW|ACC1\rOBR|1|ACC1||CTCHEST^CT Chest";

}  // namespace

TEST_CASE("text search finds a substring of the raw content in any case, taken literally", "[store][text]") {
    TextDir dir;
    auto store = openSqliteStore(dir.db(), textOptions(true));
    MessageId smith = put(*store, kOrm);
    MessageId jones = put(*store, "MSH|^~\\&|RIS\rPID|1||P200^^^HOSP||JONES^MARY\rOBR|1|ACC2||MRHEAD^MR Head");
    MessageId sqlish = put(*store, "MSH|^~\\&|RIS\rNTE|1||'; DROP TABLE messages; -- and \"a\" OR b* 100%_x");
    MessageId other = put(*store, "MSH|^~\\&|LAB\rNTE|1||a b ab bb OR 100%ax 100a_x", StorageMode::Development, "labs");
    auto checks = [&] {
        CHECK(found(*store, "smith^john") == std::vector<MessageId>{smith});
        CHECK(found(*store, "SMITH") == std::vector<MessageId>{smith});
        CHECK(found(*store, "mr head") == std::vector<MessageId>{jones});
        CHECK(found(*store, "MSH|^~\\&|RIS") == std::vector<MessageId>{sqlish, jones, smith});  // newest first
        CHECK(found(*store, "'; DROP") == std::vector<MessageId>{sqlish});
        CHECK(found(*store, "\"a\" OR b*") == std::vector<MessageId>{sqlish});
        CHECK(found(*store, "a\" OR") == std::vector<MessageId>{sqlish});
        CHECK(found(*store, "100%_x") == std::vector<MessageId>{sqlish});  // not LIKE's wildcards
        CHECK(found(*store, "0%a") == std::vector<MessageId>{other});
        CHECK(found(*store, "nowhere to be found").empty());
        CHECK(found(*store, "MSH|^~\\&|").size() == 4);
        // with the other conditions and keyset paging
        CHECK(found(*store, "MSH|", 0, 100, "labs") == std::vector<MessageId>{other});
        CHECK(found(*store, "MSH|^~\\&|RIS", sqlish) == std::vector<MessageId>{jones, smith});
        CHECK(found(*store, "MSH|^~\\&|RIS", 0, 2) == std::vector<MessageId>{sqlish, jones});
        CHECK(found(*store, "b*") == std::vector<MessageId>{sqlish});  // shorter than a trigram
    };
    checks();  // Received: read
    for (MessageId id : {smith, jones, sqlish}) finish(*store, id);
    finish(*store, other, StorageMode::Development, "labs");
    checks();  // whether or not the index has them yet
    store->catchUpTextIndex();
    CHECK(indexed(dir.db(), Clock::now()) == 4);
    checks();
}

TEST_CASE("a message is found through the index once it is indexed, by reading its content before", "[store][text]") {
    TextDir dir;
    StoreOptions o = textOptions(true);
    o.journal = false;  // the raw content in a content row of the store, changed below behind its back
    auto store = openSqliteStore(dir.db(), o);
    MessageId id = put(*store, kOrm, StorageMode::Production);
    finish(*store, id, StorageMode::Production);
    CHECK(found(*store, "smith^john") == std::vector<MessageId>{id});
    store->catchUpTextIndex();
    CHECK(indexed(dir.db(), Clock::now()) == 1);
    execute(dir.db(), "UPDATE " + textTableOf(Clock::now()).replace(0, 2, "content_") +
                          " SET data = 'nothing' WHERE kind = 0");
    CHECK(found(*store, "smith^john") == std::vector<MessageId>{id});  // the index's copy
    // past the index: read
    MessageId later = put(*store, kOrm, StorageMode::Production);
    finish(*store, later, StorageMode::Production);
    CHECK(found(*store, "smith^john").at(0) == later);
}

TEST_CASE("the text index is made in the background, dropped when turned off, made again when on", "[store][text]") {
    TextDir dir;
    MessageId first;
    {
        auto store = openSqliteStore(dir.db(), textOptions(false));
        first = put(*store, kOrm);
        finish(*store, first);
        CHECK(found(*store, "smith^JOHN") == std::vector<MessageId>{first});
        CHECK_FALSE(std::filesystem::exists(dir.db() + "-text"));
    }
    {
        auto store = openSqliteStore(dir.db(), textOptions(true));
        MessageId second = put(*store, kOrm);
        finish(*store, second);
        CHECK(found(*store, "smith^JOHN") == std::vector<MessageId>{second, first});
        store->catchUpTextIndex();
        CHECK(indexed(dir.db(), Clock::now()) == 2);  // the older one too
        CHECK(found(*store, "smith^JOHN", second) == std::vector<MessageId>{first});
    }
    auto store = openSqliteStore(dir.db(), textOptions(false));
    CHECK_FALSE(std::filesystem::exists(dir.db() + "-text"));
    CHECK(found(*store, "smith^JOHN").size() == 2);
}

TEST_CASE("a read-only store searches through a running store's text index", "[store][text]") {
    TextDir dir;
    auto store = openSqliteStore(dir.db(), textOptions(true));
    MessageId id = put(*store, kOrm);
    store->catchUpTextIndex();
    StoreOptions ro;
    ro.readOnly = true;
    auto reader = openSqliteStore(dir.db(), ro);
    CHECK(found(*reader, "ctchest") == std::vector<MessageId>{id});
    MessageId later = put(*store, kOrm);
    store->flush();
    CHECK(found(*reader, "ctchest") == std::vector<MessageId>{later, id});
}

TEST_CASE("storage modes that keep no raw content put nothing in the text index", "[store][text]") {
    TextDir dir;
    auto store = openSqliteStore(dir.db(), textOptions(true));
    MessageId meta = put(*store, kOrm, StorageMode::Metadata);
    MessageId disabled = put(*store, kOrm, StorageMode::Disabled);
    // kept at insert, not once processed (the channel's storage changed meanwhile)
    MessageId changed = put(*store, kOrm);
    store->catchUpTextIndex();  // passed while Received: deferred
    CHECK(found(*store, "smith") == std::vector<MessageId>{changed, disabled, meta});  // raw kept until processed
    finish(*store, meta, StorageMode::Metadata);
    finish(*store, disabled, StorageMode::Disabled);
    finish(*store, changed, StorageMode::Metadata);
    MessageId kept = put(*store, kOrm, StorageMode::Production);
    finish(*store, kept, StorageMode::Production);
    CHECK(found(*store, "smith") == std::vector<MessageId>{kept});
    store->catchUpTextIndex();
    CHECK(found(*store, "smith") == std::vector<MessageId>{kept});
    CHECK(found(*store, "sm") == std::vector<MessageId>{kept});  // read: the same answer
    CHECK(indexed(dir.db(), Clock::now()) == 1);
    CHECK(scalar(dir.db() + "-text", "SELECT count(*) FROM deferred") == 0);
}

TEST_CASE("prune takes the pruned messages out of the text index", "[store][text]") {
    TextDir dir;
    auto store = openSqliteStore(dir.db(), textOptions(true));
    auto now = Clock::now();
    auto day3 = now - 72h, day2 = now - 48h;
    std::vector<MessageId> old3, old2;
    for (int i = 0; i < 5; ++i) {
        old3.push_back(put(*store, kOrm, StorageMode::Development, "orders", day3 + std::chrono::seconds(i)));
        finish(*store, old3.back());
    }
    for (int i = 0; i < 5; ++i) {
        old2.push_back(put(*store, kOrm, StorageMode::Development, "orders", day2 + std::chrono::seconds(i)));
        finish(*store, old2.back());
    }
    // another channel keeps day 2 alive
    MessageId lab = put(*store, kOrm, StorageMode::Development, "labs", day2 + 10s);
    finish(*store, lab, StorageMode::Development, "labs");
    MessageId fresh = put(*store, kOrm, StorageMode::Development, "orders", now);
    store->catchUpTextIndex();
    REQUIRE(found(*store, "smith").size() == 12);
    REQUIRE(indexed(dir.db(), day3) == 5);
    REQUIRE(indexed(dir.db(), day2) == 6);

    CHECK(store->prune("orders", now - 24h) == 10);
    CHECK(found(*store, "smith") == std::vector<MessageId>{fresh, lab});
    store->catchUpTextIndex();
    CHECK(tables(dir.db() + "-text", textTableOf(day3)) == 0);  // dropped with its day
    CHECK(tables(dir.db() + "-text", textTableOf(day3) + "_data") == 0);
    CHECK(indexed(dir.db(), day2) == 1);  // only the lab message's row
    CHECK(scalar(dir.db() + "-text", "SELECT rowid FROM " + textTableOf(day2)) == lab);
    CHECK(found(*store, "smith") == std::vector<MessageId>{fresh, lab});
}

namespace {

// The query plan of `where` in the shape MessageStore::search gives a search
// (sqlite_store_readers.cpp), as SQLite's EXPLAIN QUERY PLAN details joined by "; ".
std::string planOf(const std::string& db, const std::string& where) {
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_busy_timeout(h, 10000);
    std::string sql =
        "EXPLAIN QUERY PLAN SELECT m.id, m.channel, m.received_at, m.status, m.data_type, m.source, m.message_type,"
        " m.control_id, m.patient_id, m.accession, m.error FROM messages m WHERE 1" + where +
        " ORDER BY m.id DESC LIMIT ?9";
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
    std::string plan;
    while (sqlite3_step(st) == SQLITE_ROW)
        plan += std::string(plan.empty() ? "" : "; ") + reinterpret_cast<const char*>(sqlite3_column_text(st, 3));
    sqlite3_finalize(st);
    sqlite3_close(h);
    return plan;
}

}  // namespace

TEST_CASE("exact searches read an index in id order, with no sort", "[store][text]") {
    TextDir dir;
    { openSqliteStore(dir.db(), textOptions(true)); }
    struct Case {
        const char* where;
        const char* plan;
    };
    for (const Case& c : std::vector<Case>{
             {" AND m.control_id = ?1", "SEARCH m USING INDEX messages_control_id (control_id=?)"},
             {" AND m.patient_id = ?1", "SEARCH m USING INDEX messages_patient_id (patient_id=?)"},
             {" AND m.accession = ?1", "SEARCH m USING INDEX messages_accession (accession=?)"},
             {" AND m.patient_id = ?1 AND m.id < ?2", "SEARCH m USING INDEX messages_patient_id (patient_id=? AND rowid<?)"},
             {" AND m.accession = ?1 AND m.channel = ?2 AND m.id < ?3",
              "SEARCH m USING INDEX messages_accession (accession=? AND rowid<?)"},
             {" AND m.channel = ?1 AND m.id < ?2", "SEARCH m USING INDEX messages_channel (channel=? AND id<?)"},
             {" AND m.channel = ?1 AND m.status = 'Error'", "SEARCH m USING INDEX messages_error (channel=?)"},
             {" AND m.channel = ?1 AND m.status = 'Received' AND m.id < ?2",
              "SEARCH m USING INDEX messages_received (channel=? AND id<?)"},
             // A failed delivery: among the Error messages; few queued ones: from their partial index.
             {" AND m.channel = ?1 AND m.status = 'Error' AND EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id ="
              " m.id AND d.status = 'Error')",
              "SEARCH m USING INDEX messages_error (channel=?); CORRELATED SCALAR SUBQUERY 1; SEARCH d USING PRIMARY KEY "
              "(message_id=?)"},
             // Without a channel, a few Error messages: listed from their partial index.
             {" AND m.status = 'Error' AND m.id IN (SELECT id FROM messages WHERE status = 'Error')",
              "SEARCH m USING INTEGER PRIMARY KEY (rowid=?); LIST SUBQUERY 1; SCAN messages USING INDEX messages_error"},
             {" AND m.channel = ?1 AND m.id IN (SELECT d.message_id FROM deliveries d WHERE d.status = 'Queued'"
              " AND d.channel = ?1 AND d.destination = ?2)",
              "SEARCH m USING INDEX messages_channel (channel=? AND id=? AND rowid=?); LIST SUBQUERY 1; SEARCH d USING "
              "INDEX deliveries_queued (channel=?); USE TEMP B-TREE FOR ORDER BY"},
         }) {
        INFO(c.where);
        CHECK(planOf(dir.db(), c.where) == c.plan);
    }
}
