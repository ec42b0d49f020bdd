// The MLLP listener (io_uring and epoll): order per connection, replies from other threads,
// connections over several loops, idle timeout, slow readers (connection limits and
// timeouts: listener_limits_test.cpp; TLS: listener_tls_test.cpp).
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "connectors/mllp/framing.h"
#include "connectors/mllp/listener.h"
#include "connectors/mllp/uring.h"
#include "engine/util/round.h"
#include "tests/mllp/listener_peers.h"

using namespace junction::mllp;
using namespace std::chrono_literals;
using namespace mllp_test;

TEST_CASE("listener: pipelined messages of a connection are handed on one at a time, answered in order", "[mllp][listener]") {
    Inbox inbox;
    Listener l(loopback(GENERATE(true, false)), deferTo(inbox));
    l.start();
    Peer a(l.port());
    REQUIRE(a.connected());
    a.write(frame("A1") + frame("A2") + frame("A3"));
    Pending p;
    REQUIRE(inbox.pop(p));
    CHECK(p.payload == "A1");
    // A2 waits for A1's reply, however long it takes.
    std::this_thread::sleep_for(200ms);
    CHECK(inbox.size() == 0);
    // Replies come from another thread.
    std::thread([r = std::move(p.reply)] { r("ok A1"); }).join();
    REQUIRE(inbox.pop(p));
    CHECK(p.payload == "A2");
    std::thread([r = std::move(p.reply)] { r("ok A2"); }).join();
    REQUIRE(inbox.pop(p));
    CHECK(p.payload == "A3");
    p.reply("ok A3");
    std::string got;
    for (const char* want : {"ok A1", "ok A2", "ok A3"}) {
        REQUIRE(a.read(got));
        CHECK(got == want);
    }
    l.stop();
}

TEST_CASE("listener: replies left for the end of the round go out in order, pipelined messages still one at a time", "[mllp][listener]") {
    // As the intake journal does with sync: full: the reply waits for work done
    // once at the end of the loop's round, on the loop's thread.
    std::mutex mu;
    std::map<char, int> outstanding;  // per connection (the payload's first letter)
    int most = 0, inRound = 0;
    Listener::Handlers h;
    h.message = [&](std::string payload, const std::string&, Listener::Reply reply) {
        {
            std::lock_guard<std::mutex> lock(mu);
            most = std::max(most, ++outstanding[payload[0]]);
            inRound += junction::util::Round::active();
        }
        junction::util::Round::defer([&, payload, reply = std::move(reply)] {
            {
                std::lock_guard<std::mutex> lock(mu);
                --outstanding[payload[0]];
            }
            reply("ok " + payload);
        });
    };
    Listener l(loopback(GENERATE(true, false)), h);
    l.start();
    Peer a(l.port()), b(l.port());
    REQUIRE(a.connected());
    REQUIRE(b.connected());
    a.write(frame("A1") + frame("A2") + frame("A3") + frame("A4") + frame("A5"));
    b.write(frame("B1") + frame("B2") + frame("B3"));
    std::string got;
    for (const char* want : {"ok A1", "ok A2", "ok A3", "ok A4", "ok A5"}) {
        REQUIRE(a.read(got));
        CHECK(got == want);
    }
    for (const char* want : {"ok B1", "ok B2", "ok B3"}) {
        REQUIRE(b.read(got));
        CHECK(got == want);
    }
    l.stop();
    CHECK(most == 1);
    CHECK(inRound == 8);
}

