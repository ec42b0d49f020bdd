// The MLLP listener (io_uring and epoll) against connections that would lock
// it: idle ones at max_connections, slow senders that never end a frame, many
// from one address. A new sender must be served while they are open.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "connectors/mllp/framing.h"
#include "connectors/mllp/listener.h"
#include "tests/mllp/listener_peers.h"

using namespace junction::mllp;
using namespace std::chrono_literals;
using namespace mllp_test;

namespace {

// Sends `message` from a new connection: whether its ACK came within `limit`.
bool answeredWithin(int port, const std::string& message, std::chrono::milliseconds limit) {
    auto start = SteadyClock::now();
    Peer sender(port);
    sender.write(frame(message));
    std::string got;
    return sender.read(got, limit) && got == "ACK " + message && SteadyClock::now() - start < limit;
}

}  // namespace

TEST_CASE("listener: at max_connections the longest-idle connection makes room for a new sender, logged", "[mllp][listener]") {
    const bool ioUring = GENERATE(true, false);
    const int threads = GENERATE(1, 2);  // with two loops the evicted one may be served by the other
    auto o = loopback(ioUring, threads);  // max_connections 200, idle timeout 5 minutes
    Logs logs;
    Listener l(o, logs.into(echo()));
    l.start();
    std::vector<std::unique_ptr<Peer>> idle;
    idle.push_back(std::make_unique<Peer>(l.port()));
    std::string got;
    idle[0]->write(frame("first"));
    REQUIRE(idle[0]->read(got));
    std::this_thread::sleep_for(50ms);  // answered, then the longest idle
    for (int i = 1; i < 200; ++i) {
        idle.push_back(std::make_unique<Peer>(l.port()));
        REQUIRE(idle.back()->connected());
    }
    REQUIRE(waitForConnections(l, 200));
    CHECK(answeredWithin(l.port(), "real", 2000ms));
    CHECK(idle[0]->closedWithin(2000ms));
    CHECK(logs.waitFor({idle[0]->name(), "idle for", "make room", "max_connections 200"}));
    CHECK(logs.with({"make room"}).size() == 1);
    CHECK(waitForConnections(l, 199));  // the one evicted and the sender, gone
    // The other idle connections are still served.
    idle[1]->write(frame("second"));
    REQUIRE(idle[1]->read(got));
    CHECK(got == "ACK second");
    l.stop();
}

TEST_CASE("listener: past max_connections with every message unanswered a new connection is refused and logged, an answered one makes room", "[mllp][listener]") {
    auto o = loopback(GENERATE(true, false));
    o.maxConnections = 2;
    Inbox inbox;
    Logs logs;
    Listener l(o, logs.into(deferTo(inbox)));
    l.start();
    Peer a(l.port()), b(l.port());
    a.write(frame("A1"));
    Pending pa, pb;
    REQUIRE(inbox.pop(pa));
    b.write(frame("B1"));
    REQUIRE(inbox.pop(pb));
    Peer c(l.port());
    CHECK(c.closedWithin(2000ms));
    CHECK(logs.waitFor({"refused", "max_connections"}));
    CHECK(l.connections() == 2);
    pa.reply("ok A1");
    std::string got;
    REQUIRE(a.read(got));
    CHECK(got == "ok A1");
    // A1 answered: `a` may make room now; `b` (B1 unanswered) may not.
    Peer d(l.port());
    d.write(frame("D1"));
    answer(inbox, d, "D1");
    CHECK(a.closedWithin(2000ms));
    pb.reply("ok B1");
    REQUIRE(b.read(got));
    CHECK(got == "ok B1");
    l.stop();
}

TEST_CASE("listener: a connection whose message waits to be taken in is not evicted", "[mllp][listener]") {
    using Admit = Listener::Handlers::Admit;
    auto o = loopback(GENERATE(true, false));
    o.maxConnections = 1;
    std::atomic<Admit> admit{Admit::Wait};  // e.g. the channel is paused
    Inbox inbox;
    auto h = deferTo(inbox);
    h.admit = [&] { return admit.load(); };
    Listener l(o, h);
    l.start();
    Peer held(l.port());
    held.write(frame("H1"));
    std::this_thread::sleep_for(100ms);  // read and held
    Peer other(l.port());
    CHECK(other.closedWithin(2000ms));
    admit = Admit::Yes;
    answer(inbox, held, "H1");
    l.stop();
}

