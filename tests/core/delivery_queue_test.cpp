// A destination's delivery queue once its backlog outgrows memory (the head
// held, the rest read back from the store a page at a time): every queued
// delivery is sent exactly once, none twice and none missing, also when a page
// is read while a message is stored but its intake has not yet queued it.
#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "engine/config/node.h"
#include "engine/core/engine.h"
#include "engine/hl7/message.h"
#include "tests/core/test_support.h"
#include "tests/support/connectors.h"

using namespace junction;
using namespace junction::testing;
using namespace std::chrono_literals;

namespace {

// Arrivals at a destination by control id (MSH-10), from any thread.
class Arrivals {
public:
    void note(const std::string& id) {
        std::lock_guard<std::mutex> lock(m_);
        ++times_[id];
        ++total_;
    }
    int times(const std::string& id) const {
        std::lock_guard<std::mutex> lock(m_);
        auto it = times_.find(id);
        return it == times_.end() ? 0 : it->second;
    }
    std::size_t distinct() const {
        std::lock_guard<std::mutex> lock(m_);
        return times_.size();
    }
    std::size_t total() const {
        std::lock_guard<std::mutex> lock(m_);
        return total_;
    }
    void clear() {
        std::lock_guard<std::mutex> lock(m_);
        times_.clear();
        total_ = 0;
    }
    // The ids that arrived more than once, as "id x times".
    std::vector<std::string> repeated() const {
        std::lock_guard<std::mutex> lock(m_);
        std::vector<std::string> out;
        for (const auto& [id, n] : times_)
            if (n > 1) out.push_back(id + " x" + std::to_string(n));
        return out;
    }

private:
    mutable std::mutex m_;
    std::map<std::string, int> times_;
    std::size_t total_ = 0;
};

// The `record` destination of these tests: notes each message it is given in
// `arrivals`, once the gate is open (until then a send waits: a destination
// slower than intake, whose queue goes to the store).
struct RecordBoard {
    Arrivals arrivals;
    std::mutex m;
    std::condition_variable cv;
    bool open = false;