TEST_CASE("listener: the replies of a round go out together, each to its own sender", "[mllp][listener]") {
    // The first message holds the loop until the three others are waiting:
    // those three are read in one round and answered together.
    std::mutex mu;
    std::condition_variable cv;
    bool started = false, release = false;
    Listener::Handlers h;
    h.message = [&](std::string payload, const std::string&, Listener::Reply reply) {
        if (payload == "first") {
            std::unique_lock<std::mutex> lock(mu);
            started = true;
            cv.notify_all();
            cv.wait_for(lock, 5s, [&] { return release; });
        }
        reply("ACK " + payload);
    };
    auto o = loopback(GENERATE(true, false));
    Listener l(o, h);
    l.start();
    std::vector<std::unique_ptr<Peer>> peers;
    for (int i = 0; i < 4; ++i) peers.push_back(std::make_unique<Peer>(l.port()));
    peers[0]->write(frame("first"));
    {
        std::unique_lock<std::mutex> lock(mu);
        REQUIRE(cv.wait_for(lock, 5s, [&] { return started; }));
    }
    for (int i = 1; i < 4; ++i) peers[i]->write(frame("m" + std::to_string(i)));
    std::this_thread::sleep_for(100ms);  // the three are in their sockets
    {
        std::lock_guard<std::mutex> lock(mu);
        release = true;
        cv.notify_all();
    }
    std::string got;
    REQUIRE(peers[0]->read(got));
    CHECK(got == "ACK first");
    for (int i = 1; i < 4; ++i) {
        REQUIRE(peers[i]->read(got));
        CHECK(got == "ACK m" + std::to_string(i));
    }
    l.stop();  // the loop's counters are final once it has ended
    auto batching = l.batching();
    if (l.usesIoUring()) {
        CHECK(batching.replies == 4);
        CHECK(batching.calls == 2);  // "first" alone, then the other three in one call
    } else {
        if (o.ioUring) WARN("io_uring is not available here: the replies were sent one by one");
        CHECK(batching.replies == 0);
        CHECK(batching.calls == 0);
    }
}

TEST_CASE("listener: work left for after the replies runs once the round's replies are out", "[mllp][listener]") {
    // As a channel does when it hands a message to a delivery thread: the wake-up
    // waits until the ACK is sent (the woken thread could take the CPU first).
    std::atomic<std::uint64_t> repliesSeen{~0ull};
    std::atomic<int> lateRuns{0};
    Listener* self = nullptr;
    Listener::Handlers h;
    h.message = [&](std::string payload, const std::string&, Listener::Reply reply) {
        junction::util::Round::defer([&, payload, reply = std::move(reply)] {
            reply("ACK " + payload);
            junction::util::Round::afterReplies([&] {
                repliesSeen = self->batching().replies;
                ++lateRuns;
            });
        });
    };
    Listener l(loopback(GENERATE(true, false)), h);
    self = &l;
    l.start();
    Peer p(l.port());
    p.write(frame("one"));
    std::string got;
    REQUIRE(p.read(got));
    CHECK(got == "ACK one");
    for (int i = 0; i < 100 && lateRuns == 0; ++i) std::this_thread::sleep_for(10ms);
    CHECK(lateRuns == 1);  // in the same round, not when the loop ends
    l.stop();
    if (l.usesIoUring()) CHECK(repliesSeen == 1);  // sent before the work ran
}

TEST_CASE("round: work left for after the replies waits for them, the round's end runs it at last", "[mllp][listener]") {
    std::vector<std::string> ran;
    {
        junction::util::Round round;
        junction::util::Round::defer([&] { ran.push_back("end"); });
        junction::util::Round::afterReplies([&] { ran.push_back("after"); });
        CHECK(round.end());
        CHECK(ran == std::vector<std::string>{"end"});
        CHECK(round.afterRepliesSent());
        CHECK_FALSE(round.afterRepliesSent());
        junction::util::Round::afterReplies([&] { ran.push_back("left"); });
    }  // the destructor runs what is left
    CHECK(ran == std::vector<std::string>{"end", "after", "left"});
}

