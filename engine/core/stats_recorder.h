// Keeps the channels' counters and latency histograms in the store
// (store::StatsStore): every few seconds, and at stop, what each channel and
// destination counted since the last time is added to its minute and to its
// total, so that figures survive restarts and redeploys. Reads add what is
// counted but not written yet, so that they are never behind the live counters.
#pragma once

#include <chrono>
#include <array>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/core/stats.h"
#include "engine/store/stats_store.h"

namespace junction::core {

struct ChannelInfo;

// A channel's (destination's) counters over some span, with its latency histogram.
struct StatsFigures {
    CountersSnapshot counters;
    std::uint64_t latencyCount = 0, latencySumUs = 0;
    std::vector<std::uint64_t> latencyBuckets;  // per Histogram bucket
};

// What GET /api/v1/stats and /metrics show beside the live figures.
struct PersistedStats {
    StatsFigures total;                 // since the channel (destination) was first counted
    // The last 60 s (to the 5 s between writes; since the start when it is
    // younger); the current minute and the 59 (1439) before it.
    CountersSnapshot last1m, last1h, last24h;
};

// One minute of the dashboard's series.
struct StatsMinute {
    std::chrono::system_clock::time_point start;
    CountersSnapshot counters;
};

class StatsRecorder {
public:
    using Key = std::pair<std::string, std::string>;  // channel, destination ("" = the channel)
    // `channels` gives the live figures (Engine::channels).
    StatsRecorder(std::unique_ptr<store::StatsStore> store, std::function<std::vector<ChannelInfo>()> channels);
    ~StatsRecorder();

    // Writes every `every` on a thread of its own until stop() (which does not
    // write: flush() then makes the last write).
    void start(std::chrono::milliseconds every = std::chrono::seconds(5));
    void stop();
    // Writes what was counted since the last write (nothing when nothing was);
    // false when the write failed (it is kept for the next one).
    bool flush();
    // The last write, at a stop: tried again while the database is busy, for
    // up to `patience`. False when it could not be made.
    bool finalFlush(std::chrono::milliseconds patience = std::chrono::seconds(10));
    // A channel was stopped to be replaced (redeploy): what it counted is
    // written, and its successor's counters, from zero, are all new.
    void restarted(const std::string& channel);

    // Per channel and destination of `live` (Engine::channels()). `windows`:
    // also the 1 min/1 h/24 h sums (a read of the minutes; totals come from
    // one small table).
    std::map<Key, PersistedStats> figures(const std::vector<ChannelInfo>& live, bool windows);
    // The last `minutes` minutes of a channel (destination), oldest first, one
    // entry per minute (zeros included), the current minute last.
    std::vector<StatsMinute> series(const std::string& channel, const std::string& destination, int minutes);

    // The wall clock (tests set their own).
    void setClock(std::function<std::chrono::system_clock::time_point()> now) { now_ = std::move(now); }

private:
    struct Seen {
        CountersSnapshot counters;
        Histogram::Snapshot latency;
    };
    // What each live channel counted since `seen_` (a counter lower than seen
    // means the channel was redeployed: counted from zero again).
    std::vector<store::StatsRow> pending(const std::vector<ChannelInfo>& live, std::int64_t minuteMs,
                                         std::map<Key, Seen>* next) const;
    void loop(std::chrono::milliseconds every);
    // The last day's minutes of each channel (destination) with something
    // counted, oldest first, as written: windows and series are summed here
    // (a dashboard asks every few seconds) rather than read back. Read from
    // the store once, then kept up to date by each write; under mutex_.
    struct Minute {
        std::int64_t startMs = 0;
        std::array<std::uint64_t, store::kStatsCounters> counts{};
    };
    void loadRecent(std::int64_t nowMinuteMs);
    void remember(const std::vector<store::StatsRow>& written, std::int64_t nowMs);  // and the 1 min window's share
    std::map<Key, std::deque<Minute>> recent_;
    // What each write of the last 60 s added (the 1 min window), oldest first;
    // under mutex_.
    struct Written {
        std::int64_t atMs = 0;
        std::array<std::uint64_t, store::kStatsCounters> counts{};
    };
    std::map<Key, std::deque<Written>> lastMinute_;
    std::function<std::chrono::system_clock::time_point()> now_ = [] { return std::chrono::system_clock::now(); };
    bool recentLoaded_ = false;
    bool failing_ = false;  // the last write failed (said once)

    std::unique_ptr<store::StatsStore> store_;
    std::function<std::vector<ChannelInfo>()> channels_;
    std::mutex mutex_;  // seen_ and the writes
    std::map<Key, Seen> seen_;
    std::thread thread_;
    std::mutex stopMutex_;
    std::condition_variable stopCv_;
    bool stop_ = false;
};

}  // namespace junction::core
