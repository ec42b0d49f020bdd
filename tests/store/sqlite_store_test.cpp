#include <catch2/catch.hpp>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <mutex>
#include <semaphore>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/store/message_store.h"

using namespace junction::store;
using namespace std::chrono_literals;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/junction-store-test-XXXXXX";
        char* p = mkdtemp(tmpl);
        REQUIRE(p != nullptr);
        path = p;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string db() const { return path + "/sub/dir/store.db"; }  // parent dirs created by the store
};

StoreOptions fastOptions() {
    StoreOptions o;
    o.synchronousFull = false;
    return o;
}

NewMessage makeMessage(const std::string& channel, const std::string& raw, StorageMode mode = StorageMode::Development) {
    NewMessage m;
    m.channel = channel;
    m.source = "test";
    m.raw = raw;
    m.storage = mode;
    return m;
}

MessageId insertSync(MessageStore& s, NewMessage m) {
    std::promise<std::pair<MessageId, std::string>> p;
    auto f = p.get_future();
    s.insert(std::move(m), [&](MessageId id, const std::string& err) { p.set_value({id, err}); });
    auto r = f.get();
    INFO(r.second);
    REQUIRE(r.first > 0);
    return r.first;
}

std::pair<bool, std::string> processedSync(MessageStore& s, ProcessedMessage pm) {
    std::promise<std::pair<bool, std::string>> p;
    auto f = p.get_future();
    s.recordProcessed(std::move(pm), [&](bool ok, const std::string& err) { p.set_value({ok, err}); });
    return f.get();
}

std::pair<bool, std::string> deliverySync(MessageStore& s, DeliveryUpdate up) {
    std::promise<std::pair<bool, std::string>> p;
    auto f = p.get_future();
    s.recordDelivery(std::move(up), [&](bool ok, const std::string& err) { p.set_value({ok, err}); });
    return f.get();
}

ProcessedMessage::Delivery queued(const std::string& dest, const std::string& encoded) {
    ProcessedMessage::Delivery d;
    d.destination = dest;
    d.status = Status::Queued;
    d.encoded = encoded;
    return d;
}

ProcessedMessage processed(MessageId id, const std::string& channel, std::vector<ProcessedMessage::Delivery> ds,
                           StorageMode mode = StorageMode::Development) {
    ProcessedMessage pm;
    pm.id = id;
    pm.channel = channel;
    pm.status = Status::Transformed;
    pm.transformed = "transformed-" + std::to_string(id);
    pm.storage = mode;
    pm.deliveries = std::move(ds);
    return pm;
}

DeliveryUpdate update(MessageId id, const std::string& channel, const std::string& dest, Status st,
                      StorageMode mode = StorageMode::Development) {
    DeliveryUpdate u;
    u.id = id;
    u.channel = channel;
    u.destination = dest;
    u.status = st;
    u.response = "response-" + dest;
    u.storage = mode;
    if (st == Status::Error) u.error = "peer said no";
    return u;
}

Status statusOf(MessageStore& s, MessageId id) {
    auto d = s.get(id);
    REQUIRE(d);
    return d->summary.status;
}

std::int64_t ms(Clock::time_point tp) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count();
}

std::string dayName(Clock::time_point tp) {
    using namespace std::chrono;
    year_month_day ymd{floor<days>(tp)};
    char buf[32];
    std::snprintf(buf, sizeof buf, "content_%04d%02u%02u", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
    return buf;
}

// Direct look at the database file (a separate connection).
struct RawDb {
    sqlite3* db = nullptr;
    explicit RawDb(const std::string& path) {
        REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    }
    ~RawDb() { sqlite3_close(db); }
    std::int64_t scalar(const std::string& sql) {
        sqlite3_stmt* st = nullptr;
        REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
        std::int64_t v = -1;
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return v;
    }
    std::string text(const std::string& sql) {
        sqlite3_stmt* st = nullptr;
        REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
        std::string v;
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            v = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        return v;
    }
    bool hasTable(const std::string& name) {
        return scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '" + name + "'") == 1;
    }
};

std::uint64_t countOf(MessageStore& s, const std::string& channel, Status st) {
    for (auto& [status, n] : s.countByStatus(channel))
        if (status == st) return n;
    return 0;
}

// For the source mark tests (at the end).

// The intake journal on (the default) or off (a store with a quota commits each insert itself).
StoreOptions options(bool journal, bool lingering = false) {
    StoreOptions o;
    o.synchronousFull = false;
    if (!journal) o.maxDatabaseBytes = 1u << 30;
    if (lingering) {  // the writer applies nothing until flushed
        o.maxBatchDelay = std::chrono::milliseconds(60000);
        o.maxBatchRows = 100000;
    }
    return o;
}

NewMessage withMark(const std::string& raw, const std::string& key, const std::string& value) {
    NewMessage m;
    m.channel = "studies";
    m.dataType = "json";
    m.source = "test";
    m.raw = raw;
    m.mark = SourceMark{key, value};
    return m;
}

void markSync(MessageStore& s, const std::string& key, const std::string& value) {
    std::promise<std::pair<bool, std::string>> p;
    auto f = p.get_future();
    s.saveMark({key, value}, [&](bool ok, const std::string& err) { p.set_value({ok, err}); });
    auto r = f.get();
    INFO(r.second);
    REQUIRE(r.first);
}

// The source_marks row of `key` as SQLite has it ("" when none).
std::string markOf(const std::string& db, const std::string& key) {
    return RawDb(db).text("SELECT value FROM source_marks WHERE key = '" + key + "'");
}

std::size_t messagesOf(MessageStore& s) {
    SearchQuery q;
    q.channel = "studies";
    q.limit = 10000;
    return s.search(q).size();
}

}  // namespace

TEST_CASE("status and storage mode strings round-trip", "[store]") {
    for (Status s : {Status::Received, Status::Filtered, Status::Transformed, Status::Queued, Status::Sent,
                     Status::Error})
        CHECK(parseStatus(toString(s)) == s);
    CHECK(parseStatus("sent") == Status::Sent);
    CHECK_FALSE(parseStatus("bogus"));
    CHECK(parseStorageMode("production") == StorageMode::Production);
    CHECK(parseStorageMode("Metadata") == StorageMode::Metadata);
    CHECK(parseStorageMode("disabled") == StorageMode::Disabled);
    CHECK(parseStorageMode("development") == StorageMode::Development);
    CHECK_FALSE(parseStorageMode("all"));
}

TEST_CASE("insert calls back with increasing ids", "[store]") {
    TempDir dir;
    auto store = openSqliteStore(dir.db(), fastOptions());
    std::mutex mu;
    std::vector<MessageId> ids;
    std::vector<std::string> errors;
    for (int i = 0; i < 200; ++i) {
        auto m = makeMessage("ch", "MSH|" + std::to_string(i));
        m.meta.controlId = "C" + std::to_string(i);
        store->insert(std::move(m), [&](MessageId id, const std::string& err) {
            std::lock_guard<std::mutex> lock(mu);
            ids.push_back(id);
            if (!err.empty()) errors.push_back(err);
        });
    }
    store->flush();
    std::lock_guard<std::mutex> lock(mu);
    REQUIRE(ids.size() == 200);
    CHECK(errors.empty());
    CHECK(ids.front() > 0);
    for (std::size_t i = 1; i < ids.size(); ++i) CHECK(ids[i] > ids[i - 1]);
    auto d = store->get(ids[7]);
    REQUIRE(d);
    CHECK(d->raw == "MSH|7");
    CHECK(d->summary.status == Status::Received);
    CHECK(d->summary.channel == "ch");
    CHECK(d->summary.meta.controlId == "C7");
    CHECK(d->summary.source == "test");
    CHECK(d->summary.dataType == "hl7v2");
    CHECK_FALSE(store->get(ids.back() + 1000));
    CHECK(store->stats().writes == 200);
}

TEST_CASE("recordProcessed queues deliveries", "[store]") {
    TempDir dir;
    auto store = openSqliteStore(dir.db(), fastOptions());
    MessageId id = insertSync(*store, makeMessage("ch", "raw"));
    CHECK(store->pendingMessages("ch", 10).size() == 1);

    auto r = processedSync(*store, processed(id, "ch", {queued("A", "enc-A"), queued("B", "enc-B")}));
    CHECK(r.first);
    CHECK(r.second.empty());
    CHECK(store->pendingMessages("ch", 10).empty());
    auto pd = store->pendingDeliveries("ch", 10);
    REQUIRE(pd.size() == 2);
    CHECK(pd[0].id == id);
    CHECK(pd[0].channel == "ch");
    CHECK(pd[0].destination == "A");
    CHECK(pd[0].encoded == "enc-A");
    CHECK(pd[0].attempts == 0);
    CHECK(pd[1].destination == "B");
    CHECK(pd[1].encoded == "enc-B");
    CHECK(store->pendingDeliveries("other", 10).empty());
    CHECK(store->pendingDeliveries("ch", 1).size() == 1);
    CHECK(statusOf(*store, id) == Status::Queued);
}