TEST_CASE("listener: a waiting connection does not hold up the others", "[mllp][listener]") {
    Inbox inbox;
    Listener l(loopback(GENERATE(true, false)), deferTo(inbox));
    l.start();
    Peer a(l.port()), b(l.port());
    a.write(frame("A1"));
    Pending pa;
    REQUIRE(inbox.pop(pa));
    b.write(frame("B1"));
    Pending pb;
    REQUIRE(inbox.pop(pb));
    CHECK(pb.payload == "B1");
    pb.reply("ok B1");
    std::string got;
    REQUIRE(b.read(got));
    CHECK(got == "ok B1");
    pa.reply("");  // an empty reply sends nothing and frees the connection
    a.write(frame("A2"));
    REQUIRE(inbox.pop(pa));
    CHECK(pa.payload == "A2");
    pa.reply("ok A2");
    REQUIRE(a.read(got));
    CHECK(got == "ok A2");
    l.stop();
}

TEST_CASE("listener: many connections over two loops, every reply to its sender", "[mllp][listener]") {
    std::set<std::thread::id> threads;
    std::mutex mu;
    auto o = loopback(GENERATE(true, false), 2);
    Listener l(o, echo(&threads, &mu));
    l.start();
    constexpr int kConns = 12, kMessages = 200;
    std::atomic<int> wrong{0}, answered{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < kConns; ++c) {
        clients.emplace_back([&, c] {
            Peer p(l.port());
            std::string got;
            for (int i = 0; i < kMessages; ++i) {
                std::string msg = "c" + std::to_string(c) + "-" + std::to_string(i);
                p.write(frame(msg));
                if (!p.read(got) || got != "ACK " + msg) ++wrong;
                else ++answered;
            }
        });
    }
    for (auto& t : clients) t.join();
    l.stop();
    CHECK(wrong == 0);
    CHECK(answered == kConns * kMessages);
    std::lock_guard<std::mutex> lock(mu);
    CHECK(threads.size() == 2);
}

TEST_CASE("listener: an idle connection is closed, one waiting for its reply is not", "[mllp][listener]") {
    Inbox inbox;
    auto o = loopback(GENERATE(true, false));
    o.idleTimeout = 300ms;
    std::vector<std::string> logs;
    std::mutex mu;
    auto h = deferTo(inbox);
    h.log = [&](const std::string& level, const std::string& text) {
        std::lock_guard<std::mutex> lock(mu);
        logs.push_back(level + " " + text);
    };
    Listener l(o, h);
    l.start();
    Peer idle(l.port()), busy(l.port());
    busy.write(frame("B1"));
    Pending p;
    REQUIRE(inbox.pop(p));
    auto start = std::chrono::steady_clock::now();
    CHECK(idle.closedWithin(3000ms));
    CHECK(std::chrono::steady_clock::now() - start >= 250ms);
    std::this_thread::sleep_for(400ms);  // the busy one is past its idle time too
    p.reply("ok B1");
    std::string got;
    REQUIRE(busy.read(got));
    CHECK(got == "ok B1");
    CHECK(busy.closedWithin(3000ms));  // then idle in turn
    std::lock_guard<std::mutex> lock(mu);
    REQUIRE(!logs.empty());
    CHECK(logs[0].find("idle timeout") != std::string::npos);
}

TEST_CASE("listener: broken framing closes that connection only", "[mllp][listener]") {
    Listener l(loopback(GENERATE(true, false)), echo());
    l.start();
    Peer bad(l.port()), good(l.port());
    bad.write("GARBAGE" + frame("x"));
    CHECK(bad.closedWithin(3000ms));
    good.write(frame("y"));
    std::string got;
    REQUIRE(good.read(got));
    CHECK(got == "ACK y");
    l.stop();
}

TEST_CASE("listener: a peer that does not read its replies does not hold up the others", "[mllp][listener]") {
    std::string big(4u << 20, 'x');
    Listener::Handlers h;
    h.message = [&](std::string payload, const std::string&, Listener::Reply reply) {
        reply(payload == "big" ? big : "ACK " + payload);
    };
    Listener l(loopback(GENERATE(true, false)), h);
    l.start();
    Peer slow(l.port()), quick(l.port());
    slow.write(frame("big"));
    std::this_thread::sleep_for(200ms);  // 4 MB do not fit in the socket buffers
    std::string got;
    for (int i = 0; i < 20; ++i) {
        quick.write(frame(std::to_string(i)));
        REQUIRE(quick.read(got, 2000ms));
        CHECK(got == "ACK " + std::to_string(i));
    }
    REQUIRE(slow.read(got, 5000ms));
    CHECK(got.size() == big.size());
    slow.write(frame("small"));
    REQUIRE(slow.read(got));
    CHECK(got == "ACK small");
    l.stop();
}

