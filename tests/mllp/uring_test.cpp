// Ring: multishot receives into provided buffers, sends that never wait,
// cancel, and the end of the buffers.
#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "connectors/mllp/uring.h"

using junction::mllp::Ring;

namespace {

// A connected pair of non-blocking stream sockets.
struct Pair {
    int fd[2] = {-1, -1};
    Pair() { REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd) == 0); }
    ~Pair() {
        for (int f : fd)
            if (f >= 0) ::close(f);
    }
    void put(const std::string& s) { REQUIRE(::send(fd[1], s.data(), s.size(), 0) == static_cast<ssize_t>(s.size())); }
};

std::unique_ptr<Ring> openOrSkip() {
    std::string why;
    auto ring = Ring::open(&why);
    if (!ring) WARN("io_uring is not available here (" + why + "): nothing to test");
    return ring;
}

std::vector<Ring::Completion> waitFor(Ring& ring, unsigned n) {
    std::vector<Ring::Completion> out;
    std::string error;
    while (out.size() < n) REQUIRE(ring.submitAndWait(static_cast<unsigned>(n - out.size()), 2000, out, &error));
    return out;
}

}  // namespace

TEST_CASE("ring: a multishot receive brings each arrival in a buffer until cancelled", "[mllp][uring]") {
    auto ring = openOrSkip();
    if (!ring) return;
    Pair p;
    ring->receive(p.fd[0], 7);
    std::string error;
    std::vector<Ring::Completion> none;
    REQUIRE(ring->submitAndWait(1, 50, none, &error));  // nothing has arrived: the wait times out
    CHECK(none.empty());
    for (const char* text : {"hello", "world"}) {
        p.put(text);
        auto got = waitFor(*ring, 1);
        REQUIRE(got.size() == 1);
        CHECK(got[0].data == 7);
        CHECK(got[0].more);
        REQUIRE(got[0].res == 5);
        REQUIRE(got[0].buffer >= 0);
        CHECK(ring->buffer(got[0].buffer, 5) == text);
        ring->recycle(got[0].buffer);
    }
    ring->cancel(7);
    auto got = waitFor(*ring, 1);
    REQUIRE(got.size() == 1);  // the cancel has none of its own
    CHECK(got[0].data == 7);
    CHECK(got[0].res == -ECANCELED);
    CHECK_FALSE(got[0].more);
}

TEST_CASE("ring: the end of the stream ends a receive", "[mllp][uring]") {
    auto ring = openOrSkip();
    if (!ring) return;
    Pair p;
    ring->receive(p.fd[0], 1);
    ::shutdown(p.fd[1], SHUT_WR);
    auto got = waitFor(*ring, 1);
    CHECK(got[0].res == 0);
    CHECK_FALSE(got[0].more);
}

TEST_CASE("ring: with every buffer lent, a receive ends with ENOBUFS and goes on once armed again", "[mllp][uring]") {
    auto ring = openOrSkip();
    if (!ring) return;
    std::vector<std::unique_ptr<Pair>> pairs;
    for (int i = 0; i < 80; ++i) {
        pairs.push_back(std::make_unique<Pair>());
        ring->receive(pairs.back()->fd[0], static_cast<std::uint64_t>(i));
    }
    std::string error;
    std::vector<Ring::Completion> got;
    REQUIRE(ring->submitAndWait(0, -1, got, &error));
    for (auto& p : pairs) p->put("x");
    while (got.size() < pairs.size()) REQUIRE(ring->submitAndWait(1, 2000, got, &error));
    std::vector<int> starved;
    int filled = 0;
    for (const auto& c : got) {
        if (c.res == 1) {
            ++filled;
            CHECK(ring->buffer(c.buffer, 1) == "x");
        } else {
            CHECK(c.res == -ENOBUFS);
            CHECK_FALSE(c.more);
            starved.push_back(static_cast<int>(c.data));
        }
    }
    CHECK(filled == 64);  // the buffers a ring lends
    CHECK(starved.size() == pairs.size() - 64);
    for (const auto& c : got)
        if (c.buffer >= 0) ring->recycle(c.buffer);
    for (int i : starved) ring->receive(pairs[static_cast<std::size_t>(i)]->fd[0], static_cast<std::uint64_t>(i));
    auto again = waitFor(*ring, static_cast<unsigned>(starved.size()));
    for (const auto& c : again) CHECK(c.res == 1);  // the byte waited in its socket
}

TEST_CASE("ring: a send to a full socket answers at once, one to a closed socket fails alone", "[mllp][uring]") {
    auto ring = openOrSkip();
    if (!ring) return;
    Pair full, closed, open;
    std::string chunk(65536, 'f');
    while (::send(full.fd[0], chunk.data(), chunk.size(), 0) > 0) {
    }
    ::close(closed.fd[1]);
    closed.fd[1] = -1;
    std::string text = "reply";
    ring->send(full.fd[0], text.data(), text.size(), 1);
    ring->send(closed.fd[0], text.data(), text.size(), 2);
    ring->send(open.fd[0], text.data(), text.size(), 3);
    auto got = waitFor(*ring, 3);
    std::map<std::uint64_t, int> res;
    for (const auto& c : got) res[c.data] = c.res;
    CHECK(res[1] == -EAGAIN);
    CHECK(res[2] == -EPIPE);
    CHECK(res[3] == 5);
    char buf[16];
    CHECK(::recv(open.fd[1], buf, sizeof buf, 0) == 5);
}

TEST_CASE("ring: a poll for room completes once the peer reads", "[mllp][uring]") {
    auto ring = openOrSkip();
    if (!ring) return;
    Pair p;
    std::string chunk(65536, 'f');
    while (::send(p.fd[0], chunk.data(), chunk.size(), 0) > 0) {
    }
    ring->poll(p.fd[0], POLLOUT, false, 9);
    std::string error;
    std::vector<Ring::Completion> got;
    REQUIRE(ring->submitAndWait(1, 100, got, &error));
    CHECK(got.empty());  // still full
    char buf[65536];
    while (::recv(p.fd[1], buf, sizeof buf, 0) > 0) {
    }
    got = waitFor(*ring, 1);
    CHECK(got[0].data == 9);
    CHECK((got[0].res & POLLOUT) != 0);
}
