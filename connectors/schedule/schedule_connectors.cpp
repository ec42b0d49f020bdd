// `schedule` source: one message every `interval`, at start (run_at_start) and
// on demand (Source::trigger: `junction`'s "run now"). The message says which
// run it is and why it was made; the channel's scripts do the work (poll a REST
// API, sync a server), so a failed run is a message kept as ERROR with its
// error, and the next run tries again.
#include "connectors/schedule/schedule_connectors.h"

#include <chrono>
#include <ctime>

#include "engine/util/json_text.h"
#include "engine/util/loop_thread.h"

namespace junction::connectors {

namespace {

using namespace std::chrono_literals;

struct ScheduleSettings {
    std::chrono::milliseconds interval{15min};
    bool runAtStart = true;
    std::string message;  // empty: the JSON run description
};

const config::Map<ScheduleSettings>& scheduleMap() {
    using S = ScheduleSettings;
    static const config::Map<S> map{
        {"interval", &S::interval, config::range(std::chrono::milliseconds(1s), std::chrono::milliseconds(24h * 7)),
         "time between runs (from the start of one run to the start of the next)"},
        {"run_at_start", &S::runAtStart, "make a run as soon as the channel starts"},
        {"message", &S::message, config::byDefault("a JSON run description"),
         "the content of each run's message, instead of {\"run\", \"reason\", \"time\"}"},
    };
    return map;
}

std::string utcNow() {
    std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

class ScheduleSource : public core::Source {
public:
    explicit ScheduleSource(ScheduleSettings s) : s_(std::move(s)) {}
    ~ScheduleSource() override { stop(); }

    void start(core::SourceContext& ctx) override {
        ctx_ = &ctx;
        thread_.start([this] { loop(); });
    }

    void stop() override { thread_.stop(); }

    bool trigger() override { return thread_.trigger(); }

    std::string describe() const override {
        return "schedule every " + std::to_string(s_.interval.count() / 1000) + " s";
    }

private:
    void loop() {
        auto next = std::chrono::steady_clock::now() + (s_.runAtStart ? 0ms : s_.interval);
        const char* reason = s_.runAtStart ? "start" : "interval";
        for (;;) {
            util::LoopThread::Wake wake = thread_.waitUntil(next);
            if (wake == util::LoopThread::Wake::Stop) return;
            if (wake == util::LoopThread::Wake::Trigger) reason = "trigger";
            // The next run is due an interval after this one began, however long it takes.
            next = std::chrono::steady_clock::now() + s_.interval;
            run(reason);
            reason = "interval";
        }
    }

    void run(const char* reason) {
        if (!ctx_->waitUntilAccepting()) return;
        ++runs_;
        std::string content = s_.message;
        if (content.empty())
            content = "{\"run\": " + std::to_string(runs_) + ", \"reason\": \"" + reason +
                      "\", \"time\": " + util::jsonString(utcNow()) + "}";
        core::SubmitResult r = ctx_->submitAndWait(core::Inbound{std::move(content), std::string("schedule ") + reason});
        if (!r.accepted) ctx_->log("error", "schedule run " + std::to_string(runs_) + " not stored: " + r.error);
    }

    ScheduleSettings s_;
    core::SourceContext* ctx_ = nullptr;
    long long runs_ = 0;
    util::LoopThread thread_;
};

class ScheduleSourceFactory : public core::MappedSourceFactory<ScheduleSettings> {
public:
    ScheduleSourceFactory() : MappedSourceFactory(scheduleMap()) {}
    std::string defaultDataType() const override { return "json"; }

protected:
    std::unique_ptr<core::Source> build(ScheduleSettings s, const core::BuildContext&) const override {
        return std::make_unique<ScheduleSource>(std::move(s));
    }
};

}  // namespace

void registerSchedule(core::ConnectorRegistry& registry) {
    registry.addSource("schedule", std::make_unique<ScheduleSourceFactory>());
}

}  // namespace junction::connectors