TEST_CASE("listener: stop with a reply outstanding, the late reply is dropped", "[mllp][listener]") {
    Inbox inbox;
    auto l = std::make_unique<Listener>(loopback(GENERATE(true, false)), deferTo(inbox));
    l->start();
    Peer a(l->port());
    a.write(frame("A1"));
    Pending p;
    REQUIRE(inbox.pop(p));
    l->stop();
    CHECK(a.closedWithin(2000ms));
    l.reset();
    p.reply("too late");  // the loop is gone: nothing happens
    SUCCEED();
}

TEST_CASE("listener: while messages may not be taken in, connections wait and replies still go out", "[mllp][listener]") {
    using Admit = Listener::Handlers::Admit;
    std::atomic<Admit> admit{Admit::Yes};
    Inbox inbox;
    auto h = deferTo(inbox);
    h.admit = [&] { return admit.load(); };
    Listener l(loopback(GENERATE(true, false)), h);
    l.start();
    Peer a(l.port()), b(l.port());
    a.write(frame("A1"));
    Pending pa;
    REQUIRE(inbox.pop(pa));
    admit = Admit::Wait;  // e.g. the channel is paused
    b.write(frame("B1"));
    a.write(frame("A2"));
    std::this_thread::sleep_for(300ms);
    CHECK(inbox.size() == 0);
    // A1 was taken in before: its reply is sent while the others wait.
    pa.reply("ok A1");
    std::string got;
    REQUIRE(a.read(got, 2000ms));
    CHECK(got == "ok A1");
    CHECK(inbox.size() == 0);
    admit = Admit::Yes;
    Pending p1, p2;
    REQUIRE(inbox.pop(p1));
    REQUIRE(inbox.pop(p2));
    std::set<std::string> payloads{p1.payload, p2.payload};
    CHECK(payloads == std::set<std::string>{"A2", "B1"});
    p1.reply("ok " + p1.payload);
    p2.reply("ok " + p2.payload);
    REQUIRE(b.read(got));
    CHECK(got == "ok B1");
    REQUIRE(a.read(got));
    CHECK(got == "ok A2");
    // Stop: a waiting connection is closed.
    admit = Admit::Stop;
    b.write(frame("B2"));
    CHECK(b.closedWithin(2000ms));
    l.stop();
}

TEST_CASE("listener: a held message answered at the end of the round is answered when it is let in, not at the next event", "[mllp][listener]") {
    using Admit = Listener::Handlers::Admit;
    std::atomic<Admit> admit{Admit::Wait};
    Listener::Handlers h;
    h.admit = [&] { return admit.load(); };
    h.message = [](std::string payload, const std::string&, Listener::Reply reply) {
        junction::util::Round::defer([payload, reply = std::move(reply)] { reply("ok " + payload); });
    };
    Listener l(loopback(GENERATE(true, false)), h);  // no idle timeout: with nothing held the loop sleeps up to a second
    l.start();
    Peer a(l.port());
    a.write(frame("A1"));
    std::this_thread::sleep_for(100ms);  // held
    admit = Admit::Yes;
    auto t0 = std::chrono::steady_clock::now();
    std::string got;
    REQUIRE(a.read(got, 2000ms));
    CHECK(got == "ok A1");
    // Taken in by the held-connection retry (every 20 ms): the reply goes out in
    // that same round, not after the loop's next wake-up.
    CHECK(std::chrono::steady_clock::now() - t0 < 600ms);
    l.stop();
}