    void reset() {
        std::lock_guard<std::mutex> lock(m);
        arrivals.clear();
        open = false;
    }
    void letThrough() {
        {
            std::lock_guard<std::mutex> lock(m);
            open = true;
        }
        cv.notify_all();
    }
};

RecordBoard& board() {
    static RecordBoard b;
    return b;
}

class RecordDestination : public core::Destination {
public:
    core::SendResult send(const core::Outbound& m) override {
        RecordBoard& b = board();
        {
            std::unique_lock<std::mutex> lock(b.m);
            b.cv.wait(lock, [&] { return b.open || aborted_; });
            if (!b.open) return core::SendResult::retry("aborted");
        }
        b.arrivals.note(msh10(m.content));
        return core::SendResult::ok();
    }
    void abort() override {
        RecordBoard& b = board();
        {
            std::lock_guard<std::mutex> lock(b.m);
            aborted_ = true;
        }
        b.cv.notify_all();
    }
    std::string describe() const override { return "record"; }

private:
    bool aborted_ = false;  // guarded by board().m
};

class RecordFactory : public core::MappedDestinationFactory<config::NoSettings> {
public:
    RecordFactory() : MappedDestinationFactory(config::noSettings()) {}

protected:
    std::unique_ptr<core::Destination> build(config::NoSettings, const core::BuildContext&) const override {
        return std::make_unique<RecordDestination>();
    }
};

const core::ConnectorRegistry& registry() {
    static const core::ConnectorRegistry r = [] {
        core::ConnectorRegistry reg = app::builtinConnectors();
        reg.addDestination("record", std::make_unique<RecordFactory>());
        return reg;
    }();
    return r;
}

// Where the channel of a test delivers: its destination's YAML, how the test
// lets deliveries through (until then they wait), and what arrived.
struct Target {
    std::string destination;
    std::function<void()> open;
    std::function<const Arrivals&()> arrivals;
};

std::string withControlId(const std::string& msg, const std::string& id) {
    hl7::Message m = hl7::Message::parseOrThrow(msg);
    m.set("MSH-10", id);
    return m.serialize();
}

std::string sample() { return readFile(std::string(JUNCTION_SOURCE_DIR) + "/samples/hl7/adt_a04.hl7"); }

// An engine in `dir` whose channel `dup` takes messages handed to it
// (Engine::submitTo) and sends them to `destination`.
std::unique_ptr<core::Engine> startEngine(const TempDir& dir, const std::string& destination) {
    auto engine = std::make_unique<core::Engine>(engineOptions(dir.str()), registry());
    std::string yaml = "channel: dup\nsource: { type: channel }\ndestinations:\n  - " + destination + "\n";
    engine->addChannel(core::parseChannel(config::loadYamlString(yaml, "test.yaml"), dir.str() + "/test.yaml",
                                          dir.str(), registry()));
    engine->start();
    return engine;
}

core::DestinationInfo destinationOf(core::Engine& engine) { return engine.channel("dup")->destinations.at(0); }

// Every one of `total` messages arrived, none twice, and the queue is empty.
void eachArrivedOnce(core::Engine& engine, const Arrivals& arrivals, std::size_t total) {
    // None missing ...
    bool all = eventually([&] { return arrivals.distinct() == total; }, 30s);
    INFO("arrived: " << arrivals.distinct() << ", still queued in the store: "
                     << countStatus(engine, "dup", store::Status::Queued));
    REQUIRE(all);
    REQUIRE(eventually([&] { return destinationOf(engine).held == 0; }));  // nothing more to send
    CHECK(destinationOf(engine).queued == 0);
    // ... none twice.
    CHECK(arrivals.repeated() == std::vector<std::string>{});
    CHECK(arrivals.total() == total);
    engine.store().flush();
    CHECK(countStatus(engine, "dup", store::Status::Sent) == total);
    CHECK(countStatus(engine, "dup", store::Status::Queued) == 0);
}

// Intake stores more than memory holds while the destination waits: the queue
// goes to the store. Then one message, T, is stored and its sender answered,
// but the thread that took it in is held before T is queued (here by the
// answer itself; in a real engine by the scheduler, or a sync thread that
// answers many senders): meanwhile deliveries are let through, the lanes drain
// the held head and read the rest back from the store, where T already is, and
// another sender goes on. Each message must arrive exactly once.
void eachDeliveredOnce(const Target& target) {
    TempDir dir;
    auto engine = startEngine(dir, target.destination);
    const std::string hl7 = sample();
    std::atomic<int> refused{0};
    auto submit = [&](const std::string& id, std::function<void(const core::SubmitResult&)> then = {}) {
        bool found = engine->submitTo("dup", core::Inbound{withControlId(hl7, id), "test"},
                                      [&refused, then](core::SubmitResult r) {
                                          if (!r.accepted) refused++;
                                          if (then) then(r);
                                      });
        if (!found) refused++;
    };
    const int kBacklog = 4096 + 3000, kAfter = 500;
    for (int i = 0; i < kBacklog; ++i) submit("B" + std::to_string(i));
    CHECK(destinationOf(*engine).queued == static_cast<std::size_t>(kBacklog));
    CHECK(destinationOf(*engine).held <= 4096);  // the rest is in the store only

    std::thread more;
    bool early = false;  // T arrived before its intake queued it
    submit("T", [&](const core::SubmitResult&) {
        engine->store().flush();  // T is in the store's tables: a page may read it
        target.open();
        more = std::thread([&] {
            for (int i = 0; i < kAfter; ++i) submit("A" + std::to_string(i));
        });
        // Held until T arrives, or until the backlog before it has and the
        // lanes have had time to read more pages (they do when they drain,
        // and every 100 ms while the store holds what they have not read).
        std::optional<std::chrono::steady_clock::time_point> drained;
        while (target.arrivals().times("T") == 0) {
            if (!drained && target.arrivals().distinct() >= static_cast<std::size_t>(kBacklog))
                drained = std::chrono::steady_clock::now();
            if (drained && std::chrono::steady_clock::now() - *drained > 300ms) break;
            std::this_thread::sleep_for(2ms);
        }
        early = target.arrivals().times("T") > 0;
    });
    more.join();
    CHECK(refused == 0);
    CHECK_FALSE(early);
    eachArrivedOnce(*engine, target.arrivals(), kBacklog + 1 + kAfter);
}

Target recordTarget(int threads) {
    board().reset();
    return {"{ name: out, type: record, threads: " + std::to_string(threads) + " }", [] { board().letThrough(); },
            []() -> const Arrivals& { return board().arrivals; }};
}

// An MLLP peer that is not listening until `open` (the lanes retry meanwhile).
struct MllpTarget {
    int port = freePort();
    Arrivals arrivals;
    std::unique_ptr<MllpPeer> peer;

    Target target(int threads, int window) {
        return {"{ name: out, type: mllp, host: 127.0.0.1, port: " + std::to_string(port) +
                    ", threads: " + std::to_string(threads) + ", window: " + std::to_string(window) +
                    ", retry: { attempts: 1000, backoff: 20ms, max_backoff: 50ms } }",
                [this] {
                    peer = std::make_unique<MllpPeer>(port, [this](const std::string& msg) {
                        arrivals.note(MllpPeer::controlId(msg));
                        return MllpPeer::aa(msg);
                    });
                },
                [this]() -> const Arrivals& { return arrivals; }};
    }
};

}  // namespace

TEST_CASE("a backlog read back from the store reaches a destination once per message, one lane or four",
          "[core][channel]") {
    SECTION("one lane") { eachDeliveredOnce(recordTarget(1)); }
    SECTION("four lanes") { eachDeliveredOnce(recordTarget(4)); }
}

