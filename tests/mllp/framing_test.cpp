// MLLP framing (FrameDecoder) and the MLLP client against an in-test loopback
// server (plain POSIX sockets on a std::thread).
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "connectors/mllp/client.h"
#include "connectors/mllp/framing.h"

using junction::mllp::ClientOptions;
using junction::mllp::ClientResult;
using junction::mllp::frame;
using junction::mllp::FrameDecoder;

namespace {

using Error = FrameDecoder::Error;

// Everything a decoder produced: payloads and errors in order.
struct Out {
    std::vector<std::string> payloads;
    std::vector<Error> errors;
    std::vector<std::string> order;  // "P:<payload>" or "E:<n>"
};

Out drain(FrameDecoder& d, Out out = {}) {
    FrameDecoder::Event ev;
    while (d.next(ev)) {
        if (ev.isError) {
            CHECK(ev.error != Error::None);
            CHECK_FALSE(ev.detail.empty());
            out.errors.push_back(ev.error);
            out.order.push_back("E:" + std::to_string(static_cast<int>(ev.error)));
        } else {
            out.payloads.push_back(ev.payload);
            out.order.push_back("P:" + ev.payload);
        }
    }
    return out;
}

Out feedAll(FrameDecoder& d, const std::string& data) {
    d.feed(data.data(), data.size());
    return drain(d);
}

Out feedBytewise(FrameDecoder& d, const std::string& data) {
    Out out;
    for (char c : data) {
        d.feed(&c, 1);
        out = drain(d, std::move(out));
    }
    return out;
}

Out feedChunks(FrameDecoder& d, const std::string& data, std::mt19937& rng, std::size_t maxChunk) {
    Out out;
    std::uniform_int_distribution<std::size_t> len(1, maxChunk);
    std::size_t pos = 0;
    while (pos < data.size()) {
        std::size_t n = std::min(len(rng), data.size() - pos);
        d.feed(data.data() + pos, n);
        pos += n;
        out = drain(d, std::move(out));
    }
    return out;
}

const std::string kOrm =
    "MSH|^~\\&|RIS|HOSPITAL|PACS|HOSPITAL|20260314093000||ORM^O01|MSG00001|P|2.3.1\r"
    "PID|1||123456^^^HOSPITAL^MR~987654321^^^SSA^SS||DOE^JANE^Q||19700101|F\r"
    "OBR|1|ORD1|ACC1|71250^CT CHEST W/O CONTRAST^CPT4\r";

std::string ackFor(const std::string& controlId, const std::string& code = "AA") {
    return "MSH|^~\\&|PACS|HOSPITAL|RIS|HOSPITAL|20260314093001||ACK^O01|ACK" + controlId + "|P|2.3.1\rMSA|" +
           code + "|" + controlId + "\r";
}

}  // namespace

TEST_CASE("frame wraps the payload in VT ... FS CR", "[mllp][framing]") {
    CHECK(junction::mllp::kStartBlock == '\x0b');
    CHECK(junction::mllp::kEndBlock == '\x1c');
    CHECK(junction::mllp::kCarriageReturn == '\x0d');
    CHECK(frame("ABC") == std::string("\x0b" "ABC\x1c\r"));
    CHECK(frame("") == std::string("\x0b\x1c\r"));
}

TEST_CASE("decoder: one frame in one chunk", "[mllp][framing]") {
    FrameDecoder d(1 << 20);
    CHECK_FALSE(d.inFrame());
    Out o = feedAll(d, frame(kOrm));
    REQUIRE(o.payloads.size() == 1);
    CHECK(o.payloads[0] == kOrm);
    CHECK(o.errors.empty());
    CHECK_FALSE(d.inFrame());
    CHECK(d.buffered() == 0);
}

