// The thread of a polling source (file, schedule, orthanc): it runs until
// stopped, and its waits between rounds end early when it is stopped or
// triggered (an operator's "run now").
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace junction::util {

class LoopThread {
public:
    enum class Wake { Time, Trigger, Stop };

    LoopThread() = default;
    LoopThread(const LoopThread&) = delete;
    LoopThread& operator=(const LoopThread&) = delete;
    ~LoopThread() { stop(); }

    // Runs `body` on a new thread; it returns once running() is false (or when it is done).
    void start(std::function<void()> body) {
        {
            std::lock_guard<std::mutex> lock(m_);
            running_ = true;
            triggered_ = false;
        }
        thread_ = std::thread(std::move(body));
    }

    // Ends the waits, and returns once the thread has.
    void stop() {
        {
            std::lock_guard<std::mutex> lock(m_);
            running_ = false;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

    bool running() const {
        std::lock_guard<std::mutex> lock(m_);
        return running_;
    }

    // Ends the current or next wait with Wake::Trigger; false when not running.
    bool trigger() {
        {
            std::lock_guard<std::mutex> lock(m_);
            if (!running_) return false;
            triggered_ = true;
        }
        cv_.notify_all();
        return true;
    }

    // On the thread: waits until `until`, a stop or a trigger, and says which came.
    Wake waitUntil(std::chrono::steady_clock::time_point until) {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait_until(lock, until, [&] { return !running_ || triggered_; });
        if (!running_) return Wake::Stop;
        if (triggered_) {
            triggered_ = false;
            return Wake::Trigger;
        }
        return Wake::Time;
    }
    Wake waitFor(std::chrono::steady_clock::duration d) { return waitUntil(std::chrono::steady_clock::now() + d); }

private:
    mutable std::mutex m_;
    std::condition_variable cv_;
    bool running_ = false, triggered_ = false;
    std::thread thread_;
};

}  // namespace junction::util