TEST_CASE("a destination's queue is read a page at a time, between two message ids", "[store]") {
    TempDir dir;
    auto store = openSqliteStore(dir.db(), fastOptions());
    CHECK(store->lastAssignedId() == 0);
    std::vector<MessageId> ids;
    for (int i = 0; i < 6; ++i) {
        ids.push_back(insertSync(*store, makeMessage("ch", "raw")));
        CHECK(store->lastAssignedId() == ids.back());  // once the insert is answered, committed or not
        processedSync(*store, processed(ids.back(), "ch", {queued("A", "enc-A"), queued("B", "enc-B")}));
    }
    auto idsOf = [](const std::vector<PendingDelivery>& page) {
        std::vector<MessageId> out;
        for (const auto& pd : page) out.push_back(pd.id);
        return out;
    };
    // After the first, up to the fourth: the second, third and fourth.
    CHECK(idsOf(store->pendingDeliveries("ch", "A", ids[0], ids[3], 10, false)) ==
          std::vector<MessageId>{ids[1], ids[2], ids[3]});
    CHECK(idsOf(store->pendingDeliveries("ch", "A", ids[0], ids[3], 2, false)) == std::vector<MessageId>{ids[1], ids[2]});
    CHECK(store->pendingDeliveries("ch", "A", ids[3], ids[3], 10, false).empty());
    CHECK(store->pendingDeliveries("ch", "", ids[4], ids[5], 10, false).size() == 2);  // A and B
}

TEST_CASE("delivery updates drive the message status", "[store]") {
    TempDir dir;
    auto store = openSqliteStore(dir.db(), fastOptions());

    SECTION("Sent + retry then Sent") {
        MessageId id = insertSync(*store, makeMessage("ch", "raw"));
        processedSync(*store, processed(id, "ch", {queued("A", "enc-A"), queued("B", "enc-B")}));
        CHECK(deliverySync(*store, update(id, "ch", "A", Status::Sent)).first);
        CHECK(statusOf(*store, id) == Status::Queued);

        auto retry = update(id, "ch", "B", Status::Queued);
        retry.attempts = 2;
        retry.error = "connection refused";
        auto next = Clock::now() + 90s;
        retry.nextAttempt = next;
        CHECK(deliverySync(*store, retry).first);
        CHECK(statusOf(*store, id) == Status::Queued);
        auto pd = store->pendingDeliveries("ch", 10);
        REQUIRE(pd.size() == 1);
        CHECK(pd[0].destination == "B");
        CHECK(pd[0].attempts == 2);
        CHECK(ms(pd[0].nextAttempt) == ms(next));
        CHECK(pd[0].encoded == "enc-B");

        CHECK(deliverySync(*store, update(id, "ch", "B", Status::Sent)).first);
        CHECK(statusOf(*store, id) == Status::Sent);
        CHECK(store->pendingDeliveries("ch", 10).empty());
        auto d = store->get(id);
        REQUIRE(d->deliveries.size() == 2);
        CHECK(d->deliveries[0].status == Status::Sent);
        CHECK(d->deliveries[1].status == Status::Sent);
        CHECK(d->deliveries[1].attempts == 1);
        CHECK_FALSE(d->deliveries[1].nextAttempt);
        CHECK(d->deliveries[1].updatedAt);
    }
    SECTION("an Error delivery makes the message Error") {
        MessageId id = insertSync(*store, makeMessage("ch", "raw"));
        processedSync(*store, processed(id, "ch", {queued("A", "enc-A"), queued("B", "enc-B")}));
        deliverySync(*store, update(id, "ch", "A", Status::Sent));
        deliverySync(*store, update(id, "ch", "B", Status::Error));
        CHECK(statusOf(*store, id) == Status::Error);
        auto d = store->get(id);
        CHECK(d->deliveries[1].error == "peer said no");
        CHECK(store->pendingDeliveries("ch", 10).empty());
    }
    SECTION("Error while another delivery waits") {
        MessageId id = insertSync(*store, makeMessage("ch", "raw"));
        processedSync(*store, processed(id, "ch", {queued("A", "enc-A"), queued("B", "enc-B")}));
        deliverySync(*store, update(id, "ch", "A", Status::Error));
        CHECK(statusOf(*store, id) == Status::Error);
        CHECK(store->pendingDeliveries("ch", 10).size() == 1);  // B still to send
    }
    SECTION("the only delivery of a message sets its status directly") {
        for (Status st : {Status::Queued, Status::Error, Status::Sent}) {
            MessageId id = insertSync(*store, makeMessage("ch", "raw"));
            processedSync(*store, processed(id, "ch", {queued("A", "enc-A")}));
            CHECK(statusOf(*store, id) == Status::Queued);
            auto up = update(id, "ch", "A", st);
            up.only = true;
            if (st == Status::Queued) up.nextAttempt = Clock::now() + 60s;
            CHECK(deliverySync(*store, up).first);
            INFO(toString(st));
            CHECK(statusOf(*store, id) == st);
            auto d = store->get(id);
            REQUIRE(d->deliveries.size() == 1);
            CHECK(d->deliveries[0].status == st);
        }
    }
    SECTION("processing outcomes without deliveries") {
        MessageId f = insertSync(*store, makeMessage("ch", "raw"));
        auto pm = processed(f, "ch", {});
        pm.status = Status::Filtered;
        processedSync(*store, pm);
        CHECK(statusOf(*store, f) == Status::Filtered);

        MessageId e = insertSync(*store, makeMessage("ch", "raw"));
        pm = processed(e, "ch", {});
        pm.status = Status::Error;
        pm.error = "transforms/x.lua:12: boom";
        processedSync(*store, pm);
        CHECK(statusOf(*store, e) == Status::Error);
        CHECK(store->get(e)->summary.error == "transforms/x.lua:12: boom");

        MessageId t = insertSync(*store, makeMessage("ch", "raw"));
        processedSync(*store, processed(t, "ch", {}));
        CHECK(statusOf(*store, t) == Status::Transformed);

        MessageId allFiltered = insertSync(*store, makeMessage("ch", "raw"));
        ProcessedMessage::Delivery fd;
        fd.destination = "A";
        fd.status = Status::Filtered;
        processedSync(*store, processed(allFiltered, "ch", {fd}));
        CHECK(statusOf(*store, allFiltered) == Status::Filtered);

        MessageId err = insertSync(*store, makeMessage("ch", "raw"));
        ProcessedMessage::Delivery ed;
        ed.destination = "A";
        ed.status = Status::Error;
        ed.error = "encode failed";
        processedSync(*store, processed(err, "ch", {ed, queued("B", "x")}));
        CHECK(statusOf(*store, err) == Status::Error);
    }
    SECTION("unparsable input stored as Error") {
        auto m = makeMessage("ch", "garbage");
        m.status = Status::Error;
        m.error = "not HL7";
        MessageId id = insertSync(*store, m);
        CHECK(statusOf(*store, id) == Status::Error);
        CHECK(store->pendingMessages("ch", 10).empty());
        CHECK(store->get(id)->raw == "garbage");
    }
}

TEST_CASE("delivery results in the batch of their message's insert are applied with it", "[store]") {
    TempDir dir;
    auto options = fastOptions();
    options.maxBatchDelay = 2s;  // what is submitted before a flush lands in one batch
    auto store = openSqliteStore(dir.db(), options);
    const auto next = Clock::now() + 60s;
    auto withOutcome = [](StorageMode mode) {
        auto m = makeMessage("ch", "raw", mode);
        m.processed = processed(0, "ch", {queued("A", "enc-A"), queued("B", "enc-B"), queued("C", "enc-C")}, mode);
        return m;
    };
    auto results = [&](MessageId id, StorageMode mode) {
        auto retry = update(id, "ch", "A", Status::Queued, mode);
        retry.attempts = 2;
        retry.error = "connection refused";
        retry.nextAttempt = next;
        store->recordDelivery(retry, nullptr);
        auto sent = update(id, "ch", "B", Status::Queued, mode);
        sent.response.clear();
        store->recordDelivery(sent, nullptr);  // a first attempt without an answer, then the one that went through
        sent = update(id, "ch", "B", Status::Sent, mode);
        sent.attempts = 2;
        store->recordDelivery(sent, nullptr);
        store->recordDelivery(update(id, "ch", "C", Status::Error, mode), nullptr);
    };
    for (auto mode : {StorageMode::Development, StorageMode::Production, StorageMode::Metadata}) {
        INFO("storage " << toString(mode));
        MessageId together = insertSync(*store, withOutcome(mode));
        results(together, mode);
        store->flush();
        MessageId apart = insertSync(*store, withOutcome(mode));
        store->flush();
        results(apart, mode);
        store->flush();

        auto a = store->get(together), b = store->get(apart);
        REQUIRE(a);
        REQUIRE(b);
        CHECK(a->summary.status == Status::Error);
        CHECK(a->summary.status == b->summary.status);
        REQUIRE(a->deliveries.size() == 3);
        REQUIRE(b->deliveries.size() == 3);
        for (std::size_t i = 0; i < 3; ++i) {
            INFO("destination " << a->deliveries[i].destination);
            CHECK(a->deliveries[i].destination == b->deliveries[i].destination);
            CHECK(a->deliveries[i].status == b->deliveries[i].status);
            CHECK(a->deliveries[i].attempts == b->deliveries[i].attempts);
            CHECK(a->deliveries[i].nextAttempt.has_value() == b->deliveries[i].nextAttempt.has_value());
            CHECK(a->deliveries[i].error == b->deliveries[i].error);
            CHECK(a->deliveries[i].encoded == b->deliveries[i].encoded);
            CHECK(a->deliveries[i].response == b->deliveries[i].response);
        }
        CHECK(a->deliveries[0].status == Status::Queued);
        CHECK(a->deliveries[0].attempts == 2);
        REQUIRE(a->deliveries[0].nextAttempt);
        CHECK(ms(*a->deliveries[0].nextAttempt) == ms(next));
        CHECK(a->deliveries[0].encoded == "enc-A");  // still to send: kept in every mode
        CHECK(a->deliveries[1].status == Status::Sent);
        CHECK(a->deliveries[1].attempts == 2);
        CHECK(a->deliveries[2].error == "peer said no");
        CHECK(a->deliveries[1].encoded == (mode == StorageMode::Development ? "enc-B" : ""));
        CHECK(a->deliveries[1].response == (mode == StorageMode::Development ? "response-B" : ""));
        auto pending = store->pendingDeliveries("ch", 100);
        CHECK(std::count_if(pending.begin(), pending.end(), [&](const PendingDelivery& p) { return p.id == together; }) == 1);
    }
    CHECK(store->stats().folded == 12);  // 4 results x 3 modes, only those submitted with their insert
}

