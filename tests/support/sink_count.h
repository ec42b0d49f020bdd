// What the receivers of the forwarding benchmarks (mllp_sink, http_sink)
// count: messages by their control id (MSH-10), duplicates, the first and the
// last arrival; and the wait until enough have arrived, with the summary line
// scripts/bench.sh reads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>

namespace junction::testing {

class SinkCount {
public:
    using Clock = std::chrono::steady_clock;

    // One message arrived (from any thread).
    void note(const std::string& id) {
        {
            std::lock_guard<std::mutex> lock(m_);
            if (ids_.insert(id).second) unique_.fetch_add(1);
            else duplicates_.fetch_add(1);
        }
        long long t = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
        long long zero = 0;
        firstNs_.compare_exchange_strong(zero, t);
        lastNs_ = t;
    }

    // Waits until `count` distinct messages arrived, then prints
    // "received=N duplicates=N secs=X rate=N/s" (from the first arrival to the
    // last) and returns 0; returns 1 once nothing arrived for `idle` seconds first.
    int waitFor(long count, int idle) {
        long seen = -1;
        auto lastChange = Clock::now();
        while (unique_.load() < count) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            long r = unique_.load();
            if (r != seen) {
                seen = r;
                lastChange = Clock::now();
            } else if (Clock::now() - lastChange > std::chrono::seconds(idle)) {
                std::printf("received=%ld of %ld duplicates=%ld: nothing for %d s\n", r, count, duplicates_.load(), idle);
                std::fflush(stdout);
                return 1;
            }
        }
        double secs = static_cast<double>(lastNs_.load() - firstNs_.load()) / 1e9;
        std::printf("received=%ld duplicates=%ld secs=%g rate=%.0f/s\n", unique_.load(), duplicates_.load(), secs,
                    secs > 0 ? static_cast<double>(unique_.load()) / secs : 0.0);
        std::fflush(stdout);
        return 0;
    }

private:
    std::mutex m_;
    std::unordered_set<std::string> ids_;
    std::atomic<long> unique_{0}, duplicates_{0};
    std::atomic<long long> firstNs_{0}, lastNs_{0};
};

}  // namespace junction::testing
