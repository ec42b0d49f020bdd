// Message search in a large store: fills a store with COUNT ORM^O01 messages
// (each its own patient, accession number and control id, spread over ten
// days, storage: production, through the store's API), then times searches
// through MessageStore::search (what GET /api/v1/messages runs, without the
// HTTP round trip) against the same lookups in plain SQL on the same database
// (a second connection):
//   control id, patient id, accession   ours: search(); peer: SELECT ... WHERE
//                                        <column> = ? ORDER BY id DESC LIMIT 100
//   text (rare: one message's phone number; common: a procedure name found in
//   a fifth of the messages, newest 100)  ours: search() with text (the text
//                                        index); peer: a LIKE scan of the raw
//                                        content, newest day first, LIMIT 100
// It prints p50/p99 of each in milliseconds and the ratios peer/ours (above 1:
// ours is faster), the query plans of the exact searches, and the fill rate.
// The store is filled without the intake journal, so that the raw content is
// in SQLite where the peer's LIKE can read it (with the journal, the text
// index is written the same way).
// The fill prints how long the text index took to catch up after the last
// message (index_behind_s) and its size.
// Usage: bench_message_search DIR [--count N] [--lookups N] [--no-text-index]
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/store/message_store.h"

using namespace junction::store;

namespace {

const char* kProcedures[] = {"CTCHEST^CT Chest without contrast", "MRHEAD^MR Head with contrast",
                             "XRKNEE^XR Knee 2 views", "USABD^US Abdomen complete", "NMBONE^NM Bone scan"};
const char* kFamily[] = {"DOE", "SMITH", "NGUYEN", "GARCIA", "MULLER", "ROSSI", "DUBOIS", "KOWALSKI", "SILVA", "OKAFOR"};
const char* kGiven[] = {"JANE", "JOHN", "MARIA", "AHMED", "YUKI", "PIERRE", "ANNA", "LUCA", "SOFIA", "KWAME"};

std::string patientOf(long i) { return "MRN" + std::to_string(1000000 + i * 7919 % 9000000); }
std::string accessionOf(long i) { return "ACC" + std::to_string(20260000000L + i); }
std::string controlOf(long i) { return "ORM" + std::to_string(i); }
std::string phoneOf(long i) { return "(555)" + std::to_string(1000000 + i); }

std::string ormOf(long i) {
    std::string mrn = patientOf(i), acc = accessionOf(i), ord = "ORD" + std::to_string(500000 + i);
    std::string name = std::string(kFamily[i % 10]) + "^" + kGiven[(i / 10) % 10] + "^" + std::to_string(i % 997);
    const char* proc = kProcedures[i % 5];
    return "MSH|^~\\&|RIS|CITYHOSP|JUNCTION|RADIOLOGY|20261123081500||ORM^O01|" + controlOf(i) +
           "|P|2.3.1||||||8859/1\r"
           "PID|1||" + mrn + "^^^CITYHOSP^MR||" + name + "||19770101|F|||12 HARBOUR ROAD^^SPRINGFIELD^^12345^USA||" +
           phoneOf(i) + "|||M||ACCT" + std::to_string(i) +
           "\r"
           "PV1|1|O|RAD^XR1^01^CITYHOSP||||1234^WELBY^MARCUS^J^^DR|||||||||||V" + std::to_string(i) +
           "\r"
           "ORC|NW|" + ord + "|" + acc + "||SC||^^^20261123093000^^R||20261123081400|CLERK^ANNA|||RAD^^^CITYHOSP\r"
           "OBR|1|" + ord + "|" + acc + "|" + proc +
           "|||20261123081400|||||||||1234^WELBY^MARCUS^J^^DR||" + acc +
           "|RP" + std::to_string(i) + "|SPS" + std::to_string(i) +
           "||||CT|||^^^20261123093000^^R||||Cough for 3 weeks, rule out pneumonia\r";
}

double msSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

struct Figures {
    double p50 = 0, p99 = 0;
};

Figures figures(std::vector<double> ms) {
    std::sort(ms.begin(), ms.end());
    auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<std::size_t>(q * ms.size()))]; };
    return {at(0.5), at(0.99)};
}