TEST_CASE("content kept per storage mode", "[store]") {
    TempDir dir;
    auto store = openSqliteStore(dir.db(), fastOptions());

    auto run = [&](StorageMode mode) {
        MessageId id = insertSync(*store, makeMessage("ch", "raw-msg", mode));
        auto pm = processed(id, "ch", {queued("A", "enc-A"), queued("B", "enc-B")}, mode);
        processedSync(*store, pm);
        return id;
    };

    SECTION("development keeps everything") {
        MessageId id = run(StorageMode::Development);
        deliverySync(*store, update(id, "ch", "A", Status::Sent));
        auto d = store->get(id);
        REQUIRE(d);
        CHECK(d->raw == "raw-msg");
        CHECK(d->transformed == "transformed-" + std::to_string(id));
        REQUIRE(d->deliveries.size() == 2);
        CHECK(d->deliveries[0].encoded == "enc-A");
        CHECK(d->deliveries[0].response == "response-A");
        CHECK(d->deliveries[1].encoded == "enc-B");
    }
    SECTION("production keeps raw and errors, encoded only until sent") {
        MessageId id = run(StorageMode::Production);
        auto d = store->get(id);
        CHECK(d->raw == "raw-msg");
        CHECK(d->transformed.empty());
        CHECK(d->deliveries[0].encoded == "enc-A");
        deliverySync(*store, update(id, "ch", "A", Status::Sent, StorageMode::Production));
        deliverySync(*store, update(id, "ch", "B", Status::Error, StorageMode::Production));
        d = store->get(id);
        CHECK(d->raw == "raw-msg");
        CHECK(d->deliveries[0].encoded.empty());
        CHECK(d->deliveries[0].response.empty());
        CHECK(d->deliveries[1].error == "peer said no");
        CHECK(d->deliveries[1].encoded == "enc-B");  // not sent: kept for a resend
    }
    SECTION("metadata keeps raw until processed and encoded until sent") {
        MessageId id = insertSync(*store, makeMessage("ch", "raw-msg", StorageMode::Metadata));
        CHECK(store->get(id)->raw == "raw-msg");
        CHECK(store->pendingMessages("ch", 10).at(0).raw == "raw-msg");
        processedSync(*store, processed(id, "ch", {queued("A", "enc-A")}, StorageMode::Metadata));
        auto d = store->get(id);
        CHECK(d->raw.empty());
        CHECK(d->transformed.empty());
        CHECK(d->deliveries[0].encoded == "enc-A");
        CHECK(store->pendingDeliveries("ch", 10).at(0).encoded == "enc-A");
        deliverySync(*store, update(id, "ch", "A", Status::Sent, StorageMode::Metadata));
        d = store->get(id);
        CHECK(d->deliveries[0].encoded.empty());
        CHECK(d->deliveries[0].response.empty());
        CHECK(d->summary.status == Status::Sent);
    }
    SECTION("disabled behaves like metadata") {
        MessageId id = insertSync(*store, makeMessage("ch", "raw-msg", StorageMode::Disabled));
        CHECK(store->pendingMessages("ch", 10).at(0).raw == "raw-msg");
        processedSync(*store, processed(id, "ch", {queued("A", "enc-A")}, StorageMode::Disabled));
        CHECK(store->get(id)->raw.empty());
        CHECK(store->pendingDeliveries("ch", 10).at(0).encoded == "enc-A");
    }
}

TEST_CASE("a journaled message's kept raw content stays in the journal's content files until pruned", "[store]") {
    TempDir dir;
    auto files = [&](const std::string& kind) {
        std::size_t n = 0;
        for (const auto& e : std::filesystem::directory_iterator(dir.path + "/sub/dir"))
            n += e.path().filename().string().find(kind) != std::string::npos;
        return n;
    };
    auto rawOf = [](int i) { return "MSH|^~\\&|RIS|" + std::to_string(i) + "\r" + std::string(3000, 'p'); };
    // As an MLLP source stores it: processed before the insert, nothing to deliver.
    auto processedAtIntake = [&](int i, StorageMode mode) {
        NewMessage m = makeMessage("ch", rawOf(i), mode);
        ProcessedMessage p;
        p.status = Status::Filtered;
        p.storage = mode;
        m.processed = p;
        return m;
    };
    std::vector<MessageId> kept;
    MessageId waiting = 0, metadata = 0;
    {
        auto store = openSqliteStore(dir.db(), fastOptions());
        for (int i = 0; i < 30; ++i) kept.push_back(insertSync(*store, processedAtIntake(i, StorageMode::Production)));
        waiting = insertSync(*store, makeMessage("ch", rawOf(100), StorageMode::Production));  // not processed yet
        metadata = insertSync(*store, processedAtIntake(101, StorageMode::Metadata));
        store->flush();
        RawDb raw(dir.db());
        CHECK(raw.scalar("SELECT count(*) FROM " + dayName(Clock::now()) + " WHERE kind = 0") == 0);
        CHECK(raw.scalar("SELECT count(*) FROM messages WHERE raw_ref IS NOT NULL") == 31);
        CHECK(store->get(kept[7])->raw == rawOf(7));  // read from the journal segment
        CHECK(store->pendingMessages("ch", 10).at(0).raw == rawOf(100));
        CHECK(store->get(metadata)->raw.empty());
    }
    CHECK(files("-jnl.") == 0);
    CHECK(files("-raw.") == 1);
    StoreOptions quota = fastOptions();  // a store with a quota journals nothing, but reads the content files
    quota.maxDatabaseBytes = 256 << 20;
    CHECK(openSqliteStore(dir.db(), quota)->get(kept[3])->raw == rawOf(3));
    auto store = openSqliteStore(dir.db(), fastOptions());
    for (int i = 0; i < 30; ++i) CHECK(store->get(kept[i])->raw == rawOf(i));
    auto pending = store->pendingMessages("ch", 10);
    REQUIRE(pending.size() == 1);
    CHECK(pending[0].id == waiting);
    CHECK(pending[0].raw == rawOf(100));
    CHECK(store->get(metadata)->raw.empty());

    // Processed with a storage mode that keeps no raw content: the reference goes.
    ProcessedMessage p;
    p.id = waiting;
    p.channel = "ch";
    p.status = Status::Filtered;
    p.storage = StorageMode::Metadata;
    processedSync(*store, p);
    CHECK(store->get(waiting)->raw.empty());

    // Pruning drops the content files whose messages are all gone.
    CHECK(store->prune("", Clock::now() + 24h) == 32);
    CHECK(files("-raw.") == 0);
    MessageId next = insertSync(*store, processedAtIntake(200, StorageMode::Development));
    CHECK(store->get(next)->raw == rawOf(200));
    store.reset();
    CHECK(files("-raw.") == 1);
    // So does a store with a quota.
    store = openSqliteStore(dir.db(), quota);
    CHECK(store->get(next)->raw == rawOf(200));
    CHECK(store->prune("", Clock::now() + 24h) == 1);
    CHECK(files("-raw.") == 0);
}

TEST_CASE("a copy of the raw or transformed message is stored once and read back whole", "[store]") {
    const std::string raw = "MSH|^~\\&|RIS|H|" + std::string(4000, 'r');
    const std::string other = "MSH|^~\\&|EMR|H|" + std::string(4000, 'o');
    // As a source stores it: processed at intake, one write; "same" sends the
    // message unchanged, "changed" a different one.
    auto atIntake = [&](StorageMode mode, const std::string& transformed) {
        NewMessage m = makeMessage("ch", raw, mode);
        ProcessedMessage p;
        p.status = Status::Transformed;
        p.storage = mode;
        if (mode == StorageMode::Development) p.transformed = transformed;
        p.deliveries = {queued("same", transformed), queued("changed", other)};
        m.processed = p;
        return m;
    };
    for (bool journal : {true, false}) {
        for (auto mode : {StorageMode::Development, StorageMode::Production, StorageMode::Metadata}) {
            for (const std::string* transformed : {&raw, &other}) {
                INFO("journal " << journal << ", mode " << toString(mode) << ", transformed "
                                << (transformed == &raw ? "= raw" : "changed"));
                TempDir d;
                StoreOptions o = fastOptions();
                if (!journal) o.maxDatabaseBytes = 256 << 20;  // a store with a quota journals nothing
                MessageId id;
                std::int64_t contentBytes;
                {
                    auto store = openSqliteStore(d.db(), o);
                    id = insertSync(*store, atIntake(mode, *transformed));
                    store->flush();
                    RawDb db(d.db());
                    contentBytes = db.scalar("SELECT coalesce(sum(length(data)), 0) FROM " + dayName(Clock::now()));
                }
                // Written: the raw (without a journal), the changed transformed and the
                // encoded message that differs from it; copies are empty rows.
                std::int64_t expected = 0;
                if (!journal && mode != StorageMode::Metadata) expected += raw.size();
                if (mode == StorageMode::Development && transformed == &other) expected += other.size();
                if (mode == StorageMode::Metadata) expected += transformed->size() + other.size();
                else if (transformed == &raw) expected += other.size();
                else if (mode == StorageMode::Production) expected += other.size() * 2;  // no transformed kept to refer to
                CHECK(contentBytes == expected);
                auto store = openSqliteStore(d.db(), o);
                auto m = store->get(id);
                REQUIRE(m);
                REQUIRE(m->deliveries.size() == 2);
                CHECK(m->deliveries[0].destination == "changed");
                CHECK(m->deliveries[0].encoded == other);
                CHECK(m->deliveries[1].encoded == *transformed);
                if (mode == StorageMode::Development) CHECK(m->transformed == *transformed);
                auto pending = store->pendingDeliveries("ch", 10);
                REQUIRE(pending.size() == 2);
                for (const auto& pd : pending) CHECK(pd.encoded == (pd.destination == "same" ? *transformed : other));
            }
        }
    }
}

