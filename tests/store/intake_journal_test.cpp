#include <catch2/catch.hpp>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/store/message_store.h"
#include "engine/store/sqlite/intake_journal.h"
#include "engine/util/round.h"

using namespace junction::store;

namespace {

struct JournalDir {
    std::string path;
    JournalDir() {
        char tmpl[] = "/tmp/junction-journal-test-XXXXXX";
        char* p = mkdtemp(tmpl);
        REQUIRE(p != nullptr);
        path = p;
    }
    ~JournalDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string db() const { return path + "/store.db"; }
    std::vector<std::string> segments() const {
        std::vector<std::string> out;
        for (const auto& e : std::filesystem::directory_iterator(path)) {
            std::string n = e.path().filename().string();
            if (n.find("-jnl.") != std::string::npos) out.push_back(e.path().string());
        }
        std::sort(out.begin(), out.end());
        return out;
    }
};

NewMessage sampleMessage() {
    NewMessage m;
    m.channel = "orders";
    m.dataType = "hl7v2";
    m.source = "mllp 127.0.0.1:4000";
    m.raw = std::string("MSH|^~\\&|A|B\rPID|1||123\r") + std::string(1, '\0') + "binary";
    m.meta = {"ORM^O01", "CTRL1", "123", "ACC9"};
    m.storage = StorageMode::Production;
    ProcessedMessage p;
    p.status = Status::Transformed;
    p.transformed = "transformed text";
    p.meta = {"ORM^O01", "CTRL1", "123", "ACC9-X"};
    p.storage = StorageMode::Production;
    ProcessedMessage::Delivery a;
    a.destination = "emr";
    a.encoded = "encoded for emr";
    ProcessedMessage::Delivery b;
    b.destination = "archive";
    b.status = Status::Filtered;
    b.error = "not for the archive";
    p.deliveries = {a, b};
    m.processed = p;
    return m;
}

// A new journal on `dir` reads back the records 1..n, in that order.
void requireIdsInOrder(const JournalDir& dir, MessageId n) {
    IntakeJournal again(dir.db(), false, 1u << 20);
    auto got = again.recover();
    REQUIRE(got.size() == static_cast<std::size_t>(n));
    for (MessageId id = 1; id <= n; ++id) CHECK(got[id - 1].id == id);
}

MessageId insertSync(MessageStore& s, NewMessage m) {
    std::promise<MessageId> p;
    auto f = p.get_future();
    s.insert(std::move(m), [&](MessageId id, const std::string&) { p.set_value(id); });
    return f.get();
}

// Runs `body` in a child process and returns its exit code (the body's failure
// bits). For file size limits (RLIMIT_FSIZE), which are per process; there a
// write past the limit fails with EFBIG instead of raising SIGXFSZ.
int inChild(const std::function<int()>& body) {
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::signal(SIGXFSZ, SIG_IGN);
        ::_exit(body());
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

// Lets this process's files grow to `path`'s size plus `extra` bytes; returns the limit before.
rlimit limitFileSize(const std::string& path, std::uintmax_t extra) {
    rlimit before{};
    ::getrlimit(RLIMIT_FSIZE, &before);
    rlimit small{static_cast<rlim_t>(std::filesystem::file_size(path) + extra), before.rlim_max};
    ::setrlimit(RLIMIT_FSIZE, &small);
    return before;
}

}  // namespace

TEST_CASE("journal records round-trip every field", "[store][journal]") {
    NewMessage m = sampleMessage();
    std::string rec = encodeRecord(0, 1700000000123, m);
    setRecordId(rec, 4242);
    JournalRecord r = decodeRecord(rec);
    CHECK(r.id == 4242);
    CHECK(r.receivedMs == 1700000000123);
    CHECK(r.message.channel == m.channel);
    CHECK(r.message.dataType == m.dataType);
    CHECK(r.message.source == m.source);
    CHECK(r.message.raw == m.raw);
    CHECK(r.message.meta.accession == "ACC9");
    CHECK(r.message.storage == StorageMode::Production);
    REQUIRE(r.message.processed);
    const auto& p = *r.message.processed;
    CHECK(p.id == 4242);
    CHECK(p.transformed == "transformed text");
    CHECK(p.meta.accession == "ACC9-X");
    REQUIRE(p.deliveries.size() == 2);
    CHECK(p.deliveries[0].destination == "emr");
    CHECK(p.deliveries[0].status == Status::Queued);
    CHECK(p.deliveries[0].encoded == "encoded for emr");
    CHECK(p.deliveries[1].status == Status::Filtered);
    CHECK(p.deliveries[1].error == "not for the archive");

    SECTION("a copy of the raw or transformed message is written as a reference") {
        NewMessage c = m;
        c.processed->transformed = c.raw;
        c.processed->deliveries[0].encoded = c.raw;
        c.processed->deliveries[1].encoded = "its own";
        std::string copies = encodeRecord(1, 0, c);
        c.processed->transformed = "T" + c.raw;
        c.processed->deliveries[0].encoded = c.processed->transformed;
        std::string changed = encodeRecord(1, 0, c);
        CHECK(copies.size() + c.raw.size() + 1 < changed.size());
        auto a = decodeRecord(copies);
        CHECK(a.message.processed->transformed == m.raw);
        CHECK(a.message.processed->deliveries[0].encoded == m.raw);
        CHECK(a.message.processed->deliveries[1].encoded == "its own");
        auto b = decodeRecord(changed);
        CHECK(b.message.processed->transformed == "T" + m.raw);
        CHECK(b.message.processed->deliveries[0].encoded == "T" + m.raw);
    }
    SECTION("a reprocess names its original (format 5), with or without a mark and a log") {
        NewMessage c = m;
        c.copyOf = 77;
        CHECK(static_cast<int>(encodeRecord(1, 0, c)[0]) == 5);
        CHECK(decodeRecord(encodeRecord(1, 0, c)).message.copyOf == 77);
        CHECK(decodeRecord(encodeRecord(1, 0, c)).message.processed->log.empty());
        c.mark = SourceMark{"k", "v"};
        c.processed->log.push_back({});
        c.processed->log.back().text = "a line";
        auto back = decodeRecord(encodeRecord(1, 0, c));
        CHECK(back.message.copyOf == 77);
        CHECK(back.message.mark->value == "v");
        REQUIRE(back.message.processed->log.size() == 1);
        CHECK(back.message.processed->log[0].text == "a line");
        c.processed.reset();
        c.mark.reset();
        CHECK(decodeRecord(encodeRecord(1, 0, c)).message.copyOf == 77);
        CHECK(decodeRecord(rec).message.copyOf == 0);
        CHECK(static_cast<int>(rec[0]) != 5);  // other records keep their older format
    }
    SECTION("records of the first format are read") {
        NewMessage plain = m;
        plain.processed.reset();  // the same bytes in both formats but the format byte
        std::string v1 = encodeRecord(7, 0, plain);
        v1[0] = 1;
        CHECK(decodeRecord(v1).message.raw == m.raw);
    }
    SECTION("a damaged payload is refused") {
        CHECK_THROWS_AS(decodeRecord(rec.substr(0, rec.size() - 3)), std::runtime_error);
        std::string bad = rec;
        bad[0] = 9;  // unknown format
        CHECK_THROWS_AS(decodeRecord(bad), std::runtime_error);
    }
}

TEST_CASE("journal segments rotate and are released once applied", "[store][journal]") {
    JournalDir dir;
    std::string rec(1000, 'r');
    {
        IntakeJournal j(dir.db(), false, 8192);
        CHECK(j.recover().empty());
        NewMessage m;
        m.channel = "c";
        m.raw = rec;
        for (MessageId id = 1; id <= 40; ++id) {
            std::string r = encodeRecord(id, 0, m);
            j.append(id, r);
        }
        CHECK(j.segments() >= 5);  // ~8 records per 8 KB segment
        j.release(20);
        std::size_t left = j.segments();
        CHECK(left < 5);
        CHECK(left >= 3);
        j.release(40);
        CHECK(j.segments() == 1);  // the segment being written stays
    }
    // Reopen: the records of the old segments come back, in order.
    IntakeJournal j2(dir.db(), false, 8192);
    auto back = j2.recover();
    REQUIRE_FALSE(back.empty());  // the segment that was being written
    CHECK(back.size() < 40);
    CHECK(back.back().id == 40);
    for (std::size_t i = 1; i < back.size(); ++i) CHECK(back[i].id == back[i - 1].id + 1);
}

TEST_CASE("applied segments with referenced content become content files, read back until dropped", "[store][journal]") {
    JournalDir dir;
    auto contentFiles = [&] {
        std::vector<std::string> out;
        for (const auto& e : std::filesystem::directory_iterator(dir.path))
            if (e.path().filename().string().find("-raw.") != std::string::npos) out.push_back(e.path().string());
        return out;
    };
    auto rawOf = [](MessageId id) { return "raw of " + std::to_string(id) + std::string(900, 'x'); };
    std::vector<std::uint64_t> refs(61, 0);
    {
        IntakeJournal j(dir.db(), false, 8192);
        CHECK(j.recover().empty());
        for (MessageId id = 1; id <= 60; ++id) {
            NewMessage m;
            m.channel = "c";
            m.raw = rawOf(id);
            std::string r = encodeRecord(id, 0, m);
            // 1-20 and 41-60 are referenced; 21-40 are not (their segments are deleted once applied)
            bool kept = id <= 20 || id > 40;
            j.append(id, r, kept ? &refs[id] : nullptr);
            if (kept) CHECK(refs[id] != 0);
        }
        CHECK(j.readContent(refs[50], 50) == rawOf(50));  // still in a journal segment
        CHECK(j.readContent(refs[60], 60) == rawOf(60));  // in the segment being written
        j.release(60);
        CHECK(j.segments() == 1);
        std::size_t kept = j.contentFiles();
        CHECK(kept >= 4);   // ~8 records per 8 KB segment: 1-20 and 41-5x
        CHECK(kept <= 6);   // the segments of 21-40 alone are gone
        CHECK(contentFiles().size() == kept);
        CHECK(j.readContent(refs[1], 1) == rawOf(1));
        CHECK(j.readContent(refs[20], 20) == rawOf(20));
        CHECK(j.readContent(refs[45], 45) == rawOf(45));
        CHECK_FALSE(j.readContent(refs[20], 21));  // a reference answers for its own message only
        j.retireAll();  // the segment being written (61's neighbours) is kept too
        CHECK(j.contentFiles() == kept + 1);
    }
    CHECK(dir.segments().empty());
    {
        // Reopened: the content files are found again, new segments are numbered after them.
        IntakeJournal j(dir.db(), false, 8192);
        CHECK(j.recover().empty());
        CHECK(j.contentFiles() == contentFiles().size());
        CHECK(j.readContent(refs[60], 60) == rawOf(60));
        NewMessage m;
        m.channel = "c";
        m.raw = rawOf(61);
        std::uint64_t ref = 0;
        j.append(61, encodeRecord(61, 0, m), &ref);
        CHECK((ref >> 32) > (refs[60] >> 32));
        CHECK(j.readContent(ref, 61) == rawOf(61));
        // Messages below 21 are pruned: the files holding only them go.
        std::size_t before = j.contentFiles();
        CHECK(j.dropContentBelow(21) >= 2);
        CHECK(j.contentFiles() < before);
        CHECK_FALSE(j.readContent(refs[1], 1));
        CHECK(j.readContent(refs[45], 45) == rawOf(45));
        CHECK(j.dropContentBelow(1000) > 0);
        CHECK(j.contentFiles() == 0);
        CHECK(contentFiles().empty());
        CHECK(j.readContent(ref, 61) == rawOf(61));  // the segment being written is not a content file
    }
}

TEST_CASE("a torn journal tail is reported and the records before it are applied", "[store][journal]") {
    JournalDir dir;
    std::vector<MessageId> acked;
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        StoreOptions o;
        o.synchronousFull = false;
        o.maxBatchDelay = std::chrono::milliseconds(60000);  // the writer keeps lingering
        o.maxBatchRows = 100000;
        auto store = openSqliteStore(dir.db(), o);
        for (int i = 0; i < 50; ++i) insertSync(*store, sampleMessage());
        _exit(0);  // crash before the writer applied anything
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    auto segs = dir.segments();
    REQUIRE_FALSE(segs.empty());
    // A record cut short by the crash: a header announcing more than is there.
    {
        std::ofstream out(segs.back(), std::ios::binary | std::ios::app);
        const char partial[] = {char(200), 0, 0, 0, 1, 2, 3, 4, 'M', 'S', 'H'};
        out.write(partial, sizeof partial);
    }
    StoreOptions o;
    o.synchronousFull = false;
    auto store = openSqliteStore(dir.db(), o);
    SearchQuery q;
    q.channel = "orders";
    q.limit = 1000;
    auto found = store->search(q);
    CHECK(found.size() == 50);
    auto d = store->get(found.front().id);
    REQUIRE(d);
    CHECK(d->raw == sampleMessage().raw);
    REQUIRE(d->deliveries.size() == 2);
    CHECK(store->pendingDeliveries("orders", 1000).size() == 50);  // emr queued, archive filtered
    // New ids continue after the journaled ones.
    MessageId next = insertSync(*store, sampleMessage());
    for (const auto& s : found) CHECK(next > s.id);
}

TEST_CASE("a journaled message whose record could not be written keeps its raw content in SQLite", "[store][journal]") {
    JournalDir dir;
    int failures = inChild([&] {
        int failures = 0;
        StoreOptions o;
        o.synchronousFull = false;
        o.maxBatchDelay = std::chrono::milliseconds(60000);  // the writer waits for flush() below
        o.maxBatchRows = 100000;
        {
            auto store = openSqliteStore(dir.db(), o);
            NewMessage m = sampleMessage();
            MessageId first = insertSync(*store, m);
            rlimit before = limitFileSize(dir.segments().back(), 100);
            std::string error;
            MessageId failedId = -1;
            {
                junction::util::Round round;
                m.raw = std::string(5000, 'f');  // does not fit under the limit
                store->insert(m, [&](MessageId id, const std::string& e) {
                    failedId = id;
                    error = e;
                });
                round.end();
            }
            ::setrlimit(RLIMIT_FSIZE, &before);
            if (failedId != 0 || error.find("write failed") == std::string::npos) failures |= 1;
            m.raw = "after";
            MessageId third = insertSync(*store, m);  // its record takes the failed one's place
            auto failed = store->get(first + 1);      // stored, though not acknowledged
            if (!failed || failed->raw != std::string(5000, 'f')) failures |= 2;
            auto after = store->get(third);
            if (!after || after->raw != "after") failures |= 4;
        }
        // After a restart too (the failed message's raw is in SQLite, not in a content file).
        auto store = openSqliteStore(dir.db(), o);
        auto failed = store->get(2);
        if (!failed || failed->raw != std::string(5000, 'f')) failures |= 8;
        return failures;
    });
    CHECK((failures & 1) == 0);  // the insert was answered with the write's error
    CHECK((failures & 2) == 0);  // its raw content is not lost to the record that took its place
    CHECK((failures & 4) == 0);
    CHECK((failures & 8) == 0);
}

TEST_CASE("a clean shutdown leaves no journal behind, applied segments are not replayed", "[store][journal]") {
    JournalDir dir;
    StoreOptions o;
    o.synchronousFull = true;
    {
        auto store = openSqliteStore(dir.db(), o);
        for (int i = 0; i < 20; ++i) CHECK(insertSync(*store, sampleMessage()) > 0);
    }
    CHECK(dir.segments().empty());
    auto store = openSqliteStore(dir.db(), o);
    CHECK(store->pendingDeliveries("orders", 1000).size() == 20);  // not doubled
}

TEST_CASE("without the journal every insert is committed before its callback", "[store][journal]") {
    JournalDir dir;
    StoreOptions o;
    o.synchronousFull = false;
    o.journal = false;
    auto store = openSqliteStore(dir.db(), o);
    insertSync(*store, sampleMessage());
    CHECK(dir.segments().empty());
    CHECK(store->stats().writes == 1);
}

TEST_CASE("in an event loop's round the journal syncs once, at the end of the round, on the loop's thread", "[store][journal]") {
    JournalDir dir;
    IntakeJournal j(dir.db(), true, 1u << 20);
    CHECK(j.recover().empty());
    // The sync thread takes whatever waits when it first looks: let it start
    // and go to sleep first (nothing wakes it during the round).
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    NewMessage m;
    m.channel = "c";
    m.raw = "MSH|^~\\&|A|B\r";
    std::mutex mu;
    std::vector<std::thread::id> ran;
    std::string errors;
    auto record = [&](const std::string& e) {
        std::lock_guard<std::mutex> lock(mu);
        ran.push_back(std::this_thread::get_id());
        errors += e;
    };
    std::uint64_t before = j.syncs();
    {
        junction::util::Round round;
        for (MessageId id = 1; id <= 5; ++id) j.whenDurable(j.append(id, encodeRecord(id, 0, m)), record);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        {
            std::lock_guard<std::mutex> lock(mu);
            CHECK(ran.empty());  // not before the round ends, and not by the sync thread
        }
        CHECK(round.end());
        CHECK_FALSE(round.end());  // nothing left
    }
    REQUIRE(ran.size() == 5);
    for (auto t : ran) CHECK(t == std::this_thread::get_id());
    CHECK(errors.empty());
    CHECK(j.syncs() - before == 1);  // one fdatasync for the whole round

    SECTION("outside a round the sync thread answers") {
        std::promise<std::thread::id> where;
        auto f = where.get_future();
        j.whenDurable(j.append(6, encodeRecord(6, 0, m)), [&](const std::string&) { where.set_value(std::this_thread::get_id()); });
        REQUIRE(f.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
        CHECK(f.get() != std::this_thread::get_id());
        CHECK(j.syncs() - before == 2);
    }
}

TEST_CASE("in an event loop's round the journal writes the round's records once, at its end, then answers them", "[store][journal]") {
    bool sync = GENERATE(false, true);
    JournalDir dir;
    std::vector<std::string> records;
    {
        IntakeJournal j(dir.db(), sync, 1u << 20);
        CHECK(j.recover().empty());
        std::this_thread::sleep_for(std::chrono::milliseconds(sync ? 200 : 0));  // the sync thread asleep first
        NewMessage m;
        m.channel = "c";
        std::vector<std::string> errors;
        std::vector<std::thread::id> ran;
        std::uint64_t syncsBefore = j.syncs();
        std::string segment = dir.segments().back();
        {
            junction::util::Round round;
            for (MessageId id = 1; id <= 3; ++id) {
                m.raw = "MSH|^~\\&|A|B|||||ORM^O01|" + std::to_string(id) + "\r";
                records.push_back(encodeRecord(id, 0, m));
                j.appendInRound(id, records.back(), [&](const std::string& e) {
                    errors.push_back(e);
                    ran.push_back(std::this_thread::get_id());
                });
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            CHECK(errors.empty());  // nothing answered before the round ends
            CHECK(j.writes() == 0);
            CHECK(std::filesystem::file_size(segment) == (sync ? 1u << 20 : 0u));  // zero-filled ahead with sync
            CHECK(round.end());
        }
        REQUIRE(errors.size() == 3);
        for (const auto& e : errors) CHECK(e.empty());
        for (auto t : ran) CHECK(t == std::this_thread::get_id());
        CHECK(j.writes() == 1);  // one write for the round's three records
        if (sync) CHECK(j.syncs() - syncsBefore == 1);
        if (!sync) {
            std::size_t bytes = 0;
            for (const auto& r : records) bytes += 8 + r.size();
            CHECK(std::filesystem::file_size(segment) == bytes);
        }
    }
    requireIdsInOrder(dir, 3);
}

TEST_CASE("a record's content reads back before its round has written it, and after", "[store][journal]") {
    bool sync = GENERATE(false, true);
    JournalDir dir;
    IntakeJournal j(dir.db(), sync, 1u << 20);
    CHECK(j.recover().empty());
    NewMessage m;
    m.channel = "c";
    std::vector<std::uint64_t> refs(3, 0);
    int answered = 0;
    {
        junction::util::Round round;
        for (MessageId id = 1; id <= 2; ++id) {
            m.raw = "MSH|^~\\&|A|B|||||ORM^O01|" + std::to_string(id) + "\r";
            j.appendInRound(id, encodeRecord(id, 0, m), [&](const std::string&) { ++answered; }, &refs[id]);
        }
        CHECK(j.writes() == 0);
        CHECK(j.readContent(refs[2], 2) == "MSH|^~\\&|A|B|||||ORM^O01|2\r");  // from the round's unwritten bytes
        CHECK_FALSE(j.readContent(refs[2] + 8, 2));                      // not a record's start
        CHECK_FALSE(j.readContent(refs[1], 2));
        CHECK(round.end());
    }
    CHECK(answered == 2);
    CHECK(j.writes() == 1);
    CHECK(j.readContent(refs[1], 1) == "MSH|^~\\&|A|B|||||ORM^O01|1\r");  // from the file
    CHECK(j.readContent(refs[2], 2) == "MSH|^~\\&|A|B|||||ORM^O01|2\r");
    // Past the last record: zeros (sync: zero-filled ahead) or the file's end.
    CHECK_FALSE(j.readContent(refs[2] + 4096, 3));
}

TEST_CASE("a record written at once writes the records a round left before it, in order", "[store][journal]") {
    JournalDir dir;
    {
        IntakeJournal j(dir.db(), false, 1u << 20);
        CHECK(j.recover().empty());
        NewMessage m;
        m.channel = "c";
        m.raw = "MSH|^~\\&|A|B\r";
        int answered = 0;
        junction::util::Round round;
        j.appendInRound(1, encodeRecord(1, 0, m), [&](const std::string& e) { answered += e.empty(); });
        j.appendInRound(2, encodeRecord(2, 0, m), [&](const std::string& e) { answered += e.empty(); });
        std::thread other([&] { j.append(3, encodeRecord(3, 0, m)); });  // another source, not in a round
        other.join();
        CHECK(j.writes() == 1);  // 1 and 2 went out with 3, ahead of it
        CHECK(answered == 0);    // their waiters are still answered at the end of the round
        CHECK(round.end());
        CHECK(answered == 2);
        CHECK(j.writes() == 1);
    }
    requireIdsInOrder(dir, 3);
}

TEST_CASE("a round's failed journal write is reported to its waiters, and the next records take its place", "[store][journal]") {
    JournalDir dir;
    int failures = inChild([&] {
        int failures = 0;
        {
            IntakeJournal j(dir.db(), false, 1u << 20);
            j.recover();
            NewMessage m;
            m.channel = "c";
            m.raw = "small";
            j.append(1, encodeRecord(1, 0, m));
            rlimit before = limitFileSize(dir.segments().back(), 100);
            std::string error;
            {
                junction::util::Round round;
                m.raw = std::string(1000, 'x');  // does not fit under the limit
                j.appendInRound(2, encodeRecord(2, 0, m), [&](const std::string& e) { error = e; });
                round.end();
            }
            if (error.find("intake journal: write failed") == std::string::npos) failures |= 1;
            ::setrlimit(RLIMIT_FSIZE, &before);
            m.raw = "after";
            j.append(3, encodeRecord(3, 0, m));  // where 2 would have been
        }
        IntakeJournal again(dir.db(), false, 1u << 20);
        auto got = again.recover();
        if (got.size() != 2 || got[0].id != 1 || got[1].id != 3 || got[1].message.raw != "after") failures |= 2;
        return failures;
    });
    CHECK((failures & 1) == 0);  // the round's waiter got the write's error
    CHECK((failures & 2) == 0);  // the segment reads 1 then 3
}

TEST_CASE("journal records carry a source mark or a mark alone, and records without one keep format 2", "[store][marks][journal]") {
    NewMessage m = sampleMessage();
    m.mark = SourceMark{"studies/orthanc", "{\"server\":\"main\",\"seq\":42}"};
    std::string rec = encodeRecord(0, 1700000000123, m);
    CHECK(rec[0] == 3);
    setRecordId(rec, 77);
    JournalRecord r = decodeRecord(rec);
    CHECK(r.id == 77);
    CHECK_FALSE(r.markOnly);
    CHECK(r.message.raw == sampleMessage().raw);
    CHECK(r.message.processed);
    REQUIRE(r.message.mark);
    CHECK(r.message.mark->key == "studies/orthanc");
    CHECK(r.message.mark->value == "{\"server\":\"main\",\"seq\":42}");

    std::string alone = encodeMarkRecord(78, 1700000000124, {"studies/orthanc", "43"});
    JournalRecord a = decodeRecord(alone);
    CHECK(a.id == 78);
    CHECK(a.markOnly);
    REQUIRE(a.message.mark);
    CHECK(a.message.mark->value == "43");

    m.mark.reset();
    std::string plain = encodeRecord(79, 0, m);
    CHECK(plain[0] == 2);  // read by the releases before marks
    CHECK_FALSE(decodeRecord(plain).message.mark);

    std::string bad = alone;
    bad[bad.size() - 2 - 4 - 15 - 4 - 1] = 9;  // the flags byte: then a 15-byte key, a 2-byte value
    CHECK_THROWS_AS(decodeRecord(bad), std::runtime_error);
    CHECK_THROWS_AS(decodeRecord(alone.substr(0, alone.size() - 1)), std::runtime_error);
}