TEST_CASE("decoder: frames split at every possible boundary", "[mllp][framing]") {
    std::string data = frame(kOrm) + frame("second") + frame("") + frame(ackFor("X"));
    std::vector<std::string> want = {kOrm, "second", "", ackFor("X")};

    SECTION("byte by byte") {
        FrameDecoder d(1 << 20);
        Out o = feedBytewise(d, data);
        CHECK(o.errors.empty());
        CHECK(o.payloads == want);
    }
    SECTION("every two-piece split") {
        for (std::size_t cut = 0; cut <= data.size(); ++cut) {
            FrameDecoder d(1 << 20);
            d.feed(data.data(), cut);
            Out o = drain(d);
            d.feed(data.data() + cut, data.size() - cut);
            o = drain(d, std::move(o));
            INFO("cut at " << cut);
            CHECK(o.errors.empty());
            CHECK(o.payloads == want);
        }
    }
    SECTION("random chunks") {
        std::mt19937 rng(20260314);
        for (int round = 0; round < 200; ++round) {
            FrameDecoder d(1 << 20);
            Out o = feedChunks(d, data, rng, 1 + round % 40);
            INFO("round " << round);
            CHECK(o.errors.empty());
            CHECK(o.payloads == want);
        }
    }
}

TEST_CASE("decoder: several frames in one chunk, whitespace between frames", "[mllp][framing]") {
    FrameDecoder d(1 << 20);
    std::string data = frame("A") + frame("B") + "\r\n \t" + frame("C");
    Out o = feedAll(d, data);
    CHECK(o.errors.empty());
    CHECK(o.payloads == std::vector<std::string>{"A", "B", "C"});
}

TEST_CASE("decoder: a frame may hold LF and other bytes except VT and FS", "[mllp][framing]") {
    FrameDecoder d(1 << 20);
    std::string payload = std::string("MSH|x\ny\r\xc3\xa9\0z", 13);
    Out o = feedAll(d, frame(payload));
    CHECK(o.errors.empty());
    REQUIRE(o.payloads.size() == 1);
    CHECK(o.payloads[0] == payload);
}

TEST_CASE("decoder: frames begun are counted, a frame open at the end of a chunk included", "[mllp][framing]") {
    FrameDecoder d;
    CHECK(d.framesBegun() == 0);
    std::string two = frame("one") + "\r\n" + frame("two");
    d.feed(two.data(), two.size() - 2);  // "two" is open
    CHECK(d.framesBegun() == 2);
    CHECK(d.inFrame());
    std::string rest = two.substr(two.size() - 2) + junction::mllp::kStartBlock + "thr";
    d.feed(rest.data(), rest.size());  // "two" ends, "thr..." begins in the same chunk
    CHECK(d.framesBegun() == 3);
    CHECK(d.inFrame());
    std::string nested = std::string("ee") + junction::mllp::kStartBlock + "four";  // a start block inside the open frame begins a new one
    d.feed(nested.data(), nested.size());
    CHECK(d.framesBegun() == 4);
}

TEST_CASE("decoder: garbage before the start block", "[mllp][framing]") {
    FrameDecoder d(1 << 20);
    SECTION("in the same chunk") {
        Out o = feedAll(d, "garbage" + frame("A"));
        REQUIRE(o.errors.size() == 1);
        CHECK(o.errors[0] == Error::DataOutsideFrame);
        CHECK(o.payloads == std::vector<std::string>{"A"});
        CHECK(o.order.front().rfind("E:", 0) == 0);  // the error comes before the frame
    }
    SECTION("byte by byte: reported, then the frame still decodes") {
        Out o = feedBytewise(d, "xy" + frame("A"));
        REQUIRE_FALSE(o.errors.empty());
        for (auto e : o.errors) CHECK(e == Error::DataOutsideFrame);
        CHECK(o.payloads == std::vector<std::string>{"A"});
    }
    SECTION("between frames") {
        Out o = feedAll(d, frame("A") + "zz" + frame("B"));
        REQUIRE(o.errors.size() == 1);
        CHECK(o.errors[0] == Error::DataOutsideFrame);
        CHECK(o.payloads == std::vector<std::string>{"A", "B"});
    }
}