TEST_CASE("a store that keeps no raw content leaves no content file", "[store]") {
    TempDir dir;
    {
        auto store = openSqliteStore(dir.db(), fastOptions());
        for (int i = 0; i < 10; ++i) insertSync(*store, makeMessage("ch", "raw-" + std::to_string(i), StorageMode::Metadata));
    }
    for (const auto& e : std::filesystem::directory_iterator(dir.path + "/sub/dir")) {
        INFO(e.path());
        CHECK(e.path().filename().string().find("-raw.") == std::string::npos);
        CHECK(e.path().filename().string().find("-jnl.") == std::string::npos);
    }
    auto store = openSqliteStore(dir.db(), fastOptions());
    CHECK(store->pendingMessages("ch", 100).size() == 10);
    CHECK(store->pendingMessages("ch", 100).at(3).raw == "raw-3");  // in SQLite until processed
}

TEST_CASE("a store of schema version 1 gets the raw content reference column, the source marks and the copies", "[store]") {
    TempDir dir;
    MessageId old = 0;
    {
        auto store = openSqliteStore(dir.db(), fastOptions());
        old = insertSync(*store, makeMessage("ch", "before"));
    }
    {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(dir.db().c_str(), &db) == SQLITE_OK);
        // As an older release left it: no raw_ref, raw content in the content table, no source marks.
        const std::string day = dayName(Clock::now());
        std::string sql = "INSERT INTO " + day + " (message_id, kind, destination, data) SELECT id, 0, '', 'before'"
                          " FROM messages WHERE raw_ref IS NOT NULL; ALTER TABLE messages DROP COLUMN raw_ref;"
                          " DROP TABLE source_marks; DROP TABLE message_copies;"
                          " PRAGMA user_version = 1;";
        char* err = nullptr;
        int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
        INFO((err ? err : ""));
        REQUIRE(rc == SQLITE_OK);
        sqlite3_close(db);
    }
    auto store = openSqliteStore(dir.db(), fastOptions());
    CHECK(RawDb(dir.db()).scalar("PRAGMA user_version") == 4);
    CHECK(RawDb(dir.db()).hasTable("source_marks"));
    CHECK(RawDb(dir.db()).hasTable("message_copies"));
    CHECK(store->get(old)->raw == "before");
    MessageId id = insertSync(*store, makeMessage("ch", "after"));
    CHECK(store->get(id)->raw == "after");
}

TEST_CASE("repairs: copies linked to originals, a finished delivery queued again, a message deleted", "[store]") {
    TempDir dir;
    auto store = openSqliteStore(dir.db(), fastOptions());
    MessageId original = insertSync(*store, makeMessage("ch", "raw-1"));
    processedSync(*store, processed(original, "ch", {queued("A", "enc-A"), queued("B", "enc-B")}));
    auto copyOf = [&](const std::string& raw) {
        auto m = makeMessage("ch", raw);
        m.copyOf = original;
        return m;
    };
    MessageId copy1 = insertSync(*store, copyOf("raw-1"));
    MessageId copy2 = insertSync(*store, copyOf("raw-1 edited"));
    CHECK(store->get(original)->copies == std::vector<MessageId>{copy1, copy2});
    CHECK_FALSE(store->get(original)->original);
    CHECK(store->get(copy2)->original == original);

    // Queued: not again; finished: queued again with its encoded content, attempts from 0.
    CHECK(store->requeueDelivery(original, "A") == RepairOutcome::Busy);
    auto failed = update(original, "ch", "A", Status::Error);
    failed.attempts = 3;
    deliverySync(*store, failed);
    deliverySync(*store, update(original, "ch", "B", Status::Sent));
    CHECK(statusOf(*store, original) == Status::Error);
    CHECK(store->requeueDelivery(original, "C") == RepairOutcome::NotFound);
    CHECK(store->requeueDelivery(424242, "A") == RepairOutcome::NotFound);
    CHECK(store->requeueDelivery(original, "A") == RepairOutcome::Done);
    auto d = store->get(original);
    CHECK(d->summary.status == Status::Queued);
    CHECK(d->deliveries[0].status == Status::Queued);
    CHECK(d->deliveries[0].attempts == 0);
    CHECK(d->deliveries[0].error.empty());
    CHECK(d->deliveries[0].encoded == "enc-A");
    auto pending = store->pendingDeliveries("ch", 10);
    REQUIRE(pending.size() == 1);
    CHECK(pending[0].id == original);
    CHECK(pending[0].encoded == "enc-A");
    CHECK(store->requeueDelivery(original, "A") == RepairOutcome::Busy);

    // Deleted: not while a delivery is queued or the message is unprocessed.
    CHECK(store->deleteMessage(original) == RepairOutcome::Busy);
    CHECK(store->deleteMessage(copy1) == RepairOutcome::Busy);  // Received
    processedSync(*store, processed(copy1, "ch", {}));
    CHECK(store->deleteMessage(copy1) == RepairOutcome::Done);
    CHECK_FALSE(store->get(copy1));
    CHECK(RawDb(dir.db()).scalar("SELECT count(*) FROM " + dayName(Clock::now()) + " WHERE message_id = " +
                                 std::to_string(copy1)) == 0);
    CHECK(store->get(original)->copies == std::vector<MessageId>{copy2});
    CHECK(store->deleteMessage(copy1) == RepairOutcome::NotFound);
    deliverySync(*store, update(original, "ch", "A", Status::Sent));
    CHECK(store->deleteMessage(original) == RepairOutcome::Done);
    CHECK_FALSE(store->get(copy2)->original);  // its original is gone
    CHECK(RawDb(dir.db()).scalar("SELECT count(*) FROM deliveries WHERE message_id = " + std::to_string(original)) == 0);
}

TEST_CASE("countMatching counts what a search finds, whatever its limit", "[store]") {
    TempDir dir;
    auto store = openSqliteStore(dir.db(), fastOptions());
    std::vector<MessageId> ids;
    for (int i = 0; i < 25; ++i) {
        auto m = makeMessage(i % 5 == 0 ? "lab" : "adt", "raw");
        m.meta.patientId = "P" + std::to_string(i % 2);
        ids.push_back(insertSync(*store, m));
    }
    SearchQuery q;
    q.limit = 3;
    CHECK(store->countMatching(q) == 25);
    q.channel = "adt";
    CHECK(store->countMatching(q) == 20);
    q.patientId = "P0";
    SearchQuery all = q;
    all.limit = 1000;
    CHECK(store->countMatching(q) == store->search(all).size());
    q.beforeId = ids[10];
    CHECK(store->countMatching(q) == 4);  // adt, even, below 10: 2, 4, 6, 8
    CHECK(store->countMatching(q, 3) == 3);  // up to a bound
    SearchQuery text;
    text.text = "raw";
    CHECK(store->countMatching(text) == 25);
    CHECK(store->countMatching(text, 7) == 7);  // a text search stops at the bound
}

TEST_CASE("search and countByStatus", "[store]") {
    TempDir dir;
    auto store = openSqliteStore(dir.db(), fastOptions());
    auto base = Clock::now() - 10h;
    std::vector<MessageId> ids;
    for (int i = 0; i < 30; ++i) {
        auto m = makeMessage(i % 3 == 0 ? "lab" : "adt", "raw" + std::to_string(i));
        m.meta.messageType = i % 2 ? "ORM^O01" : "ADT^A01";
        m.meta.controlId = "CTL" + std::to_string(i);
        m.meta.patientId = "P" + std::to_string(i % 5);
        if (i % 4 == 0) m.meta.accession = "ACC" + std::to_string(i);
        m.receivedAt = base + std::chrono::minutes(i);
        ids.push_back(insertSync(*store, m));
    }
    // lab messages: i = 0,3,...,27 (10 of them); process the first four
    for (int i : {0, 3, 6, 9}) processedSync(*store, processed(ids[i], "lab", {queued("out", "e")}));
    deliverySync(*store, update(ids[0], "lab", "out", Status::Sent));

    SearchQuery q;
    q.channel = "lab";
    auto r = store->search(q);
    REQUIRE(r.size() == 10);
    CHECK(r.front().id == ids[27]);  // newest first
    CHECK(r.back().id == ids[0]);
    CHECK(r[0].meta.messageType == "ORM^O01");

    q.limit = 4;
    r = store->search(q);
    REQUIRE(r.size() == 4);
    q.beforeId = r.back().id;  // next page
    auto page2 = store->search(q);
    REQUIRE(page2.size() == 4);
    CHECK(page2.front().id < r.back().id);
    CHECK(page2.front().id == ids[15]);

    SearchQuery s;
    s.channel = "lab";
    s.status = Status::Queued;
    r = store->search(s);
    REQUIRE(r.size() == 3);
    s.status = Status::Sent;
    REQUIRE(store->search(s).size() == 1);
    CHECK(store->search(s)[0].id == ids[0]);

    SearchQuery c;
    c.controlId = "CTL7";
    r = store->search(c);
    REQUIRE(r.size() == 1);
    CHECK(r[0].id == ids[7]);
    CHECK(r[0].channel == "adt");

    SearchQuery p;
    p.patientId = "P2";  // i = 2,7,12,17,22,27
    CHECK(store->search(p).size() == 6);
    p.channel = "lab";  // 12, 27
    CHECK(store->search(p).size() == 2);

    SearchQuery a;
    a.accession = "ACC8";
    REQUIRE(store->search(a).size() == 1);
    CHECK(store->search(a)[0].meta.accession == "ACC8");
    a.accession = "ACC9";
    CHECK(store->search(a).empty());

    SearchQuery t;
    t.from = base + 10min;
    t.to = base + 20min;  // [from, to): i = 10..19
    r = store->search(t);
    REQUIRE(r.size() == 10);
    CHECK(r.front().id == ids[19]);
    CHECK(r.back().id == ids[10]);
    CHECK(ms(r.back().receivedAt) == ms(base + 10min));

    SearchQuery mt;
    mt.messageType = "ORM^O01";
    mt.channel = "adt";
    CHECK(store->search(mt).size() == 10);  // odd i not divisible by 3: 1,5,7,11,13,17,19,23,25,29

    CHECK(countOf(*store, "lab", Status::Received) == 6);
    CHECK(countOf(*store, "lab", Status::Queued) == 3);
    CHECK(countOf(*store, "lab", Status::Sent) == 1);
    CHECK(countOf(*store, "adt", Status::Received) == 20);
    CHECK(countOf(*store, "", Status::Received) == 26);
    CHECK(store->countByStatus("nope").empty());
}