TEST_CASE("listener: a port in use is an error naming it", "[mllp][listener]") {
    Listener first(loopback(true), echo());
    first.start();
    auto o = loopback(true);
    o.port = first.port();
    Listener second(o, echo());
    try {
        second.start();
        FAIL("second listener started on a port in use");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find(std::to_string(o.port)) != std::string::npos);
    }
}

TEST_CASE("listener: out of file descriptors, new connections wait without a busy loop", "[mllp][listener]") {
    // In a child process with a small descriptor limit (the limit is per process).
    const bool ioUring = GENERATE(true, false);
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(ready[0]);
        Listener l(loopback(ioUring), echo());
        l.start();
        int highest = 0;
        for (int fd = 0; fd < 1024; ++fd)
            if (::fcntl(fd, F_GETFD) != -1) highest = fd;
        for (;;) {  // fill the holes below it: then exactly two descriptors are left
            int fd = ::open("/dev/null", O_RDONLY);
            if (fd < 0) ::_exit(1);
            if (fd > highest) {
                ::close(fd);
                break;
            }
        }
        rlimit lim{static_cast<rlim_t>(highest + 3), static_cast<rlim_t>(highest + 3)};  // room for two connections
        ::setrlimit(RLIMIT_NOFILE, &lim);
        int port = l.port();
        if (::write(ready[1], &port, sizeof port) != sizeof port) ::_exit(1);
        ::pause();
        ::_exit(0);
    }
    ::close(ready[1]);
    int port = 0;
    REQUIRE(::read(ready[0], &port, sizeof port) == sizeof port);
    ::close(ready[0]);
    auto cpuTicks = [&] {
        std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
        std::string s((std::istreambuf_iterator<char>(stat)), {});
        std::istringstream in(s.substr(s.rfind(')') + 2));
        std::string field;
        long ticks = 0;
        for (int i = 3; i <= 15 && in >> field; ++i)
            if (i >= 14) ticks += std::stol(field);  // utime + stime
        return ticks;
    };
    std::vector<std::unique_ptr<Peer>> peers;
    std::string got;
    for (int i = 0; i < 5; ++i) peers.push_back(std::make_unique<Peer>(port));
    for (int i = 0; i < 2; ++i) {
        peers[i]->write(frame("p" + std::to_string(i)));
        CHECK(peers[i]->read(got, 2000ms));
    }
    peers[2]->write(frame("p2"));
    long before = cpuTicks();
    CHECK_FALSE(peers[2]->read(got, 1000ms));  // accepted by the kernel, not by the listener
    long spent = cpuTicks() - before;
    CHECK(spent < 30);  // under 0.3 s of CPU in that second: no spinning on the listening socket
    peers[0].reset();
    peers[1].reset();
    REQUIRE(peers[2]->read(got, 3000ms));
    CHECK(got == "ACK p2");
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
}

TEST_CASE("listener: a sender that never reads its ACKs is held, then served when it reads", "[mllp][listener]") {
    std::atomic<int> handled{0};
    Listener::Handlers h;
    std::string reply(1000, 'r');
    h.message = [&](std::string, const std::string&, Listener::Reply r) {
        ++handled;
        r(reply);
    };
    bool ioUring = GENERATE(true, false);
    CAPTURE(ioUring);
    Listener l(loopback(ioUring), h);
    l.start();
    constexpr int kMessages = 20000;
    Peer p(l.port());
    std::string frames;
    for (int i = 0; i < kMessages; ++i) frames += frame("m" + std::to_string(i));
    std::thread writer([&] { p.write(frames); });  // blocks once the listener stops reading
    std::this_thread::sleep_for(1500ms);
    int before = handled.load();
    CHECK(before < kMessages);  // held: 20 MB of replies unread
    std::this_thread::sleep_for(500ms);
    CHECK(handled.load() == before);
    // Another connection is served meanwhile.
    Peer other(l.port());
    other.write(frame("x"));
    std::string got;
    REQUIRE(other.read(got));
    CHECK(got == reply);
    int read = 0;
    while (read < kMessages && p.read(got, 5000ms)) ++read;
    writer.join();
    CHECK(read == kMessages);
    CHECK(handled.load() == kMessages + 1);
    l.stop();
}