TEST_CASE("decoder: oversize frame is reported without buffering it", "[mllp][framing]") {
    const std::size_t max = 100;
    std::string big(10000, 'x');
    std::string data = frame(big) + frame("after");

    auto check = [&](const Out& o) {
        REQUIRE(o.errors.size() == 1);
        CHECK(o.errors[0] == Error::TooLarge);
        CHECK(o.payloads == std::vector<std::string>{"after"});
    };
    SECTION("in one chunk") {
        FrameDecoder d(max);
        check(feedAll(d, data));
    }
    SECTION("in small chunks, buffer never exceeds the limit") {
        FrameDecoder d(max);
        Out o;
        bool reportedEarly = false;
        for (std::size_t pos = 0; pos < data.size(); pos += 7) {
            std::size_t n = std::min<std::size_t>(7, data.size() - pos);
            d.feed(data.data() + pos, n);
            CHECK(d.buffered() <= max);
            o = drain(d, std::move(o));
            // The error is known as soon as the limit is crossed, long before the end block.
            if (pos < 500 && !o.errors.empty()) reportedEarly = true;
        }
        CHECK(reportedEarly);
        check(o);
    }
    SECTION("exactly the limit is fine") {
        FrameDecoder d(max);
        Out o = feedBytewise(d, frame(std::string(max, 'y')));
        CHECK(o.errors.empty());
        REQUIRE(o.payloads.size() == 1);
        CHECK(o.payloads[0].size() == max);
    }
}

TEST_CASE("decoder: a start block inside an open frame", "[mllp][framing]") {
    FrameDecoder d(1 << 20);
    SECTION("one chunk") {
        Out o = feedAll(d, "\x0b" "lost part" + frame("B"));
        REQUIRE(o.errors.size() == 1);
        CHECK(o.errors[0] == Error::StartInsideFrame);
        CHECK(o.payloads == std::vector<std::string>{"B"});
    }
    SECTION("byte by byte") {
        Out o = feedBytewise(d, "\x0b" "lost part" + frame("B"));
        REQUIRE(o.errors.size() == 1);
        CHECK(o.errors[0] == Error::StartInsideFrame);
        CHECK(o.payloads == std::vector<std::string>{"B"});
    }
}

TEST_CASE("decoder: end block not followed by CR", "[mllp][framing]") {
    SECTION("followed by another byte") {
        FrameDecoder d(1 << 20);
        Out o = feedAll(d, std::string("\x0b" "A\x1c" "X") + frame("B"));
        REQUIRE_FALSE(o.errors.empty());
        CHECK(o.errors[0] == Error::MissingCarriageReturn);
        // After the error the decoder resynchronizes on the next start block.
        REQUIRE_FALSE(o.payloads.empty());
        CHECK(o.payloads.back() == "B");
    }
    SECTION("split right after FS") {
        FrameDecoder d(1 << 20);
        std::string first = "\x0b" "A\x1c";
        d.feed(first.data(), first.size());
        Out o = drain(d);
        CHECK(o.errors.empty());  // undecided until the next byte
        std::string rest = "\x0b" "B\x1c\r";
        d.feed(rest.data(), rest.size());
        o = drain(d, std::move(o));
        REQUIRE_FALSE(o.errors.empty());
        CHECK(o.errors[0] == Error::MissingCarriageReturn);
        REQUIRE_FALSE(o.payloads.empty());
        CHECK(o.payloads.back() == "B");
    }
}

TEST_CASE("decoder: error names", "[mllp][framing]") {
    for (auto e : {Error::DataOutsideFrame, Error::TooLarge, Error::StartInsideFrame, Error::MissingCarriageReturn})
        CHECK(std::string(junction::mllp::toString(e)).size() > 3);
}

// ------------------------------------------------------------------ client

namespace {

// A loopback TCP server on a free port. `handler(fd, connectionIndex)` runs for
// each accepted connection (sequentially) on the server thread.
class TestServer {
public:
    using Handler = std::function<void(int fd, int index)>;

    explicit TestServer(Handler handler) : handler_(std::move(handler)) {
        listenFd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(listenFd_ >= 0);
        int one = 1;
        ::setsockopt(listenFd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        REQUIRE(::bind(listenFd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(listenFd_, 8) == 0);
        socklen_t len = sizeof addr;
        ::getsockname(listenFd_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] { run(); });
    }
    ~TestServer() {
        stop_ = true;
        thread_.join();
        ::close(listenFd_);
    }
    int port() const { return port_; }
    int connections() const { return connections_; }

    // Reads one MLLP frame (payload) from fd; "" with ok=false on close/timeout.
    static bool readFrame(int fd, std::string& payload, int timeoutMs = 5000) {
        FrameDecoder d(1 << 20);
        char buf[4096];
        auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
        while (std::chrono::steady_clock::now() < deadline) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) return false;
            d.feed(buf, static_cast<std::size_t>(n));
            FrameDecoder::Event ev;
            if (d.next(ev)) {
                if (ev.isError) return false;
                payload = ev.payload;
                return true;
            }
        }
        return false;
    }
    static void writeAll(int fd, const std::string& data) {
        std::size_t sent = 0;
        while (sent < data.size()) {
            ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) return;
            sent += static_cast<std::size_t>(n);
        }
    }
    // Waits (up to timeoutMs) until the peer closes fd or stop is requested.
    void waitClose(int fd, int timeoutMs = 5000) {
        char buf[256];
        auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
        while (!stop_ && std::chrono::steady_clock::now() < deadline) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            if (::recv(fd, buf, sizeof buf, 0) <= 0) return;
        }
    }

