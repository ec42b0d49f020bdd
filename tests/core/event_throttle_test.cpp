// The event throttle (engine/core/event_throttle.h): a flood of like events
// is recorded 21 a minute, the rest counted and told with the next one.
#include <catch2/catch.hpp>

#include "engine/core/event_throttle.h"

using junction::core::EventThrottle;
using namespace std::chrono_literals;

TEST_CASE("a flood of like events is recorded a few a minute, the rest counted and told later", "[core][events]") {
    EventThrottle t;
    auto t0 = EventThrottle::Clock::now();
    int recorded = 0;
    std::string last;
    for (int i = 0; i < 100; ++i)
        if (auto r = t.admit("connection.opened", "connection " + std::to_string(i), t0 + std::chrono::milliseconds(i))) {
            ++recorded;
            last = *r;
        }
    CHECK(recorded == EventThrottle::kPerMinute + 1);
    CHECK(last == "connection 20 (more connection.opened events in the next minute are counted, not recorded one by one)");
    // Another type is counted apart.
    CHECK(t.admit("connection.closed", "closed", t0) == std::optional<std::string>("closed"));
    // Still within the minute: counted.
    CHECK_FALSE(t.admit("connection.opened", "x", t0 + 59s));
    // The next minute: recorded again, with the count of the ones held.
    CHECK(t.admit("connection.opened", "connection 101", t0 + 61s) ==
          std::optional<std::string>("connection 101 (and 80 more before it, counted, not recorded one by one)"));
    CHECK(t.admit("connection.opened", "connection 102", t0 + 62s) == std::optional<std::string>("connection 102"));
}
