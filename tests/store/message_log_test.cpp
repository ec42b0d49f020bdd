// A message's log and its delivery attempts kept with it (message_log.h): read
// back with the message, bounded, carried by the intake journal, pruned with
// the message, and no row at all for a message that has nothing to say.
#include <catch2/catch.hpp>
#include <sqlite3.h>

#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "engine/store/message_store.h"
#include "engine/store/sqlite/intake_journal.h"
#include "tests/store/store_test_support.h"

using namespace junction::store;
using namespace std::chrono_literals;
using junction::testing::insertSync;

namespace {

struct Dir : junction::testing::TempFolder {
    Dir() : TempFolder("msglog-test") {}
};

// Rows of the log (4) and attempts (5) kinds in every content table, for one message.
std::int64_t logRows(const std::string& db, MessageId id) {
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    std::vector<std::string> tables;
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(h, "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'content_%'", -1,
                               &st, nullptr) == SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    sqlite3_finalize(st);
    std::int64_t n = 0;
    for (const auto& t : tables) {
        std::string sql = "SELECT count(*) FROM " + t + " WHERE kind IN (4, 5) AND message_id = " + std::to_string(id);
        REQUIRE(sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
        if (sqlite3_step(st) == SQLITE_ROW) n += sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return n;
}

StoreOptions options(bool journal) {
    StoreOptions o;
    o.synchronousFull = false;
    o.journal = journal;
    return o;
}

NewMessage message(const std::string& raw) {
    NewMessage m;
    m.channel = "ch";
    m.source = "test";
    m.raw = raw;
    return m;
}

ProcessedMessage outcome(std::vector<LogEntry> log, bool queued = true) {
    ProcessedMessage p;
    p.channel = "ch";
    p.status = queued ? Status::Transformed : Status::Filtered;
    if (queued) {
        ProcessedMessage::Delivery d;
        d.destination = "emr";
        d.status = Status::Queued;
        d.encoded = "encoded";
        p.deliveries.push_back(d);
    }
    p.log = std::move(log);
    return p;
}

DeliveryUpdate attempt(MessageId id, Status status, int attempts, const std::string& error = {}) {
    DeliveryUpdate u;
    u.id = id;
    u.channel = "ch";
    u.destination = "emr";
    u.status = status;
    u.attempts = attempts;
    u.error = error;
    u.only = true;
    if (status == Status::Queued) u.nextAttempt = Clock::now() + 1s;
    return u;
}

// A message stored with its outcome: one delivery to "emr", queued.
MessageId queuedMessage(MessageStore& s, const std::string& raw, std::vector<LogEntry> log = {}) {
    auto m = message(raw);
    m.processed = outcome(std::move(log));
    return insertSync(s, std::move(m));
}

LogEntry line(const std::string& stage, LogLevel level, const std::string& text) { return {Clock::now(), stage, level, text}; }

}  // namespace

TEST_CASE("a filtered message keeps its reason and its script lines in its log", "[store][msglog]") {
    for (bool journal : {true, false}) {
        INFO("journal " << journal);
        Dir dir;
        auto store = openSqliteStore(dir.db(), options(journal));
        auto m = message("MSH|1");
        m.processed = outcome({line("transform", LogLevel::Warn, "x.lua:3: no PID-3\tat all\nreally"),
                               line("filter", LogLevel::Info, "filtered: not a CT order")},
                              false);
        MessageId id = insertSync(*store, std::move(m));
        store->flush();
        auto d = store->get(id);
        REQUIRE(d);
        REQUIRE(d->log.size() == 2);
        CHECK(d->log[0].stage == "transform");
        CHECK(d->log[0].level == LogLevel::Warn);
        CHECK(d->log[0].text == "x.lua:3: no PID-3\tat all\nreally");
        CHECK(d->log[1].stage == "filter");
        CHECK(d->log[1].text == "filtered: not a CT order");
        CHECK(d->log[1].time >= d->log[0].time);
        CHECK(logRows(dir.db(), id) == 1);
    }
}

TEST_CASE("a destination's failed attempts are kept, the successful one is the delivery itself", "[store][msglog]") {
    for (bool separate : {true, false}) {
        INFO("processed after the insert " << separate);
        Dir dir;
        auto store = openSqliteStore(dir.db(), options(!separate));
        MessageId id;
        if (separate) {
            id = insertSync(*store, message("MSH|2"));
            auto p = outcome({});
            p.id = id;
            store->recordProcessed(p);
        } else {
            id = queuedMessage(*store, "MSH|2");
        }
        store->recordDelivery(attempt(id, Status::Queued, 1, "connection refused"));
        store->recordDelivery(attempt(id, Status::Queued, 2, "connection refused again"));
        auto last = attempt(id, Status::Sent, 3);
        last.log = {line("destination:emr", LogLevel::Info, "response: AA")};
        store->recordDelivery(last);
        store->flush();
        auto d = store->get(id);
        REQUIRE(d);
        REQUIRE(d->deliveries.size() == 1);
        const auto& h = d->deliveries[0].history;
        REQUIRE(h.size() == 3);
        CHECK(h[0].status == Status::Queued);
        CHECK(h[0].error == "connection refused");
        CHECK(h[1].status == Status::Queued);
        CHECK(h[1].error == "connection refused again");
        CHECK(h[2].status == Status::Sent);
        CHECK(h[2].error.empty());
        REQUIRE(d->log.size() == 1);
        CHECK(d->log[0].stage == "destination:emr");
    }
}

TEST_CASE("a message delivered at once with nothing to say costs no log row", "[store][msglog]") {
    Dir dir;
    auto store = openSqliteStore(dir.db(), options(true));
    MessageId id = queuedMessage(*store, "MSH|3");
    store->recordDelivery(attempt(id, Status::Sent, 1));
    store->flush();
    CHECK(logRows(dir.db(), id) == 0);
    auto d = store->get(id);
    REQUIRE(d);
    CHECK(d->log.empty());
    REQUIRE(d->deliveries.at(0).history.size() == 1);
    CHECK(d->deliveries[0].history[0].status == Status::Sent);
}

TEST_CASE("a failed delivery keeps its last attempt with the error", "[store][msglog]") {
    Dir dir;
    auto store = openSqliteStore(dir.db(), options(true));
    MessageId id = queuedMessage(*store, "MSH|4");
    store->recordDelivery(attempt(id, Status::Queued, 1, "timeout"));
    store->recordDelivery(attempt(id, Status::Error, 2, "rejected: AR"));
    store->flush();
    auto h = store->get(id)->deliveries.at(0).history;
    REQUIRE(h.size() == 2);
    CHECK(h[1].status == Status::Error);
    CHECK(h[1].error == "rejected: AR");
}

TEST_CASE("the log is bounded per stage and per line, and says what it left out", "[store][msglog]") {
    std::vector<LogEntry> many;
    for (std::size_t i = 0; i < kLogLinesPerStage + 10; ++i) many.push_back(line("transform", LogLevel::Info, "line " + std::to_string(i)));
    many.push_back(line("filter", LogLevel::Info, std::string(5000, 'x')));
    auto back = decodeLog(encodeLog(many));
    std::size_t transform = 0;
    std::string marker, longLine;
    for (const auto& e : back) {
        if (e.stage == "transform") {
            ++transform;
            if (e.text.find("not kept") != std::string::npos) marker = e.text;
        }
        if (e.stage == "filter") longLine = e.text;
    }
    CHECK(transform == kLogLinesPerStage + 1);  // 50 and the marker
    CHECK(marker.find("10 more line(s)") != std::string::npos);
    CHECK(longLine.size() < 2200);
    CHECK(longLine.rfind(std::string(kLogLineBytes, 'x'), 0) == 0);
    CHECK(longLine.find("[cut: 5000 bytes in all]") != std::string::npos);
}

TEST_CASE("the intake journal carries a processed message's log", "[store][msglog]") {
    auto m = message("MSH|5");
    m.processed = outcome({line("source", LogLevel::Error, "bad\\thing\r\n")});
    m.processed->id = 7;
    auto rec = decodeRecord(encodeRecord(7, 1000, m));
    REQUIRE(rec.message.processed);
    REQUIRE(rec.message.processed->log.size() == 1);
    CHECK(rec.message.processed->log[0].text == "bad\\thing\r\n");
    CHECK(rec.message.processed->log[0].level == LogLevel::Error);
    CHECK_FALSE(rec.message.mark);
    // with a mark too
    m.mark = SourceMark{"k", "v"};
    rec = decodeRecord(encodeRecord(7, 1000, m));
    REQUIRE(rec.message.mark);
    CHECK(rec.message.mark->value == "v");
    CHECK(rec.message.processed->log.size() == 1);
    // without a log: the record is as before
    m.processed->log.clear();
    m.mark.reset();
    CHECK(decodeRecord(encodeRecord(7, 1000, m)).message.processed->log.empty());
}

TEST_CASE("pruning a message removes its log and attempts", "[store][msglog]") {
    Dir dir;
    auto store = openSqliteStore(dir.db(), options(false));
    auto m = message("MSH|6");
    m.receivedAt = Clock::now() - 72h;
    m.processed = outcome({line("transform", LogLevel::Info, "hello")});
    MessageId old = insertSync(*store, std::move(m));
    store->recordDelivery(attempt(old, Status::Queued, 1, "down"));
    store->recordDelivery(attempt(old, Status::Sent, 2));
    // Another message of that day still waits for its delivery: the day's
    // content table stays, the pruned message's rows go one by one.
    auto waiting = message("MSH|6b");
    waiting.receivedAt = Clock::now() - 72h + 1s;
    waiting.processed = outcome({line("transform", LogLevel::Info, "waiting")});
    MessageId held = insertSync(*store, std::move(waiting));
    auto fresh = message("MSH|7");
    fresh.processed = outcome({line("transform", LogLevel::Info, "hello")});
    MessageId kept = insertSync(*store, std::move(fresh));
    store->recordDelivery(attempt(kept, Status::Queued, 1, "down"));
    store->recordDelivery(attempt(kept, Status::Sent, 2));
    store->flush();
    CHECK(logRows(dir.db(), old) == 2);
    CHECK(store->prune("", Clock::now() - 24h) == 1);
    CHECK(logRows(dir.db(), old) == 0);
    CHECK(logRows(dir.db(), kept) == 2);
    CHECK(logRows(dir.db(), held) == 1);
    CHECK(store->get(kept)->log.size() == 1);
}