TEST_CASE("listener: a sender held for its unread replies is served again when they all leave with the round's sends", "[mllp][listener]") {
    // The loop takes the sender's messages in until 1 MB of replies is unread
    // and stops; at the end of that round, before the round's replies go out
    // together, the sender reads all its socket holds, so that those sends
    // take every reply left: the sender's next messages are handed on then.
    constexpr int kMessages = 1500;  // under 16 KB of frames: one read
    const std::string reply(10000, 'r');
    std::atomic<int> handled{0};
    std::mutex mu;
    std::condition_variable cv;
    bool endArmed = false, reading = false, drained = false;
    Listener::Handlers h;
    h.message = [&](std::string, const std::string&, Listener::Reply r) {
        ++handled;
        r(reply);
        if (endArmed) return;
        endArmed = true;
        junction::util::Round::defer([&] {
            endArmed = false;
            std::unique_lock<std::mutex> lock(mu);
            if (reading || handled.load() == kMessages) return;
            reading = true;
            cv.notify_all();
            cv.wait_for(lock, 5s, [&] { return drained; });
        });
    };
    bool ioUring = GENERATE(true, false);
    CAPTURE(ioUring);
    Listener l(loopback(ioUring), h);
    l.start();
    Peer p(l.port());
    std::string frames;
    for (int i = 0; i < kMessages; ++i) frames += frame("m" + std::to_string(i));
    p.write(frames);
    {
        std::unique_lock<std::mutex> lock(mu);
        REQUIRE(cv.wait_for(lock, 5s, [&] { return reading; }));
    }
    int read = 0;
    std::string got;
    while (p.read(got, 300ms)) ++read;  // what the socket holds
    {
        std::lock_guard<std::mutex> lock(mu);
        drained = true;
        cv.notify_all();
    }
    while (read < kMessages && p.read(got, 5000ms)) ++read;
    CHECK(read == kMessages);
    CHECK(handled.load() == kMessages);
    l.stop();
}

TEST_CASE("listener: a reply many times the size of the socket buffers goes out whole to a peer that reads it", "[mllp][listener]") {
    const std::string big(32u << 20, 'x');  // the socket takes a few MB at a time
    Listener::Handlers h;
    h.message = [&](std::string payload, const std::string&, Listener::Reply reply) {
        reply(payload == "big" ? big : "ACK " + payload);
    };
    bool ioUring = GENERATE(true, false);
    CAPTURE(ioUring);
    Listener l(loopback(ioUring), h);
    l.start();
    Peer p(l.port());
    // "small" is handed on once less than 1 MB of the big reply is left unread.
    p.write(frame("big") + frame("small"));
    std::string got;
    REQUIRE(p.read(got, 10000ms));
    CHECK(got.size() == big.size());
    REQUIRE(p.read(got));
    CHECK(got == "ACK small");
    l.stop();
}

TEST_CASE("listener: serves with io_uring where the kernel allows, with epoll when told", "[mllp][listener]") {
    Listener withRing(loopback(true), echo());
    withRing.start();
    std::string why;
    bool kernelAllows = junction::mllp::Ring::open(&why) != nullptr;
    if (!kernelAllows) WARN("io_uring is not available here: " + why);
    CHECK(withRing.usesIoUring() == kernelAllows);
    Listener withEpoll(loopback(false), echo());
    withEpoll.start();
    CHECK_FALSE(withEpoll.usesIoUring());
    for (Listener* l : {&withRing, &withEpoll}) {
        Peer p(l->port());
        p.write(frame("x"));
        std::string got;
        REQUIRE(p.read(got));
        CHECK(got == "ACK x");
    }
}