TEST_CASE("search by destination and destination status", "[store]") {
    TempDir dir;
    auto store = openSqliteStore(dir.db(), fastOptions());
    std::vector<MessageId> ids;
    for (int i = 0; i < 12; ++i) ids.push_back(insertSync(*store, makeMessage(i < 8 ? "lab" : "adt", "raw")));
    // lab 0..7 go to A and B; adt 8..11 to A. A: Sent for even, Error for odd; B: Queued for 0-3, Filtered after.
    for (int i = 0; i < 12; ++i) {
        std::vector<ProcessedMessage::Delivery> ds{queued("A", "e")};
        if (i < 8) ds.push_back(queued("B", "e"));
        processedSync(*store, processed(ids[i], i < 8 ? "lab" : "adt", ds));
        deliverySync(*store, update(ids[i], i < 8 ? "lab" : "adt", "A", i % 2 ? Status::Error : Status::Sent));
        if (i >= 4 && i < 8) deliverySync(*store, update(ids[i], "lab", "B", Status::Filtered));
    }
    auto idsOf = [&](SearchQuery q) {
        std::vector<MessageId> out;
        for (const auto& m : store->search(q)) out.push_back(m.id);
        CHECK(store->countMatching(q) == out.size());
        return out;
    };
    SearchQuery q;
    q.destinationStatus = Status::Error;  // A failed: odd i, newest first
    CHECK(idsOf(q) == std::vector<MessageId>{ids[11], ids[9], ids[7], ids[5], ids[3], ids[1]});
    q.channel = "lab";
    CHECK(idsOf(q) == std::vector<MessageId>{ids[7], ids[5], ids[3], ids[1]});
    q.destination = "B";  // B never failed
    CHECK(idsOf(q).empty());
    q.destinationStatus = Status::Queued;
    CHECK(idsOf(q) == std::vector<MessageId>{ids[3], ids[2], ids[1], ids[0]});
    q.limit = 2;
    q.beforeId = ids[2];
    CHECK(idsOf(q) == std::vector<MessageId>{ids[1], ids[0]});
    SearchQuery f;
    f.destinationStatus = Status::Filtered;
    CHECK(idsOf(f) == std::vector<MessageId>{ids[7], ids[6], ids[5], ids[4]});
    f.destination = "A";
    CHECK(idsOf(f).empty());
    SearchQuery s;
    s.destination = "A";
    s.destinationStatus = Status::Sent;
    s.channel = "adt";
    CHECK(idsOf(s) == std::vector<MessageId>{ids[10], ids[8]});
    SearchQuery any;
    any.destination = "B";  // any status
    CHECK(idsOf(any).size() == 8);
    any.status = Status::Error;  // the message's own status as well: lab's odd ones (A failed)
    CHECK(idsOf(any) == std::vector<MessageId>{ids[7], ids[5], ids[3], ids[1]});
    any.text = "RAW";  // with a text search
    CHECK(idsOf(any) == std::vector<MessageId>{ids[7], ids[5], ids[3], ids[1]});
}

TEST_CASE("search by a queued destination with a deep queue finds the newest first", "[store]") {
    TempDir dir;
    auto store = openSqliteStore(dir.db(), fastOptions());
    std::vector<MessageId> ids;
    for (int i = 0; i < 5100; ++i) {  // more queued deliveries than are listed from their index
        ids.push_back(insertSync(*store, makeMessage("ch", "raw")));
        std::vector<ProcessedMessage::Delivery> ds{queued("A", "e")};
        if (i % 1000 == 7) ds.push_back(queued("B", "e"));
        store->recordProcessed(processed(ids.back(), "ch", ds));
    }
    store->flush();
    deliverySync(*store, update(ids[5099], "ch", "A", Status::Sent));
    SearchQuery q;
    q.channel = "ch";
    q.destinationStatus = Status::Queued;
    q.limit = 2;
    auto r = store->search(q);
    REQUIRE(r.size() == 2);
    CHECK(r[0].id == ids[5098]);
    CHECK(r[1].id == ids[5097]);
    CHECK(store->countMatching(q) == 5099);
    q.destination = "B";
    r = store->search(q);
    REQUIRE(r.size() == 2);
    CHECK(r[0].id == ids[5007]);
    CHECK(r[1].id == ids[4007]);
    CHECK(store->countMatching(q) == 6);
}

TEST_CASE("search by a rare status without a channel: few listed from their index, many found from the newest", "[store]") {
    TempDir dir;
    auto store = openSqliteStore(dir.db(), fastOptions());
    std::vector<MessageId> errors;
    for (int i = 0; i < 5200; ++i) {
        auto m = makeMessage(i % 2 ? "a" : "b", "raw");
        if (i < 3 || i >= 5190) m.status = Status::Error;  // few, then (below) many
        MessageId id = insertSync(*store, m);
        if (m.status == Status::Error) errors.push_back(id);
    }
    SearchQuery q;
    q.status = Status::Error;
    q.limit = 4;
    auto ids = [&] {
        std::vector<MessageId> out;
        for (const auto& m : store->search(q)) out.push_back(m.id);
        return out;
    };
    CHECK(ids() == std::vector<MessageId>{errors[12], errors[11], errors[10], errors[9]});
    CHECK(store->countMatching(q) == 13);
    for (int i = 0; i < 5000; ++i) {  // many now
        auto m = makeMessage("a", "raw");
        m.status = Status::Error;
        errors.push_back(insertSync(*store, m));
    }
    CHECK(ids() == std::vector<MessageId>{errors.back(), errors[errors.size() - 2], errors[errors.size() - 3],
                                          errors[errors.size() - 4]});
    CHECK(store->countMatching(q) == 5013);
    q.beforeId = errors[12] + 1;
    CHECK(ids() == std::vector<MessageId>{errors[12], errors[11], errors[10], errors[9]});
}

TEST_CASE("reopening recovers unfinished work", "[store]") {
    TempDir dir;
    MessageId received, queuedId, done;
    {
        auto store = openSqliteStore(dir.db(), fastOptions());
        received = insertSync(*store, makeMessage("ch", "unprocessed"));
        queuedId = insertSync(*store, makeMessage("ch", "processed"));
        done = insertSync(*store, makeMessage("ch", "done"));
        store->recordProcessed(processed(queuedId, "ch", {queued("A", "enc-A"), queued("B", "enc-B")}));
        store->recordProcessed(processed(done, "ch", {queued("A", "enc-done")}));
        auto u = update(queuedId, "ch", "B", Status::Queued);
        u.attempts = 3;
        u.nextAttempt = Clock::now() + 1h;
        store->recordDelivery(u);
        store->recordDelivery(update(done, "ch", "A", Status::Sent));
        // no flush: the destructor drains the queue
    }
    auto store = openSqliteStore(dir.db(), fastOptions());
    auto pm = store->pendingMessages("ch", 100);
    REQUIRE(pm.size() == 1);
    CHECK(pm[0].id == received);
    CHECK(pm[0].raw == "unprocessed");
    CHECK(pm[0].source == "test");
    CHECK(pm[0].dataType == "hl7v2");
    auto pd = store->pendingDeliveries("ch", 100);
    REQUIRE(pd.size() == 2);
    CHECK(pd[0].id == queuedId);
    CHECK(pd[0].destination == "A");
    CHECK(pd[0].encoded == "enc-A");
    CHECK(pd[1].destination == "B");
    CHECK(pd[1].attempts == 3);
    CHECK(pd[1].nextAttempt > Clock::now() + 50min);
    CHECK(statusOf(*store, done) == Status::Sent);
    // ids continue after the old ones
    CHECK(insertSync(*store, makeMessage("ch", "new")) > done);
}

