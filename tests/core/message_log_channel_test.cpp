// A channel's message log (a filter's reason, script log lines, errors, a
// destination's attempts) stored with each message, and its statistics kept
// in the store across an engine's restart and a channel's redeploy.
#include <catch2/catch.hpp>
#include <sqlite3.h>

#include <thread>

#include "connectors/mllp/client.h"
#include "engine/core/engine.h"
#include "engine/hl7/message.h"
#include "tests/core/test_support.h"
#include "tests/support/connectors.h"

using namespace junction;
using namespace junction::testing;

namespace {

const std::string kSamples = std::string(JUNCTION_SOURCE_DIR) + "/samples/hl7/";

bool sendTo(int port, const std::string& controlId) {
    hl7::Message m = hl7::Message::parseOrThrow(readFile(kSamples + "orm_o01_nw.hl7"));
    m.set("MSH-10", controlId);
    mllp::ClientOptions o;
    o.port = port;
    o.responseTimeout = std::chrono::seconds(10);
    mllp::Client c(o);
    return c.send(m.serialize()).ok();
}

std::optional<store::MessageDetail> byControlId(core::Engine& engine, const std::string& controlId) {
    engine.store().flush();
    store::SearchQuery q;
    q.controlId = controlId;
    auto found = engine.store().search(q);
    if (found.empty()) return std::nullopt;
    return engine.store().get(found.front().id);
}

const char* kScript = R"(
function keep(msg)
  log.info("looking at", msg:get("MSH-10"))
  if msg:get("MSH-10") == "SKIP" then return false, "control id SKIP is not wanted" end
  if msg:get("MSH-10") == "HUSH" then filter("hushed") end
end
function boom(msg)
  if msg:get("MSH-10") == "BOOM" then error("no such field") end
  log.warn("transformed")
end
function seen(msg, response, status)
  log.info("answered", status)
end
)";

}  // namespace

TEST_CASE("a message's log holds its filter reason, script lines and errors, and its deliveries' attempts",
          "[core][msglog]") {
    TempDir dir;
    int port = freePort();
    int peerPort = freePort();  // nothing listens here at first
    dir.write("t.lua", kScript);
    core::Engine engine(engineOptions(dir.str()), connectorRegistry());
    engine.addChannel(testChannel(dir.str(), R"(
channel: logged
source: { type: mllp, port: )" + std::to_string(port) + R"( }
script: t.lua
filter: keep
transform: boom
destinations:
  - name: emr
    type: mllp
    host: 127.0.0.1
    port: )" + std::to_string(peerPort) + R"(
    connect_timeout: 200ms
    retry: { attempts: 100, backoff: 50ms, max_backoff: 100ms }
    response: seen
)"));
    engine.start();

    REQUIRE(sendTo(port, "SKIP"));
    auto skipped = byControlId(engine, "SKIP");
    REQUIRE(skipped);
    CHECK(skipped->summary.status == store::Status::Filtered);
    REQUIRE(skipped->log.size() == 2);
    CHECK(skipped->log[0].stage == "filter");
    CHECK(skipped->log[0].text.find("looking at SKIP") != std::string::npos);
    CHECK(skipped->log[0].text.find("t.lua:3: ") != std::string::npos);
    CHECK(skipped->log[1].stage == "filter");
    CHECK(skipped->log[1].text == "filtered: control id SKIP is not wanted");

    REQUIRE(sendTo(port, "HUSH"));
    auto hushed = byControlId(engine, "HUSH");
    REQUIRE(hushed);
    CHECK(hushed->log.back().text == "filtered: hushed");

    sendTo(port, "BOOM");  // answered with an AE
    auto boom = byControlId(engine, "BOOM");
    REQUIRE(boom);
    CHECK(boom->summary.status == store::Status::Error);
    REQUIRE(boom->log.size() == 2);
    CHECK(boom->log[1].stage == "transform");
    CHECK(boom->log[1].level == store::LogLevel::Error);
    CHECK(boom->log[1].text.find("no such field") != std::string::npos);

    // The destination is down, then up: the first attempt failed, a later one is sent.
    REQUIRE(sendTo(port, "LATE"));
    REQUIRE(eventually([&] { return engine.channel("logged")->destinations[0].counters.retried >= 1; }));
    MllpPeer peer(peerPort);
    REQUIRE(eventually([&] { return peer.count() == 1; }));
    std::optional<store::MessageDetail> late;
    REQUIRE(eventually([&] {
        late = byControlId(engine, "LATE");
        return late && late->summary.status == store::Status::Sent;
    }));
    REQUIRE(late->log.size() == 3);  // "looking at", "transformed", and the response script's line
    CHECK(late->log[1].level == store::LogLevel::Warn);
    CHECK(late->log[2].stage == "destination:emr");
    CHECK(late->log[2].text.find("answered SENT") != std::string::npos);
    REQUIRE(late->deliveries.size() == 1);
    const auto& history = late->deliveries[0].history;
    REQUIRE(history.size() >= 2);
    CHECK(history.front().status == store::Status::Queued);
    CHECK_FALSE(history.front().error.empty());
    CHECK(history.back().status == store::Status::Sent);
    CHECK(static_cast<int>(history.size()) == late->deliveries[0].attempts);
}

TEST_CASE("statistics are kept in the store: totals hold across a restart and a redeploy", "[core][msglog][stats]") {
    TempDir dir;
    int port = freePort();
    const std::string yaml = R"(
channel: counted
source: { type: mllp, port: )" + std::to_string(port) + R"( }
destinations:
  - { name: out, type: file, directory: out }
)";
    dir.write("channels/counted.yaml", yaml);
    auto opts = engineOptions(dir.str());
    opts.config.channelsDir = dir.str() + "/channels";
    auto totalOf = [](core::Engine& e, const std::string& dest) {
        auto live = e.channels();
        return e.statsRecorder().figures(live, true).at({"counted", dest});
    };
    {
        core::Engine engine(opts, connectorRegistry());
        REQUIRE(engine.loadChannels().empty());
        engine.start();
        for (int i = 0; i < 3; ++i) REQUIRE(sendTo(port, "S" + std::to_string(i)));
        REQUIRE(eventually([&] { return engine.channel("counted")->destinations[0].counters.sent == 3; }));
        auto f = totalOf(engine, "out");
        CHECK(f.total.counters.sent == 3);  // counted, not written yet: shown all the same
        CHECK(f.last1m.sent + f.last1h.sent == 6);
        engine.stop();
    }
    core::Engine engine(opts, connectorRegistry());
    REQUIRE(engine.loadChannels().empty());
    engine.start();
    CHECK(engine.channel("counted")->counters.received == 0);  // the live counters start again
    auto f = totalOf(engine, "");
    CHECK(f.total.counters.received == 3);
    CHECK(f.total.latencyCount == 3);
    CHECK(f.last24h.received == 3);
    CHECK(totalOf(engine, "out").total.counters.sent == 3);
    REQUIRE(sendTo(port, "S3"));
    REQUIRE(eventually([&] { return engine.channel("counted")->destinations[0].counters.sent == 1; }));
    engine.redeployChannel("counted");
    REQUIRE(sendTo(port, "S4"));
    REQUIRE(eventually([&] { return engine.channel("counted")->destinations[0].counters.sent == 1; }));
    engine.statsRecorder().flush();
    CHECK(totalOf(engine, "out").total.counters.sent == 5);
    CHECK(totalOf(engine, "").total.counters.received == 5);
    auto series = engine.statsRecorder().series("counted", "", 3);
    REQUIRE(series.size() == 3);
    std::uint64_t received = 0;
    for (const auto& m : series) received += m.counters.received;
    CHECK(received >= 2);  // this run's; the first run's too unless a minute began meanwhile
    CHECK(series[1].start - series[0].start == std::chrono::minutes(1));
}