TEST_CASE("listener: a peer that ends its stream after its messages gets every reply, then is closed", "[mllp][listener]") {
    Inbox inbox;
    Listener l(loopback(GENERATE(true, false)), deferTo(inbox));
    l.start();
    Peer p(l.port());
    p.write(frame("one") + frame("two"));
    p.endWrites();
    for (const char* expected : {"one", "two"}) {
        Pending m;
        REQUIRE(inbox.pop(m));
        CHECK(m.payload == expected);
        std::this_thread::sleep_for(50ms);  // the end of the stream is in the socket meanwhile
        m.reply(std::string("ACK ") + expected);
        std::string got;
        REQUIRE(p.read(got));
        CHECK(got == std::string("ACK ") + expected);
    }
    CHECK(p.closedWithin(3000ms));
    CHECK(inbox.size() == 0);
    l.stop();
}

TEST_CASE("listener: a connection whose message is in processing is not read without bound", "[mllp][listener]") {
    Inbox inbox;
    Listener l(loopback(GENERATE(true, false)), deferTo(inbox));
    l.start();
    Peer p(l.port());
    p.write(frame("first"));
    Pending first;
    REQUIRE(inbox.pop(first));
    // 32 MB more while "first" is unanswered: the listener stops reading (the
    // socket buffers, at most 10 MB here, and its read-ahead take a part), so
    // the writer blocks.
    std::string more;
    for (int i = 0; more.size() < (32u << 20); ++i) more += frame(std::string(1000, 'a') + std::to_string(i));
    std::atomic<bool> written{false};
    std::thread writer([&] {
        p.write(more);
        written = true;
    });
    std::this_thread::sleep_for(1000ms);
    CHECK_FALSE(written.load());
    CHECK(inbox.size() == 0);  // one at a time
    first.reply("ACK first");
    std::string got;
    REQUIRE(p.read(got));
    CHECK(got == "ACK first");
    // Served one by one from here on, the writer gets through.
    int answered = 0;
    std::thread answer([&] {
        Pending m;
        while (inbox.pop(m, 1000ms)) {
            m.reply("ok");
            ++answered;
        }
    });
    int read = 0;
    while (p.read(got, 1000ms)) ++read;
    writer.join();
    answer.join();
    CHECK(written.load());
    CHECK(read == answered);
    CHECK(answered > 30000);
    l.stop();
}

TEST_CASE("listener: a burst from more connections than receive buffers, every message answered", "[mllp][listener]") {
    Listener l(loopback(GENERATE(true, false)), echo());
    l.start();
    constexpr int kConns = 150;  // more than the 64 buffers a ring lends to receives
    std::vector<std::unique_ptr<Peer>> peers;
    for (int i = 0; i < kConns; ++i) peers.push_back(std::make_unique<Peer>(l.port()));
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < kConns; ++i) peers[i]->write(frame(std::to_string(round) + "-" + std::to_string(i)));
        for (int i = 0; i < kConns; ++i) {
            std::string got;
            REQUIRE(peers[i]->read(got));
            CHECK(got == "ACK " + std::to_string(round) + "-" + std::to_string(i));
        }
    }
    l.stop();
}

TEST_CASE("listener: stopped, its port is free at once and its connections are closed", "[mllp][listener]") {
    // io_uring ends the requests of a closed ring later, in the kernel: a
    // request still holding the listening socket kept it listening, and a
    // restart on the same port (a redeploy) failed with "address in use".
    const bool ioUring = GENERATE(true, false);
    ListenerOptions o = loopback(ioUring);
    int port = 0;
    for (int round = 0; round < 30; ++round) {
        Listener l(o, echo());
        REQUIRE_NOTHROW(l.start());
        port = l.port();
        o.port = port;  // the next round restarts on this port
        Peer p(port);
        REQUIRE(p.connected());
        p.write(frame("m" + std::to_string(round)));
        std::string got;
        REQUIRE(p.read(got, 2000ms));
        CHECK(got == "ACK m" + std::to_string(round));
        l.stop();
        CHECK(p.closedWithin(2000ms));
    }
}