private:
    void run() {
        int index = 0;
        while (!stop_) {
            pollfd p{listenFd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            int fd = ::accept(listenFd_, nullptr, nullptr);
            if (fd < 0) continue;
            ++connections_;
            handler_(fd, index++);
            ::close(fd);
        }
    }

    Handler handler_;
    int listenFd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> connections_{0};
    std::thread thread_;
};

ClientOptions optionsFor(int port, int responseMs = 3000) {
    ClientOptions o;
    o.host = "127.0.0.1";
    o.port = port;
    o.connectTimeout = std::chrono::milliseconds(2000);
    o.responseTimeout = std::chrono::milliseconds(responseMs);
    return o;
}

int freeClosedPort() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    int port = ntohs(addr.sin_port);
    ::close(fd);  // never listened: connecting is refused
    return port;
}

}  // namespace

TEST_CASE("client: send and receive the ACK over one connection", "[mllp][client]") {
    std::mutex mutex;
    std::vector<std::string> received;
    auto count = [&] {
        std::lock_guard<std::mutex> lock(mutex);
        return received.size();
    };
    TestServer server([&](int fd, int) {
        std::string msg;
        while (TestServer::readFrame(fd, msg)) {
            std::size_t n;
            {
                std::lock_guard<std::mutex> lock(mutex);
                received.push_back(msg);
                n = received.size();
            }
            // Answer in two pieces to exercise reassembly on the client side.
            std::string ack = frame(ackFor("C" + std::to_string(n)));
            TestServer::writeAll(fd, ack.substr(0, 10));
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            TestServer::writeAll(fd, ack.substr(10));
        }
    });
    junction::mllp::Client client(optionsFor(server.port()));
    CHECK_FALSE(client.connected());
    for (int i = 1; i <= 3; ++i) {
        ClientResult r = client.send(kOrm);
        INFO(r.error);
        REQUIRE(r.ok());
        CHECK(r.status == ClientResult::Status::Ok);
        CHECK(r.response == ackFor("C" + std::to_string(i)));
        CHECK(client.connected());
    }
    client.close();
    CHECK_FALSE(client.connected());
    // Give the server thread a moment to see the close.
    for (int i = 0; i < 100 && count() < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE(count() == 3);
    std::lock_guard<std::mutex> lock(mutex);
    for (auto& m : received) CHECK(m == kOrm);
    CHECK(server.connections() == 1);
}

TEST_CASE("client: connection refused", "[mllp][client]") {
    int port = freeClosedPort();
    junction::mllp::Client client(optionsFor(port));
    ClientResult r = client.send(kOrm);
    CHECK_FALSE(r.ok());
    CHECK(r.status == ClientResult::Status::ConnectFailed);
    CHECK(r.error.find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
    CHECK(r.error.find("refused") != std::string::npos);
    CHECK_FALSE(client.connected());
}

TEST_CASE("client: response timeout, then reconnect on the next send", "[mllp][client]") {
    TestServer* self = nullptr;
    TestServer server([&](int fd, int index) {
        std::string msg;
        if (!TestServer::readFrame(fd, msg)) return;
        if (index == 0) {
            self->waitClose(fd);  // never answer; wait for the client to give up
            return;
        }
        TestServer::writeAll(fd, frame(ackFor("OK")));
        self->waitClose(fd);
    });
    self = &server;
    junction::mllp::Client client(optionsFor(server.port(), 300));
    auto t0 = std::chrono::steady_clock::now();
    ClientResult r = client.send(kOrm);
    auto elapsed = std::chrono::steady_clock::now() - t0;
    CHECK(r.status == ClientResult::Status::Timeout);
    CHECK_FALSE(r.error.empty());
    CHECK(elapsed >= std::chrono::milliseconds(250));
    CHECK(elapsed < std::chrono::milliseconds(3000));
    CHECK_FALSE(client.connected());

    ClientResult r2 = client.send(kOrm);
    INFO(r2.error);
    REQUIRE(r2.ok());
    CHECK(r2.response == ackFor("OK"));
    client.close();
    for (int i = 0; i < 100 && server.connections() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(server.connections() == 2);
}

TEST_CASE("client: peer closes without answering, next send reconnects", "[mllp][client]") {
    TestServer* self = nullptr;
    TestServer server([&](int fd, int index) {
        std::string msg;
        if (!TestServer::readFrame(fd, msg)) return;
        if (index == 0) return;  // close without an ACK
        TestServer::writeAll(fd, frame(ackFor("OK")));
        self->waitClose(fd);
    });
    self = &server;
    junction::mllp::Client client(optionsFor(server.port()));
    ClientResult r = client.send(kOrm);
    CHECK(r.status == ClientResult::Status::Closed);
    CHECK_FALSE(r.error.empty());
    CHECK_FALSE(client.connected());
    ClientResult r2 = client.send(kOrm);
    INFO(r2.error);
    REQUIRE(r2.ok());
    CHECK(r2.response == ackFor("OK"));
    client.close();
}

TEST_CASE("client: a malformed response frame is a framing error", "[mllp][client]") {
    TestServer* self = nullptr;
    TestServer server([&](int fd, int) {
        std::string msg;
        if (!TestServer::readFrame(fd, msg)) return;
        TestServer::writeAll(fd, "junk" + frame(ackFor("X")));
        self->waitClose(fd);
    });
    self = &server;
    junction::mllp::Client client(optionsFor(server.port()));
    ClientResult r = client.send(kOrm);
    CHECK(r.status == ClientResult::Status::FramingError);
    CHECK(r.error.find("outside") != std::string::npos);
    CHECK_FALSE(client.connected());
}

TEST_CASE("client: pipelined messages go out before their ACKs, and a lost ACK fails its message and the ones after", "[mllp][client]") {
    std::mutex mutex;
    std::vector<std::string> received;
    TestServer server([&](int fd, int index) {
        FrameDecoder d(1 << 20);
        char buf[4096];
        std::vector<std::string> mine;
        auto want = index == 0 ? 3u : 2u;
        // Every message is read before any is answered: a client that waited
        // for an ACK before sending the next would time out here.
        while (mine.size() < want) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 3000) <= 0) return;
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) return;
            d.feed(buf, static_cast<std::size_t>(n));
            FrameDecoder::Event ev;
            while (d.next(ev)) mine.push_back(ev.payload);
        }
        {
            std::lock_guard<std::mutex> lock(mutex);
            received.insert(received.end(), mine.begin(), mine.end());
        }
        // First connection: two ACKs, then the connection is lost. The second: all of them, in one write.
        std::string acks;
        for (std::size_t i = 0; i < (index == 0 ? 2u : mine.size()); ++i) acks += frame(ackFor("P" + std::to_string(i + 1)));
        TestServer::writeAll(fd, acks);
    });
    junction::mllp::Client client(optionsFor(server.port()));
    std::string m1 = std::string(kOrm) + "NTE|1||one\r", m2 = std::string(kOrm) + "NTE|1||two\r",
                m3 = std::string(kOrm) + "NTE|1||three\r";
    auto r = client.sendAll({m1, m2, m3});
    REQUIRE(r.size() == 3);
    CHECK(r[0].ok());
    CHECK(r[0].response == ackFor("P1"));
    CHECK(r[1].ok());
    CHECK(r[1].response == ackFor("P2"));
    CHECK(r[2].status == ClientResult::Status::Closed);
    CHECK_FALSE(client.connected());
    // The failed one again, with the next: a new connection, both answered.
    r = client.sendAll({m3, std::string(kOrm)});
    REQUIRE(r.size() == 2);
    CHECK(r[0].ok());
    CHECK(r[1].ok());
    CHECK(r[1].response == ackFor("P2"));
    client.close();
    std::lock_guard<std::mutex> lock(mutex);
    REQUIRE(received.size() == 5);
    CHECK(received[0] == m1);
    CHECK(received[2] == m3);
    CHECK(received[3] == m3);
    CHECK(server.connections() == 2);
}
