// Alerts (alerts.h): each rule's condition over the channels' state, with
// its own ring of error-counter samples; the monitor's thread, log lines,
// events and webhooks.
#include "engine/core/alerts.h"

#include "engine/core/engine.h"
#include "engine/http/client.h"
#include "engine/util/json_text.h"
#include "engine/util/log.h"
#include "engine/util/thread_name.h"

namespace junction::core {

namespace {

std::string seconds(std::chrono::steady_clock::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + " s";
}

bool watched(const config::AlertRuleConfig& r, const ChannelInfo& c) {
    return r.channel.empty() ? c.enabled : r.channel == c.name;
}

void add(std::string& detail, const std::string& more) { detail += (detail.empty() ? "" : "; ") + more; }

}  // namespace

std::uint64_t AlertRules::countInWindow(std::deque<Sample>& ring, std::uint64_t value, Clock::time_point now,
                                        std::chrono::milliseconds window) {
    if (!ring.empty() && value < ring.back().value) ring.clear();  // the counters started again (a redeploy)
    // A sample when the counter moved: the one before the window's start is
    // its count then. Samples closer than 1/1024 of the window are merged
    // (keeping the first as the base), so that a long window stays small.
    if (ring.empty() || (value != ring.back().value && (ring.size() == 1 || now - ring.back().at >= window / 1024)))
        ring.push_back({now, value});
    else if (value != ring.back().value)
        ring.back().value = value;
    while (ring.size() > 1 && ring[1].at <= now - window) ring.pop_front();
    return ring.back().value - ring.front().value;
}

AlertRules::AlertRules(std::vector<config::AlertRuleConfig> rules)
    : rules_(std::move(rules)), states_(rules_.size()) {}

std::optional<std::string> AlertRules::check(std::size_t i, State& s, const std::vector<ChannelInfo>& channels,
                                             Clock::time_point now) {
    const auto& r = rules_[i];
    std::string detail;
    bool seen = false;
    for (const auto& c : channels) {
        if (!watched(r, c)) continue;
        seen = true;
        if (r.when == "channel_stopped") {
            if (c.state == ChannelState::Stopped || c.state == ChannelState::Failed)
                add(detail, "channel " + c.name + " is " + toString(c.state) + (c.error.empty() ? "" : ": " + c.error));
        } else if (r.when == "no_messages") {
            Quiet& q = s.quiet[c.name];
            if (c.state != ChannelState::Running || c.counters.received != q.received || q.since == Clock::time_point{}) {
                q.received = c.counters.received;
                q.since = now;
            } else if (now - q.since >= r.window) {
                add(detail, "no message received on channel " + c.name + " for " + seconds(now - q.since));
            }
        } else if (r.when == "errors" && r.destination.empty()) {
            std::uint64_t n = countInWindow(s.errors[c.name], c.counters.errored, now, r.window);
            if (n > static_cast<std::uint64_t>(r.over))
                add(detail, std::to_string(n) + " error(s) on channel " + c.name + " in the last " +
                                config::detail::durationText(r.window));
        } else {
            for (const auto& d : c.destinations) {
                if (!r.destination.empty() && r.destination != d.name) continue;
                std::string where = "destination " + d.name + " of channel " + c.name;
                if (r.when == "queue_depth" && d.queued > static_cast<std::size_t>(r.over)) {
                    add(detail, where + ": " + std::to_string(d.queued) + " queued");
                } else if (r.when == "destination_retrying" && d.failing) {
                    add(detail, where + " is retrying: " + d.lastError);
                } else if (r.when == "errors") {
                    std::uint64_t n = countInWindow(s.errors[c.name + "/" + d.name], d.counters.errored, now, r.window);
                    if (n > static_cast<std::uint64_t>(r.over))
                        add(detail, where + ": " + std::to_string(n) + " error(s) in the last " +
                                        config::detail::durationText(r.window));
                }
            }
        }
    }
    // A channel named by a stopped-rule and not deployed at all is stopped too.
    if (!seen && r.when == "channel_stopped" && !r.channel.empty()) detail = "channel " + r.channel + " is not deployed";
    if (detail.empty()) return std::nullopt;
    return detail;
}

std::vector<AlertRules::Change> AlertRules::evaluate(const std::vector<ChannelInfo>& channels, Clock::time_point now,
                                                     std::chrono::system_clock::time_point wallNow) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<Change> out;
    for (std::size_t i = 0; i < rules_.size(); ++i) {
        State& s = states_[i];
        auto why = check(i, s, channels, now);
        if (why) {
            if (!s.holdingSince) s.holdingSince = now;
            if (s.firing) {
                s.detail = *why;
            } else if (now - *s.holdingSince >= rules_[i].forTime) {
                s.firing = true;
                s.since = wallNow;
                s.detail = *why;
                out.push_back({i, true, *why});
            }
        } else {
            s.holdingSince.reset();
            if (s.firing) {
                s.firing = false;
                s.since = wallNow;
                std::string was = s.detail;
                s.detail = "cleared (was: " + was + ")";
                out.push_back({i, false, s.detail});
            }
        }
    }
    return out;
}

