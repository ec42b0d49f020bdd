// The SQLite statistics tables (stats_store.h): one connection of their own to
// the store's database. stats_minutes holds a row per channel (destination)
// and minute with something counted, for a day; stats_totals one row per
// channel (destination) since it was first counted. Histogram buckets are kept
// as text, "index:count" pairs of the buckets that are not empty.
#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>

#include "engine/store/sqlite/sqlite_db.h"
#include "engine/store/stats_store.h"

namespace junction::store {

bool StatsRow::empty() const {
    for (auto c : counts)
        if (c) return false;
    return latencyCount == 0;
}

void StatsRow::add(const StatsRow& o) {
    for (std::size_t i = 0; i < kStatsCounters; ++i) counts[i] += o.counts[i];
    latencyCount += o.latencyCount;
    latencySumUs += o.latencySumUs;
    if (latencyBuckets.size() < o.latencyBuckets.size()) latencyBuckets.resize(o.latencyBuckets.size());
    for (std::size_t i = 0; i < o.latencyBuckets.size(); ++i) latencyBuckets[i] += o.latencyBuckets[i];
}

namespace {

using sqlite::Stmt;
using sqlite::Use;

std::int64_t toMs(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string encodeBuckets(const std::vector<std::uint64_t>& buckets) {
    std::string out;
    for (std::size_t i = 0; i < buckets.size(); ++i) {
        if (!buckets[i]) continue;
        if (!out.empty()) out.push_back(' ');
        out += std::to_string(i) + ":" + std::to_string(buckets[i]);
    }
    return out;
}

std::vector<std::uint64_t> decodeBuckets(std::string_view s) {
    std::vector<std::uint64_t> out;
    while (!s.empty()) {
        std::size_t end = s.find(' ');
        std::string_view pair = s.substr(0, end);
        s = end == std::string_view::npos ? std::string_view() : s.substr(end + 1);
        std::size_t colon = pair.find(':');
        if (colon == std::string_view::npos) continue;
        std::size_t index = 0;
        std::uint64_t count = 0;
        std::from_chars(pair.data(), pair.data() + colon, index);
        std::from_chars(pair.data() + colon + 1, pair.data() + pair.size(), count);
        if (index >= 4096) continue;
        if (out.size() <= index) out.resize(index + 1);
        out[index] = count;
    }
    return out;
}

constexpr const char* kColumns =
    "received, filtered, queued, sent, errored, retried, latency_count, latency_sum_us, latency_buckets";

class SqliteStats final : public StatsStore {
public:
    SqliteStats(const std::string& path, bool synchronousFull, int busyTimeoutMs) {
        sqlite::createParentDirectory(path);
        db_ = sqlite::open(path, "statistics", busyTimeoutMs);
        try {
            sqlite::useWal(db_, path);
            sqlite::exec(db_, synchronousFull ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
            const std::string counters =
                "received INTEGER NOT NULL, filtered INTEGER NOT NULL, queued INTEGER NOT NULL, sent INTEGER NOT NULL,"
                " errored INTEGER NOT NULL, retried INTEGER NOT NULL, latency_count INTEGER NOT NULL,"
                " latency_sum_us INTEGER NOT NULL, latency_buckets TEXT NOT NULL";
            sqlite::exec(db_, ("CREATE TABLE IF NOT EXISTS stats_minutes (channel TEXT NOT NULL, destination TEXT NOT NULL,"
                               " minute INTEGER NOT NULL, " + counters +
                               ", PRIMARY KEY (channel, destination, minute)) WITHOUT ROWID")
                                  .c_str());
            sqlite::exec(db_, "CREATE INDEX IF NOT EXISTS stats_minutes_minute ON stats_minutes (minute)");
            sqlite::exec(db_, ("CREATE TABLE IF NOT EXISTS stats_totals (channel TEXT NOT NULL, destination TEXT NOT NULL,"
                               " since INTEGER NOT NULL, " + counters +
                               ", PRIMARY KEY (channel, destination)) WITHOUT ROWID")
                                  .c_str());
            std::string cols = kColumns;
            getMinute_ = Stmt(db_, "SELECT " + cols + " FROM stats_minutes WHERE channel = ?1 AND destination = ?2 AND minute = ?3");
            putMinute_ = Stmt(db_, "INSERT OR REPLACE INTO stats_minutes (channel, destination, minute, " + cols +
                                       ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
            getTotal_ = Stmt(db_, "SELECT " + cols + " FROM stats_totals WHERE channel = ?1 AND destination = ?2");
            putTotal_ = Stmt(db_, "INSERT INTO stats_totals (channel, destination, since, " + cols +
                                      ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                                      " ON CONFLICT (channel, destination) DO UPDATE SET received = excluded.received,"
                                      " filtered = excluded.filtered, queued = excluded.queued, sent = excluded.sent,"
                                      " errored = excluded.errored, retried = excluded.retried,"
                                      " latency_count = excluded.latency_count, latency_sum_us = excluded.latency_sum_us,"
                                      " latency_buckets = excluded.latency_buckets");
            dropOld_ = Stmt(db_, "DELETE FROM stats_minutes WHERE minute < ?1");
            totals_ = Stmt(db_, "SELECT " + cols + ", channel, destination FROM stats_totals");
            minutes_ = Stmt(db_, "SELECT " + cols + ", channel, destination, minute FROM stats_minutes WHERE minute >= ?1"
                                 " ORDER BY channel, destination, minute");
        } catch (const std::exception& e) {
            close();
            throw std::runtime_error(std::string("statistics in ") + path + ": " + e.what());
        }
    }
    ~SqliteStats() override { close(); }

    void add(const std::vector<StatsRow>& deltas, std::chrono::system_clock::time_point keepFrom) override {
        std::lock_guard<std::mutex> lock(m_);
        sqlite::exec(db_, "BEGIN IMMEDIATE");
        try {
            for (const auto& d : deltas) {
                if (d.empty()) continue;
                StatsRow minute = read(getMinute_, d, true);
                minute.add(d);
                write(putMinute_, minute, d.minuteMs);
                StatsRow total = read(getTotal_, d, false);
                total.add(d);
                write(putTotal_, total, d.minuteMs);
            }
            Use u(dropOld_);
            u.int64(1, toMs(keepFrom)).run();
            sqlite::exec(db_, "COMMIT");
        } catch (...) {
            sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
            throw;
        }
    }

    std::vector<StatsRow> totals() override {
        std::lock_guard<std::mutex> lock(m_);
        Use u(totals_);
        return rows(u);
    }

    std::vector<StatsRow> minutesSince(std::chrono::system_clock::time_point from) override {
        std::lock_guard<std::mutex> lock(m_);
        Use u(minutes_);
        u.int64(1, toMs(from));
        std::vector<StatsRow> out;
        while (u.step()) {
            StatsRow r = columns(u);
            r.channel = u.str(9);
            r.destination = u.str(10);
            r.minuteMs = u.int64(11);
            r.latencyBuckets.clear();
            out.push_back(std::move(r));
        }
        return out;
    }

private:
    // Columns 0-8 (kColumns) of a row.
    static StatsRow columns(const Use& u) {
        StatsRow r;
        for (std::size_t i = 0; i < kStatsCounters; ++i) r.counts[i] = static_cast<std::uint64_t>(u.int64(static_cast<int>(i)));
        r.latencyCount = static_cast<std::uint64_t>(u.int64(6));
        r.latencySumUs = static_cast<std::uint64_t>(u.int64(7));
        r.latencyBuckets = decodeBuckets(u.str(8));
        return r;
    }
    // Rows of kColumns followed by channel, destination.
    static std::vector<StatsRow> rows(Use& u) {
        std::vector<StatsRow> out;
        while (u.step()) {
            StatsRow r = columns(u);
            r.channel = u.str(9);
            r.destination = u.str(10);
            out.push_back(std::move(r));
        }
        return out;
    }
    StatsRow read(const Stmt& st, const StatsRow& key, bool withMinute) {
        Use u(st);
        u.text(1, key.channel).text(2, key.destination);
        if (withMinute) u.int64(3, key.minuteMs);
        StatsRow r = u.step() ? columns(u) : StatsRow{};
        r.channel = key.channel;
        r.destination = key.destination;
        return r;
    }
    void write(const Stmt& st, const StatsRow& r, std::int64_t minuteMs) {
        std::string buckets = encodeBuckets(r.latencyBuckets);
        Use u(st);
        u.text(1, r.channel).text(2, r.destination).int64(3, minuteMs);
        for (std::size_t i = 0; i < kStatsCounters; ++i) u.int64(static_cast<int>(4 + i), static_cast<std::int64_t>(r.counts[i]));
        u.int64(10, static_cast<std::int64_t>(r.latencyCount)).int64(11, static_cast<std::int64_t>(r.latencySumUs));
        u.text(12, buckets);
        u.run();
    }
    void close() {
        for (Stmt* s : {&getMinute_, &putMinute_, &getTotal_, &putTotal_, &dropOld_, &totals_, &minutes_}) s->reset();
        if (db_) sqlite3_close_v2(db_);
        db_ = nullptr;
    }

    std::mutex m_;
    sqlite3* db_ = nullptr;
    Stmt getMinute_, putMinute_, getTotal_, putTotal_, dropOld_, totals_, minutes_;
};

}  // namespace

std::unique_ptr<StatsStore> openSqliteStats(const std::string& path, bool synchronousFull, int busyTimeoutMs) {
    return std::make_unique<SqliteStats>(path, synchronousFull, busyTimeoutMs);
}

}  // namespace junction::store