TEST_CASE("listener: a frame not ended within frame_timeout closes its connection, logged once, and a message in processing stops that clock", "[mllp][listener]") {
    auto o = loopback(GENERATE(true, false));
    o.frameTimeout = 500ms;  // idle timeout: 5 minutes
    Inbox inbox;
    Logs logs;
    Listener l(o, logs.into(deferTo(inbox)));
    l.start();

    // One byte every 100 ms, never the end of the frame.
    Peer slow(l.port());
    std::atomic<bool> done{false};
    std::thread trickle([&] {
        std::string bytes = std::string(1, kStartBlock) + "MSH|^~\\&|SLOW|SENDER|A|B|20260101||ADT^A01|S1|P|2.5";
        for (char ch : bytes) {
            if (done) break;
            slow.write(std::string(1, ch));
            std::this_thread::sleep_for(100ms);
        }
    });
    auto start = SteadyClock::now();
    CHECK(slow.closedWithin(3000ms));
    auto took = SteadyClock::now() - start;
    done = true;
    trickle.join();
    CHECK(took >= 400ms);
    CHECK(logs.with({slow.name(), "frame_timeout"}).size() == 1);

    // A frame that comes in pieces within the limit is served.
    Peer steady(l.port());
    std::string f = frame("steady");
    for (std::size_t i = 0; i < f.size(); i += 3) {
        steady.write(f.substr(i, 3));
        std::this_thread::sleep_for(50ms);
    }
    answer(inbox, steady, "steady");

    // The next frame, begun while P1 is in processing (longer than the
    // timeout), is awaited from when P1 is answered.
    Peer piped(l.port());
    piped.write(frame("P1") + std::string(1, kStartBlock) + "P2-");
    Pending p;
    REQUIRE(inbox.pop(p));
    CHECK(p.payload == "P1");
    std::this_thread::sleep_for(1000ms);
    p.reply("ok P1");
    std::string got;
    REQUIRE(piped.read(got));
    CHECK(got == "ok P1");
    piped.write(std::string("end") + kEndBlock + kCarriageReturn);
    answer(inbox, piped, "P2-end");
    CHECK(logs.with({"frame_timeout"}).size() == 1);
    l.stop();
}

TEST_CASE("listener: 200 slow senders, a byte every 100 ms and never a whole frame, do not keep a new sender out", "[mllp][listener]") {
    auto o = loopback(GENERATE(true, false));  // max_connections 200, frame_timeout 30 s
    Logs logs;
    Listener l(o, logs.into(echo()));
    l.start();
    std::vector<std::unique_ptr<Peer>> slow;
    for (int i = 0; i < 200; ++i) {
        slow.push_back(std::make_unique<Peer>(l.port()));
        REQUIRE(slow.back()->connected());
        slow.back()->write(std::string(1, kStartBlock) + "MSH|");
    }
    std::atomic<bool> done{false};
    std::thread trickle([&] {
        for (int round = 0; round < 50 && !done; ++round) {  // 5 s at most
            for (auto& p : slow) p->write("x");
            std::this_thread::sleep_for(100ms);
        }
    });
    REQUIRE(waitForConnections(l, 200));
    std::this_thread::sleep_for(300ms);
    CHECK(answeredWithin(l.port(), "real", 2000ms));
    CHECK(logs.waitFor({"make room"}));
    done = true;
    trickle.join();
    l.stop();
}

TEST_CASE("listener: max_connections_per_address refuses more from one address (logged), other addresses are served", "[mllp][listener]") {
    auto o = loopback(GENERATE(true, false));
    o.maxConnectionsPerAddress = 2;
    Logs logs;
    Listener l(o, logs.into(echo()));
    l.start();
    auto a1 = std::make_unique<Peer>(l.port());
    Peer a2(l.port());
    REQUIRE(waitForConnections(l, 2));
    Peer a3(l.port());
    CHECK(a3.closedWithin(2000ms));
    CHECK(logs.waitFor({a3.name(), "refused", "2 open from 127.0.0.1", "max_connections_per_address"}));
    Peer b(l.port(), "127.0.0.2");
    REQUIRE(b.connected());
    b.write(frame("b"));
    std::string got;
    REQUIRE(b.read(got));
    CHECK(got == "ACK b");
    a1.reset();
    REQUIRE(waitForConnections(l, 2));  // a2 and b
    CHECK(answeredWithin(l.port(), "a4", 2000ms));
    l.stop();
}