std::vector<AlertStatus> AlertRules::status() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<AlertStatus> out;
    for (std::size_t i = 0; i < rules_.size(); ++i)
        out.push_back({rules_[i].name, rules_[i].text(), states_[i].firing, states_[i].since, states_[i].detail});
    return out;
}

// ---------------------------------------------------------------- monitor

AlertMonitor::AlertMonitor(std::vector<config::AlertRuleConfig> rules, AlertSinks sinks,
                           std::chrono::milliseconds interval)
    : rules_(std::move(rules)), sinks_(std::move(sinks)), interval_(interval) {}

AlertMonitor::~AlertMonitor() { stop(); }

void AlertMonitor::start() {
    if (thread_.joinable()) return;
    stop_ = false;
    thread_ = std::thread([this] {
        util::nameThisThread("alerts");
        loop();
    });
    webhooks_ = std::thread([this] {
        util::nameThisThread("alert-hooks");
        webhookLoop();
    });
}

void AlertMonitor::stop() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (webhooks_.joinable()) webhooks_.join();
}

void AlertMonitor::loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
        lock.unlock();
        auto wall = std::chrono::system_clock::now();
        for (const auto& change : rules_.evaluate(sinks_.channels(), AlertRules::Clock::now(), wall)) act(change, wall);
        lock.lock();
        cv_.wait_for(lock, interval_, [&] { return stop_; });
    }
}

void AlertMonitor::act(const AlertRules::Change& change, std::chrono::system_clock::time_point when) {
    const auto& rule = rules_.rules()[change.rule];
    std::string text = "alert " + rule.name + (change.firing ? " fired: " : " cleared: ") + change.detail;
    if (rule.logAction)
        util::logLine(change.firing ? util::LogLevel::Warn : util::LogLevel::Info, "junction: " + text,
                      util::LogStream::Err, rule.channel);
    if (sinks_.event) sinks_.event(change.firing ? "alert.fired" : "alert.cleared", rule.channel, text);
    if (rule.webhooks.empty()) return;
    std::string body = "{\"alert\":" + util::jsonString(rule.name) +
                       ",\"state\":" + util::jsonString(change.firing ? "firing" : "ok") +
                       ",\"rule\":" + util::jsonString(rule.text()) + ",\"detail\":" + util::jsonString(change.detail) +
                       ",\"time\":" + util::jsonString(util::isoTimeUtc(when)) + "}";
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& hook : rule.webhooks) jobs_.push_back({hook, rule.name, body});
    cv_.notify_all();
}

void AlertMonitor::webhookLoop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
        if (stop_) return;
        Job job = std::move(jobs_.front());
        jobs_.pop_front();
        lock.unlock();
        http::ClientOptions o;
        o.connectTimeout = job.hook.timeout;
        o.timeout = job.hook.timeout;
        o.maxResponseBytes = 1u << 20;
        http::Client client(o);
        http::Request req;
        req.method = "POST";
        req.url = job.hook.url;
        req.headers.push_back({"Content-Type", "application/json"});
        for (const auto& [name, value] : job.hook.headers) req.headers.push_back({name, value});
        req.body = job.body;
        http::Result r = client.send(req);
        if (!r.answered || r.response.status / 100 != 2)
            util::logLine(util::LogLevel::Warn,
                          "junction: alert " + job.alert + ": webhook " + job.hook.url + " failed: " +
                              (r.answered ? "HTTP " + std::to_string(r.response.status) : r.error));
        lock.lock();
    }
}

}  // namespace junction::core
