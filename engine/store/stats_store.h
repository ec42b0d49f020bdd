// Channel and destination statistics kept in the store: counters and latency
// histograms per minute for the last day and in total since a channel was
// first seen, so that they survive restarts. Written a few seconds apart by
// the engine's statistics recorder (engine/core/stats_recorder.h), off the
// message path, through a connection of its own.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace junction::store {

// Counters in this order: received, filtered, queued, sent, errored, retried.
constexpr std::size_t kStatsCounters = 6;

struct StatsRow {
    std::string channel;
    std::string destination;  // "" for the channel itself
    std::int64_t minuteMs = 0;  // start of its minute (ms since the epoch); 0 in totals and sums
    std::array<std::uint64_t, kStatsCounters> counts{};
    std::uint64_t latencyCount = 0, latencySumUs = 0;
    std::vector<std::uint64_t> latencyBuckets;  // by histogram bucket (core::Histogram); may be shorter

    bool empty() const;
    void add(const StatsRow& other);  // counters, latency and buckets
};

class StatsStore {
public:
    virtual ~StatsStore() = default;
    // Adds `deltas` (each to the minute of its minuteMs, and to its total) in
    // one transaction, and drops the minutes that started before `keepFrom`.
    virtual void add(const std::vector<StatsRow>& deltas, std::chrono::system_clock::time_point keepFrom) = 0;
    // Every total since a channel (destination) was first counted.
    virtual std::vector<StatsRow> totals() = 0;
    // Every minute starting at or after `from` (counters only), by channel,
    // destination and minute: what the recorder holds in memory for the windows.
    virtual std::vector<StatsRow> minutesSince(std::chrono::system_clock::time_point from) = 0;
};

// Opens the statistics tables in the SQLite database at `path` (the message
// store's file), creating them if needed. Throws std::runtime_error.
std::unique_ptr<StatsStore> openSqliteStats(const std::string& path, bool synchronousFull, int busyTimeoutMs = 10000);

}  // namespace junction::store
