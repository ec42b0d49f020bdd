// The statistics tables (stats_store.h): deltas added to their minute and to
// the total, the recent minutes read back, old minutes dropped, and all of it
// still there after a reopen.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "engine/store/stats_store.h"
#include "tests/store/store_test_support.h"

using namespace junction::store;
using namespace std::chrono_literals;

namespace {

struct Dir : junction::testing::TempFolder {
    Dir() : TempFolder("stats-test") {}
};

constexpr std::int64_t kMinute = 60'000;
const std::int64_t kNow = 1'800'000'000'000 - 1'800'000'000'000 % kMinute;  // a minute's start

std::chrono::system_clock::time_point at(std::int64_t ms) {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

StatsRow row(const std::string& channel, const std::string& dest, std::int64_t minute, std::uint64_t received,
             std::uint64_t sent, std::vector<std::uint64_t> buckets = {}) {
    StatsRow r;
    r.channel = channel;
    r.destination = dest;
    r.minuteMs = minute;
    r.counts = {received, 0, 0, sent, 0, 0};
    for (auto b : buckets) r.latencyCount += b;
    r.latencySumUs = r.latencyCount * 100;
    r.latencyBuckets = std::move(buckets);
    return r;
}

const StatsRow* find(const std::vector<StatsRow>& rows, const std::string& channel, const std::string& dest) {
    for (const auto& r : rows)
        if (r.channel == channel && r.destination == dest) return &r;
    return nullptr;
}

}  // namespace

TEST_CASE("statistics add up per minute and in total, and survive a reopen", "[store][stats]") {
    Dir dir;
    {
        auto s = openSqliteStats(dir.db(), false);
        s->add({row("ris", "", kNow - 120 * kMinute, 5, 0, {0, 2, 3}), row("ris", "emr", kNow - 120 * kMinute, 0, 4)},
               at(kNow - 1439 * kMinute));
        s->add({row("ris", "", kNow - 30 * kMinute, 7, 0, {0, 1, 0, 6}), row("ris", "", kNow, 1, 0)},
               at(kNow - 1439 * kMinute));
        s->add({row("ris", "", kNow, 2, 0), row("adt", "", kNow, 3, 0)}, at(kNow - 1439 * kMinute));
        s->add({row("idle", "", kNow, 0, 0)}, at(kNow - 1439 * kMinute));  // nothing counted: no row
    }
    auto s = openSqliteStats(dir.db(), false);
    auto totals = s->totals();
    CHECK(totals.size() == 3);
    const StatsRow* ris = find(totals, "ris", "");
    REQUIRE(ris);
    CHECK(ris->counts[0] == 15);
    CHECK(ris->latencyCount == 12);
    CHECK(ris->latencySumUs == 1200);
    REQUIRE(ris->latencyBuckets.size() == 4);
    CHECK(ris->latencyBuckets[1] == 3);
    CHECK(ris->latencyBuckets[2] == 3);
    CHECK(ris->latencyBuckets[3] == 6);
    REQUIRE(find(totals, "ris", "emr"));
    CHECK(find(totals, "ris", "emr")->counts[3] == 4);
    CHECK_FALSE(find(totals, "idle", ""));

    auto minutes = s->minutesSince(at(kNow - 60 * kMinute));
    REQUIRE(minutes.size() == 3);  // adt's and ris's current minute, ris's of 30 minutes ago
    CHECK(minutes[0].channel == "adt");
    CHECK(minutes[0].counts[0] == 3);
    CHECK(minutes[1].channel == "ris");
    CHECK(minutes[1].destination.empty());
    CHECK(minutes[1].minuteMs == kNow - 30 * kMinute);
    CHECK(minutes[1].counts[0] == 7);
    CHECK(minutes[2].minuteMs == kNow);
    CHECK(minutes[2].counts[0] == 3);
    CHECK(s->minutesSince(at(kNow - 1439 * kMinute)).size() == 5);  // with ris's and ris/emr's of 2 hours ago

    // A day later the old minutes are dropped; the totals stay.
    s->add({row("ris", "", kNow + 1440 * kMinute, 1, 0)}, at(kNow + 1));
    CHECK(s->minutesSince(at(0)).size() == 1);
    CHECK(find(s->totals(), "ris", "")->counts[0] == 16);
}
