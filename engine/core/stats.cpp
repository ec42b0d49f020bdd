// Channel and destination statistics (stats.h): the latency histograms'
// buckets and their snapshots, and counter snapshots.
#include "engine/core/stats.h"

#include <cmath>

namespace junction::core {

namespace {
int bucketFor(std::uint64_t us) {
    if (us <= 1) return 0;
    int b = static_cast<int>(std::floor(2.0 * std::log2(static_cast<double>(us)))) + 1;
    return b >= Histogram::kBuckets ? Histogram::kBuckets - 1 : b;
}
double bucketUpper(int b) { return b == 0 ? 1.0 : std::pow(2.0, b / 2.0); }
}  // namespace

double Histogram::bucketUpperUs(int b) { return bucketUpper(b); }

void Histogram::record(std::chrono::microseconds value) {
    std::uint64_t us = value.count() < 0 ? 0 : static_cast<std::uint64_t>(value.count());
    buckets_[bucketFor(us)].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sumUs_.fetch_add(us, std::memory_order_relaxed);
    std::uint64_t prev = maxUs_.load(std::memory_order_relaxed);
    while (us > prev && !maxUs_.compare_exchange_weak(prev, us, std::memory_order_relaxed)) {
    }
}

Histogram::Snapshot Histogram::snapshot() const {
    Snapshot s;
    std::array<std::uint64_t, kBuckets> counts{};
    for (int b = 0; b < kBuckets; ++b) {
        counts[b] = buckets_[b].load(std::memory_order_relaxed);
        s.count += counts[b];
    }
    s.buckets = counts;
    if (s.count == 0) return s;
    s.sumUs = sumUs_.load();
    s.meanUs = static_cast<double>(sumUs_.load()) / static_cast<double>(count_.load() ? count_.load() : 1);
    s.maxUs = static_cast<double>(maxUs_.load());
    auto pct = [&](double p) {
        std::uint64_t target = static_cast<std::uint64_t>(std::ceil(p * static_cast<double>(s.count)));
        std::uint64_t seen = 0;
        for (int b = 0; b < kBuckets; ++b) {
            seen += counts[b];
            if (seen >= target) return std::min(bucketUpper(b), s.maxUs);
        }
        return s.maxUs;
    };
    s.p50Us = pct(0.50);
    s.p90Us = pct(0.90);
    s.p99Us = pct(0.99);
    return s;
}

CountersSnapshot snapshot(const Counters& c) {
    return {c.received.load(), c.filtered.load(), c.queued.load(), c.sent.load(), c.errored.load(), c.retried.load()};
}

}  // namespace junction::core
