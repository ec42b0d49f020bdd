// SendBatch: sends to several sockets in one system call, each with its own
// result; a full socket is answered at once, a closed one fails alone.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <string>
#include <vector>

#include "connectors/mllp/send_batch.h"

using junction::mllp::SendBatch;

namespace {

// A connected pair of non-blocking stream sockets; [0] is written, [1] read.
struct Pair {
    int fd[2] = {-1, -1};
    Pair() {
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd) == 0);
    }
    ~Pair() {
        for (int f : fd)
            if (f >= 0) ::close(f);
    }
    std::string drain() {
        std::string out;
        char buf[65536];
        ssize_t n;
        while ((n = ::recv(fd[1], buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<std::size_t>(n));
        return out;
    }
};

std::map<std::uint64_t, int> runAll(SendBatch& b) {
    std::map<std::uint64_t, int> results;
    std::vector<std::uint64_t> order;
    b.run([&](std::uint64_t key, int result) {
        results[key] = result;
        order.push_back(key);
    });
    for (std::size_t i = 1; i < order.size(); ++i) CHECK(order[i - 1] < order[i]);  // in the order queued
    return results;
}

}  // namespace

TEST_CASE("send batch: sends to several sockets in one call, each with its own result", "[mllp][send_batch]") {
    SendBatch b(8);
    Pair p[3];
    std::string text[3] = {"first reply", "second", std::string(5000, 'x')};
    for (int i = 0; i < 3; ++i) b.add(p[i].fd[0], text[i].data(), text[i].size(), static_cast<std::uint64_t>(i));
    CHECK(b.pending() == 3);
    auto results = runAll(b);
    CHECK(b.pending() == 0);
    REQUIRE(results.size() == 3);
    if (!b.available()) {
        // io_uring refused here: nothing was sent, and every entry says so, so
        // that the caller sends it itself.
        WARN("io_uring is not available here; checking the fallback only");
        for (auto& [key, result] : results) CHECK(result == -EAGAIN);
        for (auto& pair : p) CHECK(pair.drain().empty());
        return;
    }
    CHECK(b.calls() == 1);
    for (int i = 0; i < 3; ++i) {
        CHECK(results[static_cast<std::uint64_t>(i)] == static_cast<int>(text[i].size()));
        CHECK(p[i].drain() == text[i]);
    }
}

TEST_CASE("send batch: more sends than its depth take a call per depth", "[mllp][send_batch]") {
    SendBatch b(2);
    if (!b.available()) {
        WARN("io_uring is not available here");
        return;
    }
    std::vector<std::unique_ptr<Pair>> pairs;
    std::vector<std::string> text;
    for (int i = 0; i < 5; ++i) {
        pairs.push_back(std::make_unique<Pair>());
        text.push_back("reply " + std::to_string(i));
    }
    for (int i = 0; i < 5; ++i) b.add(pairs[i]->fd[0], text[i].data(), text[i].size(), static_cast<std::uint64_t>(100 + i));
    auto results = runAll(b);
    CHECK(b.calls() == 3);
    for (int i = 0; i < 5; ++i) {
        CHECK(results[static_cast<std::uint64_t>(100 + i)] == static_cast<int>(text[i].size()));
        CHECK(pairs[i]->drain() == text[i]);
    }
}

TEST_CASE("send batch: a full socket is answered with EAGAIN at once, a closed one fails alone", "[mllp][send_batch]") {
    SendBatch b;
    if (!b.available()) {
        WARN("io_uring is not available here");
        return;
    }
    Pair full, closed, fine;
    int small = 4096;
    ::setsockopt(full.fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    std::string chunk(4096, 'f');
    while (::send(full.fd[0], chunk.data(), chunk.size(), MSG_NOSIGNAL) > 0) {
    }
    REQUIRE(errno == EAGAIN);
    ::close(closed.fd[1]);
    closed.fd[1] = -1;
    std::string a = "to the full one", c = "to the closed one", d = "to the fine one";
    b.add(full.fd[0], a.data(), a.size(), 1);
    b.add(closed.fd[0], c.data(), c.size(), 2);
    b.add(fine.fd[0], d.data(), d.size(), 3);
    auto results = runAll(b);  // returns: nothing waits for room in a socket
    CHECK(results[1] == -EAGAIN);
    CHECK(results[2] == -EPIPE);
    CHECK(results[3] == static_cast<int>(d.size()));
    CHECK(fine.drain() == d);
    CHECK(b.available());  // a failed send is not a failed batch
}
