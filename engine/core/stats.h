// Counters and latency histograms per channel and destination. Lock-free
// updates from the message path; snapshots for the admin API and tests.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace junction::core {

// Latency histogram with logarithmic buckets from 1 µs to ~67 s.
class Histogram {
public:
    static constexpr int kBuckets = 52;  // bucket b holds values < 2^(b/2) µs roughly (√2 steps)
    void record(std::chrono::microseconds value);
    struct Snapshot {
        std::uint64_t count = 0;
        double meanUs = 0;
        double p50Us = 0, p90Us = 0, p99Us = 0, maxUs = 0;
        std::uint64_t sumUs = 0;
        std::array<std::uint64_t, kBuckets> buckets{};  // count per bucket
    };
    Snapshot snapshot() const;
    // The upper bound of bucket b in µs (values in it are below it).
    static double bucketUpperUs(int b);

private:
    std::array<std::atomic<std::uint64_t>, kBuckets> buckets_{};
    std::atomic<std::uint64_t> count_{0}, sumUs_{0}, maxUs_{0};
};

struct Counters {
    std::atomic<std::uint64_t> received{0}, filtered{0}, queued{0}, sent{0}, errored{0}, retried{0};
};

struct CountersSnapshot {
    std::uint64_t received = 0, filtered = 0, queued = 0, sent = 0, errored = 0, retried = 0;
};

CountersSnapshot snapshot(const Counters& c);

}  // namespace junction::core