// Times `run(k)` for k in 0..n-1; `found` counts the rows it returned.
Figures timed(int n, const std::function<std::size_t(int)>& run, std::size_t& found) {
    std::vector<double> ms;
    for (int k = 0; k < n; ++k) {
        auto t0 = std::chrono::steady_clock::now();
        found += run(k);
        ms.push_back(msSince(t0));
    }
    return figures(ms);
}

struct Db {
    sqlite3* h = nullptr;
    explicit Db(const std::string& path) {
        if (sqlite3_open_v2(path.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) std::exit(2);
        sqlite3_exec(h, "PRAGMA cache_size = -16384", nullptr, nullptr, nullptr);
    }
    ~Db() { sqlite3_close(h); }
    sqlite3_stmt* prepare(const std::string& sql) {
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
            std::fprintf(stderr, "bench_message_search: %s: %s\n", sql.c_str(), sqlite3_errmsg(h));
            std::exit(2);
        }
        return st;
    }
    // Rows of `st` with `bind` bound.
    std::size_t rows(sqlite3_stmt* st, const std::string& bind, int limit) {
        sqlite3_bind_text(st, 1, bind.c_str(), static_cast<int>(bind.size()), SQLITE_TRANSIENT);
        if (limit) sqlite3_bind_int(st, 2, limit);
        std::size_t n = 0;
        while (sqlite3_step(st) == SQLITE_ROW) ++n;
        sqlite3_reset(st);
        return n;
    }
    void plan(const std::string& sql) {
        sqlite3_stmt* st = prepare("EXPLAIN QUERY PLAN " + sql);
        std::string out;
        while (sqlite3_step(st) == SQLITE_ROW)
            out += std::string(out.empty() ? "" : "; ") + reinterpret_cast<const char*>(sqlite3_column_text(st, 3));
        sqlite3_finalize(st);
        std::printf("plan: %s\n      -> %s\n", sql.c_str(), out.c_str());
    }
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: bench_message_search DIR [--count N] [--lookups N] [--no-text-index]\n");
        return 2;
    }
    long count = 1000000;
    int lookups = 1000;
    bool textIndex = true;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--count" && i + 1 < argc) count = std::atol(argv[++i]);
        else if (a == "--lookups" && i + 1 < argc) lookups = std::atoi(argv[++i]);
        else if (a == "--no-text-index") textIndex = false;
    }
    std::string path = std::string(argv[1]) + "/search.db";
    StoreOptions options;
    options.synchronousFull = false;
    options.journal = false;  // raw content in SQLite, where the peer's LIKE reads it
    options.textIndex = textIndex;
    auto store = openSqliteStore(path, options);

    // ---------------------------------------------------------------- fill
    auto start = Clock::now() - std::chrono::hours(24 * 10);
    auto step = std::chrono::milliseconds(std::max<long>(1, 24L * 10 * 3600 * 1000 / count));
    auto t0 = std::chrono::steady_clock::now();
    long failed = 0;
    for (long i = 0; i < count; ++i) {
        NewMessage m;
        m.channel = i % 4 == 0 ? "lab-orders" : "ris-orders";
        m.source = "mllp 10.1.2.3:40000";
        m.raw = ormOf(i);
        m.storage = StorageMode::Production;
        m.receivedAt = start + step * i;
        m.meta = {"ORM^O01", controlOf(i), patientOf(i), accessionOf(i)};
        ProcessedMessage p;
        p.channel = m.channel;
        p.status = Status::Transformed;
        p.storage = m.storage;
        p.meta = m.meta;
        // One destination: sent, but 1 in 2,000 failed and 1 in 10,000 still queued.
        ProcessedMessage::Delivery d;
        d.destination = "emr";
        d.status = i % 2000 == 7 ? Status::Error : i % 10000 == 3 ? Status::Queued : Status::Sent;
        if (d.status == Status::Error) d.error = "emr: connection refused";
        p.deliveries.push_back(std::move(d));
        m.processed = std::move(p);
        store->insert(std::move(m), [&failed](MessageId id, const std::string&) { failed += id <= 0; });
        if (i % 10000 == 9999) store->flush();  // bounded memory: no journal to hold the backlog
    }
    store->flush();
    double fillS = msSince(t0) / 1000;
    // The text index follows in the background (at idle priority): until it is done.
    auto t1 = std::chrono::steady_clock::now();
    store->catchUpTextIndex();
    double indexS = msSince(t1) / 1000;
    auto size = [](const std::string& p) {
        std::error_code ec;
        auto n = std::filesystem::file_size(p, ec);
        return ec ? 0.0 : static_cast<double>(n) / 1048576.0;
    };
    std::printf("filled messages=%ld failed=%ld seconds=%.1f rate=%.0f/s db_mb=%.0f text_index=%s"
                " index_behind_s=%.1f index_mb=%.0f\n",
                count, failed, fillS, static_cast<double>(count) / fillS, size(path) + size(path + "-wal"),
                textIndex ? "on" : "off", indexS, size(path + "-text") + size(path + "-text-wal"));

    // ---------------------------------------------------------------- lookups
    Db peer(path);
    std::mt19937_64 rng(7);
    std::vector<long> picks;
    for (int k = 0; k < lookups; ++k) picks.push_back(static_cast<long>(rng() % static_cast<unsigned long>(count)));
    const std::string cols =
        "SELECT id, channel, received_at, status, data_type, source, message_type, control_id, patient_id, accession,"
        " error FROM messages";
    struct Exact {
        const char* name;
        const char* column;
        std::string (*value)(long);
        std::string SearchQuery::*field;
    };
    const Exact exact[] = {{"control_id", "control_id", controlOf, &SearchQuery::controlId},
                           {"patient_id", "patient_id", patientOf, &SearchQuery::patientId},
                           {"accession", "accession", accessionOf, &SearchQuery::accession}};
    for (const auto& e : exact) {
        std::string sql = cols + " WHERE " + e.column + " = ?1 ORDER BY id DESC LIMIT ?2";
        sqlite3_stmt* st = peer.prepare(sql);
        std::size_t oursFound = 0, peerFound = 0;
        Figures ours = timed(
            lookups,
            [&](int k) {
                SearchQuery q;
                q.*(e.field) = e.value(picks[k]);
                return store->search(q).size();
            },
            oursFound);
        Figures theirs = timed(lookups, [&](int k) { return peer.rows(st, e.value(picks[k]), 100); }, peerFound);
        sqlite3_finalize(st);
        std::printf("RESULT search_%s_p50_ms=%.3f p99_ms=%.3f sql_p50_ms=%.3f sql_p99_ms=%.3f ratio_p50_sql_ours=%.2f"
                    " found=%zu/%zu\n",
                    e.name, ours.p50, ours.p99, theirs.p50, theirs.p99, theirs.p50 / ours.p50, oursFound, peerFound);
    }

    // A destination's state: the peer's query looks at each message's delivery, newest first.
    struct ByDelivery {
        const char* name;
        Status status;
        std::string channel;
    };
    const ByDelivery byDelivery[] = {{"error", Status::Error, ""},
                                     {"error_channel", Status::Error, "ris-orders"},
                                     {"queued", Status::Queued, ""},
                                     {"sent", Status::Sent, ""}};
    for (const auto& b : byDelivery) {
        std::string sql = cols + " m WHERE " + (b.channel.empty() ? "" : "m.channel = '" + b.channel + "' AND ") +
                          "EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.destination = 'emr'"
                          " AND d.status = ?1) ORDER BY m.id DESC LIMIT ?2";
        sqlite3_stmt* st = peer.prepare(sql);
        const std::string status = b.status == Status::Error ? "Error" : b.status == Status::Queued ? "Queued" : "Sent";
        std::size_t oursFound = 0, peerFound = 0;
        int n = std::max(5, lookups / 20);
        Figures ours = timed(
            n,
            [&](int) {
                SearchQuery q;
                q.channel = b.channel;
                q.destination = "emr";
                q.destinationStatus = b.status;
                return store->search(q).size();
            },
            oursFound);
        Figures theirs = timed(n, [&](int) { return peer.rows(st, status, 100); }, peerFound);
        sqlite3_finalize(st);
        std::printf("RESULT search_destination_%s_p50_ms=%.3f p99_ms=%.3f sql_p50_ms=%.3f sql_p99_ms=%.3f"
                    " ratio_p50_sql_ours=%.1f found=%zu/%zu lookups=%d\n",
                    b.name, ours.p50, ours.p99, theirs.p50, theirs.p99, theirs.p50 / ours.p50, oursFound, peerFound, n);
    }

    // Text: the peer scans the raw content rows of each day, newest day first.
    std::vector<std::string> days;
    {
        sqlite3_stmt* st = peer.prepare("SELECT day FROM partitions WHERE NOT dropped ORDER BY day DESC");
        while (sqlite3_step(st) == SQLITE_ROW) days.push_back(std::to_string(sqlite3_column_int64(st, 0)));
        sqlite3_finalize(st);
    }
    std::vector<sqlite3_stmt*> likes;
    for (const auto& d : days)
        likes.push_back(peer.prepare("SELECT message_id FROM content_" + d +
                                     " WHERE kind = 0 AND CAST(data AS TEXT) LIKE '%' || ?1 || '%' ORDER BY message_id DESC LIMIT ?2"));
    auto likeScan = [&](const std::string& text) {
        std::size_t n = 0;
        for (auto* st : likes) {
            n += peer.rows(st, text, static_cast<int>(100 - n));
            if (n >= 100) break;
        }
        return n;
    };
    auto textSearch = [&](const std::string& text) {
        SearchQuery q;
        q.text = text;
        return store->search(q).size();
    };
    struct Text {
        const char* name;
        std::function<std::string(int)> value;
        int n;
    };
    // The peer's scan of a million rows takes seconds: fewer lookups for it.
    int rare = std::max(5, lookups / 50);
    const Text texts[] = {{"rare", [&](int k) { return phoneOf(picks[k]); }, rare},
                          {"rare_lower", [&](int k) { return "nguyen^" + std::string(kGiven[picks[k] % 10]) + "^" +
                                                              std::to_string(picks[k] % 997) + "|"; }, rare},
                          {"common", [](int k) { return std::string(k % 2 ? "MR Head" : "US Abdomen"); }, rare}};
    for (const auto& t : texts) {
        std::size_t oursFound = 0, peerFound = 0;
        Figures ours = timed(t.n, [&](int k) { return textSearch(t.value(k)); }, oursFound);
        Figures theirs = timed(t.n, [&](int k) { return likeScan(t.value(k)); }, peerFound);
        std::printf("RESULT search_text_%s_p50_ms=%.3f p99_ms=%.3f like_p50_ms=%.3f like_p99_ms=%.3f"
                    " ratio_p50_like_ours=%.1f found=%zu/%zu lookups=%d\n",
                    t.name, ours.p50, ours.p99, theirs.p50, theirs.p99, theirs.p50 / ours.p50, oursFound, peerFound, t.n);
    }
    for (auto* st : likes) sqlite3_finalize(st);

    // ---------------------------------------------------------------- plans
    for (const char* where : {"control_id = ?1", "patient_id = ?1", "accession = ?1", "patient_id = ?1 AND id < ?2",
                              "channel = ?1", "channel = ?1 AND status = 'Error'", "channel = ?1 AND id < ?2",
                              "message_type = ?1", "received_at >= ?1 AND received_at < ?2",
                              "channel = ?1 AND received_at >= ?2 AND received_at < ?3"})
        peer.plan(cols + " WHERE " + where + " ORDER BY id DESC LIMIT 100");
    return failed == 0 ? 0 : 1;
}
