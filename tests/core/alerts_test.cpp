// Alert rules (engine/core/alerts.h) driven by samples of the channels' state
// and a clock of the test's: each alert fires once when its condition has
// held for `for`, and clears once; errors count over a window.
#include <catch2/catch.hpp>

#include "engine/core/alerts.h"
#include "engine/core/engine.h"

using namespace junction;
using namespace junction::core;
using namespace std::chrono_literals;

namespace {

config::AlertRuleConfig rule(const std::string& name, const std::string& when) {
    config::AlertRuleConfig r;
    r.name = name;
    r.when = when;
    return r;
}

ChannelInfo channel(const std::string& name, ChannelState state = ChannelState::Running) {
    ChannelInfo c;
    c.name = name;
    c.state = state;
    DestinationInfo d;
    d.name = "out";
    c.destinations.push_back(d);
    return c;
}

const auto t0 = AlertRules::Clock::time_point(std::chrono::hours(1000));
const auto wall = std::chrono::system_clock::now();

}  // namespace

TEST_CASE("alerts: a retrying destination fires once after `for`, clears once", "[core][alerts]") {
    auto r = rule("ris-down", "destination_retrying");
    r.channel = "ris";
    r.destination = "out";
    r.forTime = 30s;
    AlertRules rules({r});
    auto ris = channel("ris");
    CHECK(rules.evaluate({ris}, t0, wall).empty());
    ris.destinations[0].failing = true;
    ris.destinations[0].lastError = "connection refused";
    CHECK(rules.evaluate({ris}, t0 + 2s, wall).empty());   // holds, not yet for 30 s
    CHECK(rules.evaluate({ris}, t0 + 20s, wall).empty());
    auto fired = rules.evaluate({ris}, t0 + 32s, wall);
    REQUIRE(fired.size() == 1);
    CHECK(fired[0].firing);
    CHECK(fired[0].detail == "destination out of channel ris is retrying: connection refused");
    CHECK(rules.evaluate({ris}, t0 + 34s, wall).empty());  // once
    CHECK(rules.evaluate({ris}, t0 + 600s, wall).empty());
    auto status = rules.status();
    REQUIRE(status.size() == 1);
    CHECK(status[0].firing);
    CHECK(status[0].since == wall);
    CHECK(status[0].rule == "destination_retrying on channel ris destination out for 30s");
    ris.destinations[0].failing = false;
    auto cleared = rules.evaluate({ris}, t0 + 602s, wall);
    REQUIRE(cleared.size() == 1);
    CHECK_FALSE(cleared[0].firing);
    CHECK(rules.evaluate({ris}, t0 + 604s, wall).empty());  // once
    CHECK_FALSE(rules.status()[0].firing);
    // Another channel's destination is not this rule's.
    auto other = channel("other");
    other.destinations[0].failing = true;
    CHECK(rules.evaluate({ris, other}, t0 + 700s, wall).empty());
}

TEST_CASE("alerts: errors over N in a window, from the rule's own samples", "[core][alerts]") {
    auto r = rule("errs", "errors");
    r.channel = "ris";
    r.over = 2;
    r.window = 60s;
    AlertRules rules({r});
    auto ris = channel("ris");
    ris.counters.errored = 10;  // errors before the first sample do not count
    CHECK(rules.evaluate({ris}, t0, wall).empty());
    ris.counters.errored = 12;
    CHECK(rules.evaluate({ris}, t0 + 10s, wall).empty());  // 2: not over 2
    ris.counters.errored = 13;
    auto fired = rules.evaluate({ris}, t0 + 20s, wall);
    REQUIRE(fired.size() == 1);
    CHECK(fired[0].detail == "3 error(s) on channel ris in the last 1m");
    CHECK(rules.evaluate({ris}, t0 + 50s, wall).empty());
    // At t0+75s the window starts at t0+15s: counted from the sample before it (12 at t0+10s), 1 error.
    auto cleared = rules.evaluate({ris}, t0 + 75s, wall);
    REQUIRE(cleared.size() == 1);
    CHECK_FALSE(cleared[0].firing);
    // Counters that start again (a redeploy) are no negative count.
    ris.counters.errored = 0;
    CHECK(rules.evaluate({ris}, t0 + 90s, wall).empty());
}

TEST_CASE("alerts: queue depth, a stopped channel, no messages", "[core][alerts]") {
    auto depth = rule("backlog", "queue_depth");
    depth.over = 100;
    auto stopped = rule("stopped", "channel_stopped");
    auto quiet = rule("quiet", "no_messages");
    quiet.channel = "adt";
    quiet.window = 10min;
    AlertRules rules({depth, stopped, quiet});
    auto ris = channel("ris");
    auto adt = channel("adt");
    auto off = channel("off", ChannelState::Stopped);
    off.enabled = false;  // a disabled channel is stopped on purpose
    CHECK(rules.evaluate({ris, adt, off}, t0, wall).empty());
    ris.destinations[0].queued = 101;
    adt.state = ChannelState::Failed;
    adt.error = "port in use";
    auto changes = rules.evaluate({ris, adt, off}, t0 + 1s, wall);
    REQUIRE(changes.size() == 2);
    CHECK(changes[0].detail == "destination out of channel ris: 101 queued");
    CHECK(changes[1].detail == "channel adt is failed: port in use");
    adt.state = ChannelState::Running;
    adt.counters.received = 5;
    changes = rules.evaluate({ris, adt, off}, t0 + 2s, wall);
    REQUIRE(changes.size() == 1);
    CHECK(changes[0].rule == 1);
    CHECK_FALSE(changes[0].firing);
    CHECK(rules.evaluate({ris, adt, off}, t0 + 5min, wall).empty());
    changes = rules.evaluate({ris, adt, off}, t0 + 2s + 10min, wall);
    REQUIRE(changes.size() == 1);
    CHECK(changes[0].rule == 2);
    CHECK(changes[0].firing);
    adt.counters.received = 6;
    changes = rules.evaluate({ris, adt, off}, t0 + 11min, wall);
    REQUIRE(changes.size() == 1);
    CHECK_FALSE(changes[0].firing);
}

TEST_CASE("alerts: errors over a long window are counted from merged samples", "[core][alerts]") {
    auto r = rule("month", "errors");
    r.over = 500;
    r.window = std::chrono::hours(24 * 30);
    AlertRules rules({r});
    auto ris = channel("ris");
    std::size_t fired = 0, at = 0;
    for (std::size_t i = 0; i <= 600; ++i) {  // one error every 2 s
        ris.counters.errored = i;
        auto changes = rules.evaluate({ris}, t0 + std::chrono::seconds(2 * i), wall);
        if (!changes.empty() && changes[0].firing) ++fired, at = i;
    }
    CHECK(fired == 1);
    CHECK(at == 501);  // the 501st error since the first look
    CHECK(rules.status()[0].detail == "600 error(s) on channel ris in the last 30d");
}
