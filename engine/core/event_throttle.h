// Keeps a flood of like events out of the event log: a sender that opens a
// connection for each message would otherwise write two events a message.
// Of each type, the first kPerMinute events of a minute are recorded one by
// one (the last of them saying that the rest are counted); the others are
// counted, and the count is told with the next event recorded.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace junction::core {

class EventThrottle {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr int kPerMinute = 20;

    // The text to record for an event of `type`, or nothing when it is only counted.
    std::optional<std::string> admit(const std::string& type, const std::string& text, Clock::time_point now = Clock::now()) {
        std::lock_guard<std::mutex> lock(mu_);
        Window& w = windows_[type];
        std::uint64_t before = 0;
        if (w.written == 0 || now - w.start >= std::chrono::minutes(1)) {
            before = w.held;
            w = Window{now, 0, 0};
        }
        if (w.written > kPerMinute) {
            ++w.held;
            return std::nullopt;
        }
        std::string out = text;
        if (before > 0) out += " (and " + std::to_string(before) + " more before it, counted, not recorded one by one)";
        if (++w.written > kPerMinute) out += " (more " + type + " events in the next minute are counted, not recorded one by one)";
        return out;
    }

private:
    struct Window {
        Clock::time_point start{};
        int written = 0;
        std::uint64_t held = 0;
    };
    std::mutex mu_;
    std::map<std::string, Window> windows_;
};

}  // namespace junction::core