TEST_CASE("while SQLite falls behind the journal, what waits to be applied is bounded in bytes", "[store]") {
    TempDir dir;
    auto store = openSqliteStore(dir.db(), fastOptions());
    insertSync(*store, makeMessage("ch", "first"));
    store->flush();
    // Another connection holds SQLite's write lock: the writer cannot apply anything.
    sqlite3* blocker = nullptr;
    REQUIRE(sqlite3_open_v2(dir.db().c_str(), &blocker, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_exec(blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    const std::string big(1 << 20, 'x');  // 1 MB messages: the count bound alone would let 100,000 wait
    std::atomic<int> accepted{0};
    std::thread sender([&] {
        for (int i = 0; i < 120; ++i) {
            store->insert(makeMessage("ch", big + std::to_string(i), StorageMode::Production),
                          [&](MessageId id, const std::string&) {
                              if (id > 0) ++accepted;
                          });
        }
    });
    std::this_thread::sleep_for(1500ms);
    int held = accepted.load();
    CHECK(held >= 20);
    CHECK(held <= 64);  // about 48 MB of content waits, then intake waits too
    REQUIRE(sqlite3_exec(blocker, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(blocker);
    sender.join();
    store->flush();
    CHECK(accepted.load() == 120);
    CHECK(countOf(*store, "ch", Status::Received) == 121);
    CHECK(store->pendingMessages("ch", 200).back().raw == big + "119");
}

TEST_CASE("acknowledged inserts survive a crash", "[store]") {
    TempDir dir;
    const int N = 3000, K = 700;
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        auto store = openSqliteStore(dir.db(), fastOptions());
        std::atomic<int> acked{0};
        for (int i = 0; i < N; ++i) {
            store->insert(makeMessage("ch", std::string(500, 'x') + std::to_string(i)),
                          [&, fd = fds[1]](MessageId id, const std::string& err) {
                              if (id <= 0) _exit(3);
                              if (write(fd, &id, sizeof id) != sizeof id) _exit(4);
                              if (++acked == K) _exit(0);  // crash: no destructor, no flush
                          });
        }
        store->flush();
        _exit(5);  // K < N: never reached
    }
    close(fds[1]);
    std::vector<MessageId> acked;
    MessageId id;
    while (read(fds[0], &id, sizeof id) == sizeof id) acked.push_back(id);
    close(fds[0]);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    REQUIRE(acked.size() == static_cast<std::size_t>(K));

    auto store = openSqliteStore(dir.db(), fastOptions());
    std::size_t missing = 0;
    for (MessageId a : acked) {
        auto d = store->get(a);
        if (!d || d->raw.size() < 500) ++missing;
    }
    CHECK(missing == 0);
    CHECK(store->pendingMessages("ch", N).size() >= static_cast<std::size_t>(K));
    MessageId next = insertSync(*store, makeMessage("ch", "after crash"));
    for (MessageId a : acked) CHECK(next > a);
}

TEST_CASE("group commit batches concurrent writes", "[store]") {
    TempDir dir;
    StoreOptions o;  // synchronous FULL: commits cost, as in production
    auto store = openSqliteStore(dir.db(), o);
    constexpr int kThreads = 4, kPer = 2500, kTotal = kThreads * kPer;
    std::vector<std::atomic<int>> calls(kTotal);
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPer; ++i) {
                int n = t * kPer + i;
                store->insert(makeMessage("ch" + std::to_string(t), std::string(200, 'r')),
                              [&, n](MessageId id, const std::string&) {
                                  calls[n].fetch_add(1);
                                  if (id <= 0) failures.fetch_add(1);
                              });
            }
        });
    for (auto& th : threads) th.join();
    store->flush();
    // flush() waits for the commits; an insert's callback comes after the journal's
    // fdatasync that covers it, on the journal's sync thread, and may still be on its way.
    auto answered = [&] {
        int n = 0;
        for (auto& c : calls) n += c.load() > 0;
        return n;
    };
    for (int i = 0; i < 1000 && answered() < kTotal; ++i) std::this_thread::sleep_for(10ms);
    int once = 0;
    for (auto& c : calls) once += c.load() == 1;
    CHECK(once == kTotal);
    CHECK(failures == 0);
    auto st = store->stats();
    CHECK(st.writes == static_cast<std::uint64_t>(kTotal));
    INFO("commits: " << st.commits);
    CHECK(st.commits < st.writes / 5);
    CHECK(countOf(*store, "ch2", Status::Received) == static_cast<std::uint64_t>(kPer));
}

TEST_CASE("flush waits for writes submitted from callbacks' predecessors", "[store]") {
    TempDir dir;
    auto store = openSqliteStore(dir.db(), fastOptions());
    std::atomic<int> done{0};
    for (int i = 0; i < 100; ++i)
        store->insert(makeMessage("ch", "x"), [&](MessageId, const std::string&) { done++; });
    store->flush();
    CHECK(done == 100);
    // a throwing callback does not kill the writer
    store->insert(makeMessage("ch", "x"), [](MessageId, const std::string&) { throw std::runtime_error("oops"); });
    store->flush();
    CHECK(insertSync(*store, makeMessage("ch", "still alive")) > 0);
}

TEST_CASE("prune drops finished messages and whole day partitions", "[store]") {
    TempDir dir;
    auto store = openSqliteStore(dir.db(), fastOptions());
    auto now = Clock::now();
    auto day3 = now - 72h, day2 = now - 48h;
    const std::string big(20000, 'b');

    auto finishedMsg = [&](const std::string& ch, Clock::time_point at) {
        auto m = makeMessage(ch, big);
        m.receivedAt = at;
        MessageId id = insertSync(*store, m);
        store->recordProcessed(processed(id, ch, {queued("A", big)}));
        store->recordDelivery(update(id, ch, "A", Status::Sent));
        return id;
    };
    std::vector<MessageId> old3, old2;
    for (int i = 0; i < 200; ++i) old3.push_back(finishedMsg("A", day3 + std::chrono::seconds(i)));
    for (int i = 0; i < 100; ++i) old2.push_back(finishedMsg("A", day2 + std::chrono::seconds(i)));
    // one old message still waiting for its delivery, one never processed, one of another channel
    auto m = makeMessage("A", big);
    m.receivedAt = day2 + 200s;
    MessageId waiting = insertSync(*store, m);
    processedSync(*store, processed(waiting, "A", {queued("A", "enc-waiting")}));
    m.receivedAt = day2 + 201s;
    MessageId unprocessed = insertSync(*store, m);
    MessageId otherChannel = finishedMsg("B", day2 + 202s);
    std::vector<MessageId> fresh;
    for (int i = 0; i < 10; ++i) fresh.push_back(finishedMsg("A", now));
    store->flush();

    RawDb raw(dir.db());
    REQUIRE(raw.hasTable(dayName(day3)));
    REQUIRE(raw.hasTable(dayName(day2)));
    REQUIRE(raw.hasTable(dayName(now)));
    auto pagesBefore = raw.scalar("PRAGMA page_count");

    auto removed = store->prune("A", now - 24h);
    CHECK(removed == 300);
    CHECK_FALSE(raw.hasTable(dayName(day3)));  // whole day gone: table dropped
    CHECK(raw.hasTable(dayName(day2)));        // still used by waiting/unprocessed/channel B
    CHECK(raw.hasTable(dayName(now)));
    auto pagesAfter = raw.scalar("PRAGMA page_count");
    auto pageBytes = raw.scalar("PRAGMA page_size");
    INFO("pages before " << pagesBefore << " after " << pagesAfter << " of " << pageBytes << " bytes");
    CHECK((pagesBefore - pagesAfter) * pageBytes > 6'000'000);  // ~8 MB of day-3 content returned to the file system
    CHECK(raw.scalar("PRAGMA freelist_count") < 100);

    CHECK_FALSE(store->get(old3[5]));
    CHECK_FALSE(store->get(old2[5]));
    CHECK(store->get(fresh[0]));
    REQUIRE(store->get(waiting));
    CHECK(store->get(waiting)->deliveries.at(0).encoded == "enc-waiting");
    CHECK(store->pendingDeliveries("A", 10).size() == 1);
    CHECK(store->pendingMessages("A", 10).size() == 1);
    CHECK(store->get(otherChannel)->raw == big);
    // day-2 content of the pruned A messages deleted row by row
    CHECK(raw.scalar("SELECT count(*) FROM " + dayName(day2) + " WHERE message_id = " + std::to_string(old2[0])) ==
          0);

    // finish the rest; prune every channel
    deliverySync(*store, update(waiting, "A", "A", Status::Sent));
    auto pe = processed(unprocessed, "A", {});
    pe.status = Status::Filtered;
    processedSync(*store, pe);
    CHECK(store->prune("", now - 24h) == 3);
    CHECK_FALSE(raw.hasTable(dayName(day2)));
    CHECK(raw.hasTable(dayName(now)));  // newest partition stays (inserts use it)

    // even when the newest messages are pruned, ids are never reused
    MessageId maxId = fresh.back();
    CHECK(store->prune("", now + 24h) == 10);
    store.reset();
    store = openSqliteStore(dir.db(), fastOptions());
    CHECK(insertSync(*store, makeMessage("A", "again")) > maxId);
}

TEST_CASE("a new store has 16 KB pages and a store made with 4 KB pages keeps them", "[store]") {
    TempDir dir;
    {
        auto store = openSqliteStore(dir.db(), fastOptions());
        CHECK(insertSync(*store, makeMessage("ch", "x")) > 0);
    }
    CHECK(RawDb(dir.db()).scalar("PRAGMA page_size") == 16384);

    // A store created by an older release, with SQLite's default 4 KB pages.
    std::string old = dir.path + "/old.db";
    {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(old.c_str(), &db) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db, "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE probe (x)", nullptr,
                             nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(db);
    }
    StoreOptions quota = fastOptions();
    quota.maxDatabaseBytes = 2 * 1024 * 1024;
    auto store = openSqliteStore(old, quota);
    auto tryInsert = [&](NewMessage m) {
        std::promise<MessageId> p;
        auto f = p.get_future();
        store->insert(std::move(m), [&](MessageId id, const std::string&) { p.set_value(id); });
        return f.get();
    };
    int ok = 0;
    for (int i = 0; i < 100; ++i) ok += tryInsert(makeMessage("ch", std::string(64 * 1024, 'z'))) > 0;
    CHECK(ok > 5);
    CHECK(ok <= 32);  // the quota is in bytes: 512 pages of 4 KB
    store->flush();
    CHECK(RawDb(old).scalar("PRAGMA page_size") == 4096);
}

TEST_CASE("failed writes report errors through their callbacks", "[store]") {
    TempDir dir;

    SECTION("bad writes in a batch fail alone") {
        auto store = openSqliteStore(dir.db(), fastOptions());
        MessageId good = insertSync(*store, makeMessage("ch", "raw"));
        std::mutex mu;
        std::vector<std::pair<int, std::string>> results;  // tag, error
        auto cb = [&](int tag) {
            return [&, tag](bool ok, const std::string& err) {
                std::lock_guard<std::mutex> lock(mu);
                results.emplace_back(tag, ok ? "" : err);
            };
        };
        std::vector<MessageId> inserted;
        for (int i = 0; i < 5; ++i)
            store->insert(makeMessage("ch", "more"), [&](MessageId id, const std::string&) {
                std::lock_guard<std::mutex> lock(mu);
                inserted.push_back(id);
            });
        store->recordProcessed(processed(good, "ch", {queued("A", "enc")}), cb(1));
        store->recordProcessed(processed(999999, "ch", {queued("A", "enc")}), cb(2));  // no such message
        store->recordDelivery(update(good, "ch", "A", Status::Sent), cb(3));
        store->recordDelivery(update(888888, "ch", "A", Status::Sent), cb(4));  // no such message
        store->flush();
        std::lock_guard<std::mutex> lock(mu);
        REQUIRE(results.size() == 4);
        CHECK(results[0] == std::make_pair(1, std::string()));
        CHECK(results[1].first == 2);
        CHECK(results[1].second.find("999999") != std::string::npos);
        CHECK(results[2] == std::make_pair(3, std::string()));
        CHECK(results[3].first == 4);
        CHECK_FALSE(results[3].second.empty());
        REQUIRE(inserted.size() == 5);
        for (auto id : inserted) CHECK(id > 0);
        CHECK(statusOf(*store, good) == Status::Sent);
        CHECK_FALSE(store->get(999999));
    }
    SECTION("disk full (database quota)") {
        StoreOptions o = fastOptions();
        o.maxDatabaseBytes = 2 * 1024 * 1024;
        auto store = openSqliteStore(dir.db(), o);
        std::mutex mu;
        std::vector<MessageId> ok;
        std::vector<std::string> errors;
        for (int i = 0; i < 100; ++i)
            store->insert(makeMessage("ch", std::string(64 * 1024, 'z')), [&](MessageId id, const std::string& err) {
                std::lock_guard<std::mutex> lock(mu);
                if (id > 0) ok.push_back(id);
                else errors.push_back(err);
            });
        store->flush();
        std::lock_guard<std::mutex> lock(mu);
        CHECK(ok.size() + errors.size() == 100);
        CHECK(ok.size() > 5);
        CHECK(ok.size() <= 32);  // 2 MB of 64 KB messages, whatever the page size
        REQUIRE_FALSE(errors.empty());
        CHECK(errors[0].find("full") != std::string::npos);
        for (auto id : ok) {
            auto d = store->get(id);
            REQUIRE(d);
            CHECK(d->raw.size() == 64 * 1024);
        }
        // small writes still work
        CHECK(processedSync(*store, processed(ok[0], "ch", {})).first);
    }
    SECTION("unopenable path throws") {
        std::string file = dir.path + "/plainfile";
        FILE* f = std::fopen(file.c_str(), "w");
        REQUIRE(f);
        std::fclose(f);
        CHECK_THROWS_AS(openSqliteStore(file + "/store.db", fastOptions()), std::runtime_error);
    }
}

TEST_CASE("store throughput probe", "[.bench]") {
    // receive -> store -> process -> deliver, as the engine drives it: a source
    // inserts while at most `window` messages are in flight; each insert's
    // callback records processing (1 delivery), whose callback records the
    // delivery as Sent.
    const int N = 100000;
    const std::ptrdiff_t window = 4096;
    for (bool full : {true, false})
        for (StorageMode mode : {StorageMode::Production, StorageMode::Development}) {
            TempDir dir;
            StoreOptions o;
            o.synchronousFull = full;
            auto store = openSqliteStore(dir.db(), o);
            const std::string raw(500, 'r');
            std::counting_semaphore<> inFlight(window);
            std::atomic<int> delivered{0};
            MessageStore* s = store.get();
            rusage ru0{}, ru1{};
            getrusage(RUSAGE_SELF, &ru0);
            auto t0 = std::chrono::steady_clock::now();
            for (int i = 0; i < N; ++i) {
                inFlight.acquire();
                auto m = makeMessage("bench", raw, mode);
                m.meta.controlId = std::to_string(i);
                m.meta.messageType = "ORU^R01";
                m.meta.patientId = "P" + std::to_string(i % 1000);
                s->insert(std::move(m), [s, &delivered, &inFlight, mode](MessageId id, const std::string&) {
                    ProcessedMessage pm;
                    pm.id = id;
                    pm.channel = "bench";
                    pm.storage = mode;
                    pm.transformed = std::string(500, 't');
                    ProcessedMessage::Delivery d;
                    d.destination = "out";
                    d.encoded = std::string(500, 'e');
                    pm.deliveries.push_back(std::move(d));
                    s->recordProcessed(std::move(pm), [s, id, &delivered, &inFlight, mode](bool, const std::string&) {
                        DeliveryUpdate up;
                        up.id = id;
                        up.channel = "bench";
                        up.destination = "out";
                        up.status = Status::Sent;
                        up.response = "MSA|AA";
                        up.storage = mode;
                        s->recordDelivery(std::move(up), [&delivered, &inFlight](bool, const std::string&) {
                            delivered++;
                            inFlight.release();
                        });
                    });
                });
            }
            while (delivered.load() < N) std::this_thread::sleep_for(1ms);
            double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            getrusage(RUSAGE_SELF, &ru1);
            auto cpu = [](const timeval& a, const timeval& b) {
                return (b.tv_sec - a.tv_sec) + (b.tv_usec - a.tv_usec) / 1e6;
            };
            double cpuSecs = cpu(ru0.ru_utime, ru1.ru_utime) + cpu(ru0.ru_stime, ru1.ru_stime);
            auto st = store->stats();
            std::printf("store bench: %-11s synchronous=%-6s %d messages in %.2f s = %.0f msg/s, %.1f us CPU/msg"
                        " (%llu writes in %llu commits)\n",
                        toString(mode), full ? "FULL" : "NORMAL", N, secs, N / secs, cpuSecs * 1e6 / N,
                        static_cast<unsigned long long>(st.writes), static_cast<unsigned long long>(st.commits));
            CHECK(countOf(*store, "bench", Status::Sent) == static_cast<std::uint64_t>(N));
        }
}

TEST_CASE("store latency probe", "[.bench]") {
    // Paced load (no saturation): how long an insert waits for its durable
    // callback, and how many writes share a commit, at a few arrival rates.
    for (int rate : {1000, 10000, 25000}) {
        TempDir dir;
        StoreOptions o;  // synchronous FULL
        auto store = openSqliteStore(dir.db(), o);
        const int n = rate * 2;  // two seconds
        std::vector<double> lat(n);
        std::atomic<int> done{0};
        const std::string raw(500, 'r');
        auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < n; ++i) {
            auto due = start + std::chrono::nanoseconds(static_cast<std::int64_t>(1e9 * i / rate));
            while (std::chrono::steady_clock::now() < due) std::this_thread::yield();
            auto t = std::chrono::steady_clock::now();
            store->insert(makeMessage("lat", raw, StorageMode::Production),
                          [&lat, &done, i, t](MessageId, const std::string&) {
                              lat[i] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t)
                                           .count();
                              done++;
                          });
        }
        store->flush();
        REQUIRE(done == n);
        std::sort(lat.begin(), lat.end());
        double sum = 0;
        for (double v : lat) sum += v;
        auto st = store->stats();
        std::printf("store latency: %5d inserts/s: mean %.0f us, p50 %.0f us, p99 %.0f us, %.1f writes/commit\n", rate,
                    sum / n, lat[n / 2], lat[n * 99 / 100], double(st.writes) / double(st.commits));
    }
}

