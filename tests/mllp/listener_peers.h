// The peers of the listener tests: a blocking MLLP client (from a chosen local
// address if need be), the messages handed on by a listener and answered
// later, and the usual handlers and options.
#pragma once

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "connectors/mllp/framing.h"
#include "connectors/mllp/listener.h"

namespace mllp_test {

using namespace junction::mllp;
using namespace std::chrono_literals;

using SteadyClock = std::chrono::steady_clock;

// A blocking MLLP client with its own decoder (frames that arrive together are
// kept). Over TLS: see TlsPeer (listener_tls_test.cpp), which sends and
// receives through OpenSSL instead.
class Peer {
public:
    // `from`: the local address to connect from (127.0.0.2 is another peer address).
    explicit Peer(int port, const char* from = nullptr) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        if (from) {
            sockaddr_in local{};
            local.sin_family = AF_INET;
            ::inet_pton(AF_INET, from, &local.sin_addr);
            if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) return;
        }
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<std::uint16_t>(port));
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    }
    virtual ~Peer() { close(); }
    Peer(const Peer&) = delete;
    Peer& operator=(const Peer&) = delete;
    bool connected() const { return connected_; }
    int fd() const { return fd_; }
    // "127.0.0.1:port" as the listener names this peer.
    std::string name() const {
        sockaddr_in a{};
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        char host[INET_ADDRSTRLEN] = "?";
        ::inet_ntop(AF_INET, &a.sin_addr, host, sizeof host);
        return std::string(host) + ":" + std::to_string(ntohs(a.sin_port));
    }
    void endWrites() { ::shutdown(fd_, SHUT_WR); }
    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    virtual void write(const std::string& bytes) {
        std::size_t sent = 0;
        while (sent < bytes.size()) {
            ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) return;
            sent += static_cast<std::size_t>(n);
        }
    }
    // The next frame, or false on close, error or timeout.
    bool read(std::string& payload, std::chrono::milliseconds timeout = 5000ms) {
        auto deadline = SteadyClock::now() + timeout;
        FrameDecoder::Event ev;
        while (!decoder_.next(ev)) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
            if (left.count() <= 0) return false;
            char buf[65536];
            long n = receive(buf, sizeof buf, left);
            if (n <= 0) {
                closedByPeer_ = n == 0;
                return false;
            }
            decoder_.feed(buf, static_cast<std::size_t>(n));
        }
        if (ev.isError) return false;
        payload = std::move(ev.payload);
        return true;
    }
    // True when the server closes the connection within `timeout`.
    bool closedWithin(std::chrono::milliseconds timeout) {
        std::string ignored;
        while (read(ignored, timeout)) {
        }
        return closedByPeer_;
    }
    bool closedByPeer() const { return closedByPeer_; }

protected:
    // Bytes from the listener within `timeout`: their count, 0 when it closed
    // the connection, < 0 on a timeout or an error.
    virtual long receive(char* buf, std::size_t size, std::chrono::milliseconds timeout) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return -1;
        return static_cast<long>(::recv(fd_, buf, size, 0));
    }

private:
    int fd_ = -1;
    bool connected_ = false;
    bool closedByPeer_ = false;
    FrameDecoder decoder_{64u << 20};
};

// Messages handed on by the listener, answered later by the test.
struct Pending {
    std::string payload;
    Listener::Reply reply;
    std::thread::id thread;
};

class Inbox {
public:
    void push(Pending p) {
        std::lock_guard<std::mutex> lock(mu_);
        items_.push_back(std::move(p));
        cv_.notify_all();
    }
    bool pop(Pending& out, std::chrono::milliseconds timeout = 5000ms) {
        std::unique_lock<std::mutex> lock(mu_);
        if (!cv_.wait_for(lock, timeout, [&] { return !items_.empty(); })) return false;
        out = std::move(items_.front());
        items_.pop_front();
        return true;
    }
    std::size_t size() {
        std::lock_guard<std::mutex> lock(mu_);
        return items_.size();
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Pending> items_;
};

// `ioUring`: serve with io_uring where the kernel allows, else epoll (each
// listener test runs with both).
inline ListenerOptions loopback(bool ioUring, int threads = 1) {
    ListenerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = threads;
    o.ioUring = ioUring;
    return o;
}

inline Listener::Handlers deferTo(Inbox& inbox) {
    Listener::Handlers h;
    h.message = [&inbox](std::string payload, const std::string&, Listener::Reply reply) {
        inbox.push({std::move(payload), std::move(reply), std::this_thread::get_id()});
    };
    return h;
}

inline Listener::Handlers echo(std::set<std::thread::id>* threads = nullptr, std::mutex* mu = nullptr) {
    Listener::Handlers h;
    h.message = [threads, mu](std::string payload, const std::string&, Listener::Reply reply) {
        if (threads) {
            std::lock_guard<std::mutex> lock(*mu);
            threads->insert(std::this_thread::get_id());
        }
        reply("ACK " + payload);
    };
    return h;
}


// Whether the listener has `n` connections open within 3 s.
inline bool waitForConnections(const Listener& l, int n) {
    auto deadline = SteadyClock::now() + 3s;
    while (l.connections() != n && SteadyClock::now() < deadline) std::this_thread::sleep_for(10ms);
    return l.connections() == n;
}

// Takes the next message of `inbox`, checks it is `payload`, answers it
// "ok <payload>" and checks that `peer` gets that answer.
inline void answer(Inbox& inbox, Peer& peer, const std::string& payload) {
    Pending p;
    REQUIRE(inbox.pop(p));
    CHECK(p.payload == payload);
    p.reply("ok " + payload);
    std::string got;
    REQUIRE(peer.read(got));
    CHECK(got == "ok " + payload);
}

// The lines a listener logs ("level text"), for the tests to look at.
class Logs {
public:
    // `h`, logging here.
    Listener::Handlers into(Listener::Handlers h) {
        h.log = [this](const std::string& level, const std::string& text) {
            std::lock_guard<std::mutex> lock(mu_);
            lines_.push_back(level + " " + text);
        };
        return h;
    }
    // The lines containing every one of `parts`.
    std::vector<std::string> with(std::initializer_list<std::string> parts) {
        std::lock_guard<std::mutex> lock(mu_);
        std::vector<std::string> out;
        for (const auto& line : lines_) {
            bool all = true;
            for (const auto& p : parts) all = all && line.find(p) != std::string::npos;
            if (all) out.push_back(line);
        }
        return out;
    }
    // Waits up to `timeout` for a line containing every one of `parts`.
    bool waitFor(std::initializer_list<std::string> parts, std::chrono::milliseconds timeout = 3000ms) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (with(parts).empty()) {
            if (std::chrono::steady_clock::now() >= deadline) return false;
            std::this_thread::sleep_for(10ms);
        }
        return true;
    }

private:
    std::mutex mu_;
    std::vector<std::string> lines_;
};

}  // namespace mllp_test
