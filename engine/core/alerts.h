// Alerts: the rules of junction.yaml's `alerts:` evaluated against the
// channels' state every few seconds (errors over N in a window, a queue over
// N, a channel stopped, a destination retrying, no message for a while).
// An alert fires once when its condition has held for the rule's `for`, and
// clears once when it no longer holds; each change is recorded as an event
// (alert.fired, alert.cleared), logged when the rule says `log`, and POSTed
// to the rule's webhooks as JSON {alert, state, rule, detail, time} by a
// thread of its own, so that a slow webhook delays nothing.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/config/engine_config.h"

namespace junction::core {

struct ChannelInfo;

struct AlertStatus {
    std::string name;
    std::string rule;  // the rule in words
    bool firing = false;
    std::optional<std::chrono::system_clock::time_point> since;  // of the last change; none before the first
    std::string detail;
};

// The rules and their state; evaluate() is given the channels and the time,
// so that tests drive it with samples and a clock of their own.
class AlertRules {
public:
    using Clock = std::chrono::steady_clock;
    explicit AlertRules(std::vector<config::AlertRuleConfig> rules);

    struct Change {
        std::size_t rule;  // index into rules()
        bool firing;       // fired (true) or cleared
        std::string detail;
    };
    // One evaluation of every rule over `channels` at `now` (`wallNow` is
    // what AlertStatus::since tells); returns the alerts that fired or cleared.
    std::vector<Change> evaluate(const std::vector<ChannelInfo>& channels, Clock::time_point now,
                                 std::chrono::system_clock::time_point wallNow);
    std::vector<AlertStatus> status() const;
    const std::vector<config::AlertRuleConfig>& rules() const { return rules_; }

private:
    struct Sample {
        Clock::time_point at;
        std::uint64_t value;
    };
    struct Quiet {
        std::uint64_t received = 0;
        Clock::time_point since;
    };
    struct State {
        bool firing = false;
        std::optional<Clock::time_point> holdingSince;  // the condition has held since
        std::optional<std::chrono::system_clock::time_point> since;
        std::string detail;
        std::map<std::string, std::deque<Sample>> errors;  // errors: the counter's samples per channel/destination
        std::map<std::string, Quiet> quiet;                // no_messages: per channel
    };
    // Adds a sample of a counter; returns how much it grew in the last `window`.
    static std::uint64_t countInWindow(std::deque<Sample>& ring, std::uint64_t value, Clock::time_point now,
                                       std::chrono::milliseconds window);
    // Whether rule `i`'s condition holds now, and why.
    std::optional<std::string> check(std::size_t i, State& s, const std::vector<ChannelInfo>& channels,
                                     Clock::time_point now);

    std::vector<config::AlertRuleConfig> rules_;
    mutable std::mutex mutex_;
    std::vector<State> states_;
};

// What an alert's change is told to: the event log and the log (Engine
// gives these); webhooks are the monitor's own.
struct AlertSinks {
    std::function<std::vector<ChannelInfo>()> channels;
    std::function<void(const std::string& type, const std::string& channel, const std::string& text)> event;
};

// The rules evaluated on a thread every `interval`, changes acted on.
class AlertMonitor {
public:
    AlertMonitor(std::vector<config::AlertRuleConfig> rules, AlertSinks sinks,
                 std::chrono::milliseconds interval = std::chrono::seconds(2));
    ~AlertMonitor();
    AlertMonitor(const AlertMonitor&) = delete;
    AlertMonitor& operator=(const AlertMonitor&) = delete;
    void start();
    void stop();  // waits for the thread; webhooks not sent yet are dropped
    std::vector<AlertStatus> status() const { return rules_.status(); }

private:
    void loop();
    void webhookLoop();
    void act(const AlertRules::Change& change, std::chrono::system_clock::time_point when);

    struct Job {
        config::AlertWebhookConfig hook;
        std::string alert, body;
    };
    AlertRules rules_;
    AlertSinks sinks_;
    std::chrono::milliseconds interval_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::deque<Job> jobs_;
    std::thread thread_, webhooks_;
};

}  // namespace junction::core