TEST_CASE("a store is locked by its engine: a second open names the holder, and opens once it is gone", "[store][lock]") {
    TempDir t;
    auto first = openSqliteStore(t.db(), fastOptions());
    StoreOptions quick = fastOptions();
    quick.lockWait = 100ms;
    CHECK_THROWS_WITH(openSqliteStore(t.db(), quick),
                      Catch::Contains("store " + t.db() + " is in use by process " + std::to_string(::getpid())));
    CHECK(std::filesystem::exists(t.db() + ".lock"));
    CHECK((std::filesystem::status(t.db() + ".lock").permissions() & std::filesystem::perms::others_read) ==
          std::filesystem::perms::none);
    insertSync(*first, makeMessage("ch", "MSH|first"));
    first.reset();
    auto second = openSqliteStore(t.db(), quick);
    CHECK(second->search({}).size() == 1);
}

TEST_CASE("an open waits (bounded) for a holder that is letting go", "[store][lock]") {
    TempDir t;
    auto first = openSqliteStore(t.db(), fastOptions());
    std::thread closer([&] {
        std::this_thread::sleep_for(300ms);
        first.reset();
    });
    StoreOptions patient = fastOptions();
    patient.lockWait = 5000ms;
    auto began = std::chrono::steady_clock::now();
    std::unique_ptr<MessageStore> second;
    CHECK_NOTHROW(second = openSqliteStore(t.db(), patient));
    closer.join();
    CHECK(std::chrono::steady_clock::now() - began >= 250ms);
    CHECK(second != nullptr);
}