TEST_CASE("the 1 min window holds the last 60 s of counts, not the current minute", "[core][stats]") {
    TempDir dir;
    using namespace std::chrono_literals;
    std::vector<core::ChannelInfo> chans(1);
    chans[0].name = "c";
    auto now = std::chrono::system_clock::time_point(std::chrono::minutes(29'000'000)) + 50s;  // 50 s into a minute
    core::StatsRecorder r(store::openSqliteStats(dir.str() + "/stats.db", false), [&] { return chans; });
    r.setClock([&] { return now; });
    auto window = [&] { return r.figures(chans, true).at({"c", ""}); };
    chans[0].counters.received = 10;
    r.flush();
    now += 20s;  // 10 s into the next minute
    chans[0].counters.received = 15;
    r.flush();
    CHECK(window().last1m.received == 15);  // both writes are younger than 60 s (the current minute holds 5)
    CHECK(window().last1h.received == 15);
    now += 45s;  // the first write is 65 s old
    chans[0].counters.received = 16;  // counted, not written
    CHECK(window().last1m.received == 6);
    CHECK(window().last1h.received == 16);
    CHECK(window().total.counters.received == 16);
    now += 60s;
    r.flush();
    CHECK(window().last1m.received == 1);
    CHECK(window().last24h.received == 16);
}

TEST_CASE("the last statistics write at a stop waits out a busy database", "[core][stats]") {
    TempDir dir;
    const std::string db = dir.str() + "/stats.db";
    std::vector<core::ChannelInfo> chans(1);
    chans[0].name = "c";
    core::StatsRecorder r(store::openSqliteStats(db, false, 200), [&] { return chans; });
    chans[0].counters.received = 1;
    REQUIRE(r.flush());
    // Another connection holds the write lock for 1.5 s.
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(db.c_str(), &other) == SQLITE_OK);
    REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    std::thread release([other] {
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr);
    });
    chans[0].counters.received = 3;
    CHECK_FALSE(r.flush());  // one try: the lock outlasts its wait
    CHECK(r.finalFlush(std::chrono::seconds(10)));
    release.join();
    sqlite3_close(other);
    core::StatsRecorder again(store::openSqliteStats(db, false), [] { return std::vector<core::ChannelInfo>{}; });
    std::vector<core::ChannelInfo> none(1);
    none[0].name = "c";
    CHECK(again.figures(none, false).at({"c", ""}).total.counters.received == 3);
}
