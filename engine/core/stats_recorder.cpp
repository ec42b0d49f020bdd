// The statistics recorder (stats_recorder.h): deltas of the live counters
// written to the store's statistics tables, and the persisted figures read back.
#include "engine/core/stats_recorder.h"

#include <string>
#include <thread>

#include "engine/core/engine.h"
#include "engine/util/log.h"
#include "engine/util/thread_name.h"

namespace junction::core {

namespace {

using SysClock = std::chrono::system_clock;
constexpr std::int64_t kMinuteMs = 60'000;

std::int64_t msOf(SysClock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::int64_t minuteOf(SysClock::time_point t) {
    std::int64_t ms = msOf(t);
    return ms - ms % kMinuteMs;
}

SysClock::time_point fromMs(std::int64_t ms) {
    return SysClock::time_point(std::chrono::duration_cast<SysClock::duration>(std::chrono::milliseconds(ms)));
}

constexpr std::uint64_t CountersSnapshot::*kFields[store::kStatsCounters] = {
    &CountersSnapshot::received, &CountersSnapshot::filtered, &CountersSnapshot::queued,
    &CountersSnapshot::sent,     &CountersSnapshot::errored,  &CountersSnapshot::retried};


void addCounters(CountersSnapshot& into, const std::array<std::uint64_t, store::kStatsCounters>& counts) {
    for (std::size_t i = 0; i < store::kStatsCounters; ++i) into.*kFields[i] += counts[i];
}
void addCounters(CountersSnapshot& into, const store::StatsRow& r) { addCounters(into, r.counts); }

constexpr std::int64_t kDayMinutes = 1440;

// Drops from each key's entries (oldest first) those from before `oldest` by
// their time `at`, and the keys left with none.
template <class Key, class T>
void dropBefore(std::map<Key, std::deque<T>>& byKey, std::int64_t oldest, std::int64_t T::*at) {
    for (auto it = byKey.begin(); it != byKey.end();) {
        while (!it->second.empty() && it->second.front().*at < oldest) it->second.pop_front();
        it = it->second.empty() ? byKey.erase(it) : std::next(it);
    }
}

// live - seen, or live when the figures went back (a redeployed channel counts from zero).
store::StatsRow delta(const CountersSnapshot& live, const Histogram::Snapshot& lat, const CountersSnapshot* seenC,
                      const Histogram::Snapshot* seenL) {
    store::StatsRow r;
    bool reset = false;
    if (seenC) {
        for (auto f : kFields)
            if (live.*f < (*seenC).*f) reset = true;
        if (lat.count < seenL->count) reset = true;
    }
    if (!seenC || reset) {
        seenC = nullptr;
        seenL = nullptr;
    }
    for (std::size_t i = 0; i < store::kStatsCounters; ++i) r.counts[i] = live.*kFields[i] - (seenC ? (*seenC).*kFields[i] : 0);
    r.latencyCount = lat.count - (seenL ? seenL->count : 0);
    r.latencySumUs = lat.sumUs - (seenL ? std::min(seenL->sumUs, lat.sumUs) : 0);
    if (r.latencyCount) {
        r.latencyBuckets.resize(Histogram::kBuckets);
        for (int b = 0; b < Histogram::kBuckets; ++b) {
            std::uint64_t before = seenL ? seenL->buckets[b] : 0;
            r.latencyBuckets[b] = lat.buckets[b] >= before ? lat.buckets[b] - before : 0;
        }
    }
    return r;
}

}  // namespace

StatsRecorder::StatsRecorder(std::unique_ptr<store::StatsStore> store, std::function<std::vector<ChannelInfo>()> channels)
    : store_(std::move(store)), channels_(std::move(channels)) {}

StatsRecorder::~StatsRecorder() { stop(); }

void StatsRecorder::start(std::chrono::milliseconds every) {
    if (thread_.joinable()) return;
    {
        std::lock_guard<std::mutex> lock(stopMutex_);
        stop_ = false;
    }
    thread_ = std::thread([this, every] {
        util::nameThisThread("stats");
        loop(every);
    });
}

void StatsRecorder::stop() {
    {
        std::lock_guard<std::mutex> lock(stopMutex_);
        stop_ = true;
    }
    stopCv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void StatsRecorder::loop(std::chrono::milliseconds every) {
    std::unique_lock<std::mutex> lock(stopMutex_);
    while (!stopCv_.wait_for(lock, every, [&] { return stop_; })) {
        lock.unlock();
        flush();
        lock.lock();
    }
}

std::vector<store::StatsRow> StatsRecorder::pending(const std::vector<ChannelInfo>& live, std::int64_t minuteMs,
                                                    std::map<Key, Seen>* next) const {
    std::vector<store::StatsRow> out;
    auto one = [&](const std::string& channel, const std::string& dest, const CountersSnapshot& c,
                   const Histogram::Snapshot& l) {
        Key key{channel, dest};
        auto it = seen_.find(key);
        store::StatsRow r = it == seen_.end() ? delta(c, l, nullptr, nullptr) : delta(c, l, &it->second.counters, &it->second.latency);
        r.channel = channel;
        r.destination = dest;
        r.minuteMs = minuteMs;
        if (next) (*next)[key] = {c, l};
        if (!r.empty()) out.push_back(std::move(r));
    };
    for (const auto& ch : live) {
        one(ch.name, {}, ch.counters, ch.latency);
        for (const auto& d : ch.destinations) one(ch.name, d.name, d.counters, d.latency);
    }
    return out;
}

void StatsRecorder::loadRecent(std::int64_t nowMinuteMs) {
    if (recentLoaded_) return;
    for (const auto& r : store_->minutesSince(fromMs(nowMinuteMs - (kDayMinutes - 1) * kMinuteMs)))
        recent_[{r.channel, r.destination}].push_back({r.minuteMs, r.counts});
    recentLoaded_ = true;
}

void StatsRecorder::remember(const std::vector<store::StatsRow>& written, std::int64_t nowMs) {
    const std::int64_t nowMinuteMs = nowMs - nowMs % kMinuteMs;
    for (const auto& r : written) {
        auto& minutes = recent_[{r.channel, r.destination}];
        if (minutes.empty() || minutes.back().startMs != r.minuteMs) minutes.push_back({r.minuteMs, {}});
        for (std::size_t i = 0; i < store::kStatsCounters; ++i) minutes.back().counts[i] += r.counts[i];
        lastMinute_[{r.channel, r.destination}].push_back({nowMs, r.counts});
    }
    dropBefore(recent_, nowMinuteMs - (kDayMinutes - 1) * kMinuteMs, &Minute::startMs);
    dropBefore(lastMinute_, nowMs - kMinuteMs + 1, &Written::atMs);
}

bool StatsRecorder::finalFlush(std::chrono::milliseconds patience) {
    const auto until = std::chrono::steady_clock::now() + patience;
    while (!flush()) {
        if (std::chrono::steady_clock::now() >= until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return true;
}

bool StatsRecorder::flush() {
    std::vector<ChannelInfo> live = channels_();
    std::lock_guard<std::mutex> lock(mutex_);
    const auto now = now_();
    const std::int64_t nowMs = msOf(now), minute = minuteOf(now);
    std::map<Key, Seen> next = seen_;  // a channel not running now keeps what was seen of it
    auto rows = pending(live, minute, &next);
    if (rows.empty()) return true;
    try {
        loadRecent(minute);  // before the write: what is read back must not hold it yet
        store_->add(rows, fromMs(minute - (kDayMinutes - 1) * kMinuteMs));
    } catch (const std::exception& e) {
        // Said once until a write succeeds (a full disk would say it every few seconds).
        if (!failing_)
            util::logLine(util::LogLevel::Warn,
                          std::string("junction: statistics not written (kept for the next write, every 5 s): ") + e.what());
        failing_ = true;
        return false;
    }
    if (failing_) util::logLine(util::LogLevel::Info, "junction: statistics written again");
    failing_ = false;
    remember(rows, nowMs);
    seen_ = std::move(next);
    return true;
}

void StatsRecorder::restarted(const std::string& channel) {
    flush();
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = seen_.begin(); it != seen_.end();) it = it->first.first == channel ? seen_.erase(it) : std::next(it);
}

std::map<StatsRecorder::Key, PersistedStats> StatsRecorder::figures(const std::vector<ChannelInfo>& live, bool windows) {
    std::map<Key, PersistedStats> out;
    for (const auto& ch : live) {
        out[{ch.name, {}}];
        for (const auto& d : ch.destinations) out[{ch.name, d.name}];
    }
    auto addTotal = [&](PersistedStats& p, const store::StatsRow& r) {
        addCounters(p.total.counters, r);
        p.total.latencyCount += r.latencyCount;
        p.total.latencySumUs += r.latencySumUs;
        auto& b = p.total.latencyBuckets;
        if (b.size() < r.latencyBuckets.size()) b.resize(r.latencyBuckets.size());
        for (std::size_t i = 0; i < r.latencyBuckets.size(); ++i) b[i] += r.latencyBuckets[i];
    };
    const auto now = now_();
    const std::int64_t nowMs = msOf(now), minute = minuteOf(now);
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& r : store_->totals()) {
        auto it = out.find({r.channel, r.destination});
        if (it != out.end()) addTotal(it->second, r);
    }
    for (const auto& r : pending(live, minute, nullptr)) {
        auto it = out.find({r.channel, r.destination});
        if (it == out.end()) continue;
        addTotal(it->second, r);
        for (auto* w : {&it->second.last1m, &it->second.last1h, &it->second.last24h}) addCounters(*w, r);
    }
    if (!windows) return out;
    loadRecent(minute);
    for (auto& [key, p] : out) {
        auto it = recent_.find(key);
        if (it == recent_.end()) continue;
        for (const Minute& m : it->second) {
            std::int64_t age = (minute - m.startMs) / kMinuteMs;  // 0: the current minute
            if (age < 0 || age >= kDayMinutes) continue;
            addCounters(p.last24h, m.counts);
            if (age < 60) addCounters(p.last1h, m.counts);
        }
        if (auto w = lastMinute_.find(key); w != lastMinute_.end())
            for (const Written& x : w->second)
                if (x.atMs > nowMs - kMinuteMs) addCounters(p.last1m, x.counts);
    }
    return out;
}

std::vector<StatsMinute> StatsRecorder::series(const std::string& channel, const std::string& destination, int minutes) {
    std::int64_t last = minuteOf(now_());
    std::int64_t first = last - static_cast<std::int64_t>(minutes - 1) * kMinuteMs;
    std::vector<StatsMinute> out(static_cast<std::size_t>(minutes));
    for (int i = 0; i < minutes; ++i) out[static_cast<std::size_t>(i)].start = fromMs(first + i * kMinuteMs);
    auto place = [&](const std::array<std::uint64_t, store::kStatsCounters>& counts, std::int64_t minuteMs) {
        if (minuteMs < first || minuteMs > last) return;
        addCounters(out[static_cast<std::size_t>((minuteMs - first) / kMinuteMs)].counters, counts);
    };
    std::vector<ChannelInfo> live = channels_();
    std::lock_guard<std::mutex> lock(mutex_);
    loadRecent(last);
    if (auto it = recent_.find({channel, destination}); it != recent_.end())
        for (const Minute& m : it->second) place(m.counts, m.startMs);
    for (const auto& r : pending(live, last, nullptr))
        if (r.channel == channel && r.destination == destination) place(r.counts, last);
    return out;
}

}  // namespace junction::core