TEST_CASE("a backlog read back from the store reaches an MLLP peer once per message, windows and lanes",
          "[core][channel]") {
    MllpTarget mllp;
    SECTION("one lane, window 8") { eachDeliveredOnce(mllp.target(1, 8)); }
    SECTION("four lanes, window 8") { eachDeliveredOnce(mllp.target(4, 8)); }
    SECTION("four lanes, window 1") { eachDeliveredOnce(mllp.target(4, 1)); }
}

// What a crash left: messages stored and not processed yet among messages
// whose deliveries are queued, more than memory holds. At start the queued
// ones are read back a page at a time while the others are processed, their
// deliveries recorded after those of later messages: each arrives once.
TEST_CASE("messages processed at start among a queued backlog reach the destination once each", "[core][channel]") {
    const int kMessages = 12000;
    TempDir dir;
    {
        core::Engine crashed(engineOptions(dir.str()), registry());
        const std::string hl7 = sample();
        for (int i = 0; i < kMessages; ++i) {
            store::NewMessage m;
            m.channel = "dup";
            m.raw = withControlId(hl7, "R" + std::to_string(i));
            if (i % 2) {  // processed: its delivery queued
                store::ProcessedMessage p;
                p.channel = "dup";
                p.deliveries.push_back({"out", store::Status::Queued, m.raw, ""});
                m.processed = std::move(p);
            }
            crashed.store().insert(std::move(m), [](store::MessageId, const std::string&) {});
        }
        crashed.store().flush();
    }
    int threads = GENERATE(1, 4);
    board().reset();
    board().letThrough();
    auto engine = startEngine(dir, "{ name: out, type: record, threads: " + std::to_string(threads) + " }");
    eachArrivedOnce(*engine, board().arrivals, kMessages);
}

// Finished deliveries sent again (an operator's resend) while the queue is read
// back from the store: some above where the pages are (left to the store for a
// page), some at ids a page has passed (held) while the lanes drain and page. Each queued message and each resent one arrives exactly once more.
TEST_CASE("deliveries sent again among a backlog read back from the store arrive once each", "[core][channel]") {
    const int kPairs = 1500;  // a queued message and a failed one, alternately
    TempDir dir;
    std::vector<store::MessageId> failed;
    {
        core::Engine before(engineOptions(dir.str()), registry());
        const std::string hl7 = sample();
        for (int i = 0; i < 2 * kPairs; ++i) {
            store::NewMessage m;
            m.channel = "dup";
            m.raw = withControlId(hl7, (i % 2 ? "F" : "Q") + std::to_string(i / 2));
            store::ProcessedMessage p;
            p.channel = "dup";
            p.deliveries.push_back({"out", i % 2 ? store::Status::Error : store::Status::Queued, m.raw,
                                    i % 2 ? "refused" : ""});
            m.processed = std::move(p);
            before.store().insert(std::move(m), [&failed, i](store::MessageId id, const std::string&) {
                if (i % 2) failed.push_back(id);
            });
        }
        before.store().flush();
    }
    REQUIRE(failed.size() == static_cast<std::size_t>(kPairs));
    int threads = GENERATE(1, 4);
    board().reset();
    auto engine = startEngine(dir, "{ name: out, type: record, threads: " + std::to_string(threads) + " }");
    // The gate is closed: the first page is held, the rest waits in the store.
    // The later half first: above the first page (left to the store, for a page).
    for (std::size_t i = failed.size() / 2; i < failed.size(); ++i) {
        auto r = engine->resend(failed[i], "out");
        INFO(r.error);
        REQUIRE(r.code == core::RepairResult::Code::Done);
    }
    // Then the earlier half while the lanes drain and page: below the pages, or among them.
    board().letThrough();
    for (std::size_t i = 0; i < failed.size() / 2; ++i)
        REQUIRE(engine->resend(failed[i], "out").code == core::RepairResult::Code::Done);
    // A delivery queued again already is not queued twice.
    auto again = engine->resend(failed.back(), "out");
    CHECK((again.code == core::RepairResult::Code::Conflict || again.code == core::RepairResult::Code::Done));
    std::size_t expected = 2 * kPairs + (again.code == core::RepairResult::Code::Done ? 1 : 0);
    bool all = eventually([&] { return board().arrivals.total() >= expected; }, 30s);
    INFO("arrived: " << board().arrivals.total() << " of " << expected);
    REQUIRE(all);
    REQUIRE(eventually([&] { return destinationOf(*engine).held == 0; }));
    engine->store().flush();
    CHECK(board().arrivals.distinct() == static_cast<std::size_t>(2 * kPairs));
    CHECK(board().arrivals.total() == expected);
    CHECK(destinationOf(*engine).queued == 0);
    CHECK(countStatus(*engine, "dup", store::Status::Sent) == static_cast<std::size_t>(2 * kPairs));
}