TEST_CASE("a read-only store reads beside the engine and leaves its lock and intake journal alone", "[store][lock]") {
    TempDir t;
    StoreOptions readOnly;
    readOnly.readOnly = true;
    CHECK_THROWS_WITH(openSqliteStore(t.db(), readOnly), Catch::Contains("no store at " + t.db()));
    CHECK_FALSE(std::filesystem::exists(t.db()));

    auto engine = openSqliteStore(t.db(), fastOptions());
    std::vector<MessageId> ids;
    for (int i = 0; i < 5; ++i) ids.push_back(insertSync(*engine, makeMessage("ch", "MSH|" + std::to_string(i))));
    engine->flush();
    auto journalFiles = [&] {
        std::set<std::string> names;
        for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(t.db()).parent_path()))
            if (e.path().filename().string().find("-jnl.") != std::string::npos) names.insert(e.path().string());
        return names;
    };
    auto before = journalFiles();
    REQUIRE_FALSE(before.empty());
    {
        auto reader = openSqliteStore(t.db(), readOnly);
        CHECK(reader->search({}).size() == 5);
        auto d = reader->get(ids.back());
        REQUIRE(d);
        CHECK(d->raw == "MSH|4");  // read from the engine's live journal segment
    }
    CHECK(journalFiles() == before);  // not replayed, renamed or deleted by the reader
    MessageId later = insertSync(*engine, makeMessage("ch", "MSH|later"));
    engine->flush();
    CHECK(engine->get(ids.front())->raw == "MSH|0");
    engine.reset();
    auto reopened = openSqliteStore(t.db(), fastOptions());
    CHECK(reopened->get(later)->raw == "MSH|later");
    CHECK(reopened->search({}).size() == 6);
}

// ---------------------------------------------------------------- source marks

TEST_CASE("a source mark is stored with its message and is the latest value, before and after a reopen", "[store][marks]") {
    for (bool journal : {true, false}) {
        DYNAMIC_SECTION((journal ? "with" : "without") << " the intake journal") {
            TempDir dir;
            {
                auto store = openSqliteStore(dir.db(), options(journal));
                CHECK_FALSE(store->sourceMark("studies/orthanc"));
                MessageId a = insertSync(*store, withMark("{\"n\":1}", "studies/orthanc", "seq 1"));
                CHECK(store->sourceMark("studies/orthanc") == std::optional<std::string>("seq 1"));
                insertSync(*store, withMark("{\"n\":2}", "studies/orthanc", "seq 2"));
                insertSync(*store, withMark("{\"n\":9}", "other/orthanc", "seq 9"));
                NewMessage plain = withMark("{\"n\":3}", "", "");
                plain.mark.reset();  // a message without a mark leaves the marks alone
                MessageId c = insertSync(*store, plain);
                CHECK(c > a);
                CHECK(store->sourceMark("studies/orthanc") == std::optional<std::string>("seq 2"));
                CHECK(store->sourceMark("other/orthanc") == std::optional<std::string>("seq 9"));
                store->flush();
                CHECK(markOf(dir.db(), "studies/orthanc") == "seq 2");
                CHECK(store->get(a)->raw == "{\"n\":1}");
            }
            auto store = openSqliteStore(dir.db(), options(journal));
            CHECK(store->sourceMark("studies/orthanc") == std::optional<std::string>("seq 2"));
            CHECK(store->sourceMark("other/orthanc") == std::optional<std::string>("seq 9"));
            CHECK(messagesOf(*store) == 4);
        }
    }
}

TEST_CASE("a mark with no message advances the position in order with the messages", "[store][marks]") {
    for (bool journal : {true, false}) {
        DYNAMIC_SECTION((journal ? "with" : "without") << " the intake journal") {
            TempDir dir;
            MessageId before = 0, after = 0;
            {
                auto store = openSqliteStore(dir.db(), options(journal));
                before = insertSync(*store, withMark("m1", "studies/orthanc", "10"));
                markSync(*store, "studies/orthanc", "25");  // changes 11..25 made no message
                CHECK(store->sourceMark("studies/orthanc") == std::optional<std::string>("25"));
                after = insertSync(*store, withMark("m2", "studies/orthanc", "26"));
                CHECK(after > before);
                markSync(*store, "studies/orthanc", "30");
                store->flush();
                CHECK(markOf(dir.db(), "studies/orthanc") == "30");
                CHECK(messagesOf(*store) == 2);  // a mark is no message
            }
            auto store = openSqliteStore(dir.db(), options(journal));
            CHECK(store->sourceMark("studies/orthanc") == std::optional<std::string>("30"));
            // Ids go on after those of the marks: none is taken twice.
            CHECK(insertSync(*store, withMark("m3", "studies/orthanc", "31")) > after + 1);
        }
    }
}

TEST_CASE("a source mark is read back before the writer applies its record", "[store][marks]") {
    TempDir dir;
    auto store = openSqliteStore(dir.db(), options(true, true));
    insertSync(*store, withMark("m1", "studies/orthanc", "1"));
    markSync(*store, "studies/orthanc", "7");
    CHECK(markOf(dir.db(), "studies/orthanc").empty());  // still in the journal only
    CHECK(store->sourceMark("studies/orthanc") == std::optional<std::string>("7"));
    store->flush();
    CHECK(markOf(dir.db(), "studies/orthanc") == "7");
}

TEST_CASE("after a crash the journal gives back each message with its mark and the latest mark", "[store][marks]") {
    TempDir dir;
    const int applied = 20, journaled = 30;
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int failures = 0;
        auto store = openSqliteStore(dir.db(), options(true, true));
        for (int i = 1; i <= applied; ++i)
            if (insertSync(*store, withMark("m" + std::to_string(i), "studies/orthanc", std::to_string(i))) <= 0) failures |= 1;
        store->flush();  // these are in SQLite, the rest only in the journal
        for (int i = applied + 1; i <= journaled; ++i)
            if (insertSync(*store, withMark("m" + std::to_string(i), "studies/orthanc", std::to_string(i))) <= 0) failures |= 2;
        std::promise<bool> p;
        store->saveMark({"studies/orthanc", "40"}, [&](bool ok, const std::string&) { p.set_value(ok); });
        if (!p.get_future().get()) failures |= 4;
        _exit(failures);  // crash: no destructor, no flush
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    CHECK(markOf(dir.db(), "studies/orthanc") == std::to_string(applied));
    auto store = openSqliteStore(dir.db(), options(true));
    CHECK(store->sourceMark("studies/orthanc") == std::optional<std::string>("40"));
    CHECK(messagesOf(*store) == static_cast<std::size_t>(journaled));  // each once
    store->flush();
    CHECK(markOf(dir.db(), "studies/orthanc") == "40");
    // Once more, with nothing left in the journal: the database alone says the same.
    store.reset();
    store = openSqliteStore(dir.db(), options(true));
    CHECK(store->sourceMark("studies/orthanc") == std::optional<std::string>("40"));
    CHECK(messagesOf(*store) == static_cast<std::size_t>(journaled));
}

TEST_CASE("a reprocessed copy is linked to its original in its own journal record: a crash loses neither", "[store]") {
    TempDir dir;
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        auto store = openSqliteStore(dir.db(), options(true, true));
        MessageId original = insertSync(*store, makeMessage("ch", "first"));
        store->flush();  // the original in SQLite, the copy only in the journal
        auto copy = makeMessage("ch", "first, edited");
        copy.copyOf = original;
        _exit(original == 1 && insertSync(*store, copy) == 2 ? 0 : 1);  // crash: no destructor, no flush
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    auto store = openSqliteStore(dir.db(), options(true));
    REQUIRE(store->get(2));
    CHECK(store->get(2)->raw == "first, edited");
    CHECK(store->get(2)->original == MessageId{1});
    CHECK(store->get(1)->copies == std::vector<MessageId>{2});
}

TEST_CASE("a replayed journal never puts an older mark back over a newer one", "[store][marks]") {
    // What a journal kept whole after a blocked insert replays at the next open:
    // records already in SQLite come again, in order, the messages skipped as
    // present, the marks alone applied again. The row's record id keeps the newer value.
    TempDir dir;
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        auto store = openSqliteStore(dir.db(), options(true));
        insertSync(*store, withMark("m1", "studies/orthanc", "1"));
        markSync(*store, "studies/orthanc", "2");
        insertSync(*store, withMark("m3", "studies/orthanc", "3"));
        store->flush();
        _exit(0);  // the journal stays
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    REQUIRE(markOf(dir.db(), "studies/orthanc") == "3");
    {
        sqlite3* h = nullptr;
        REQUIRE(sqlite3_open(dir.db().c_str(), &h) == SQLITE_OK);
        REQUIRE(sqlite3_exec(h, "UPDATE store_meta SET value = 0 WHERE key = 'journal_applied'", nullptr, nullptr,
                             nullptr) == SQLITE_OK);
        sqlite3_close(h);
    }
    auto store = openSqliteStore(dir.db(), options(true));
    CHECK(store->sourceMark("studies/orthanc") == std::optional<std::string>("3"));
    CHECK(messagesOf(*store) == 2);
    store->flush();
    CHECK(markOf(dir.db(), "studies/orthanc") == "3");
}
