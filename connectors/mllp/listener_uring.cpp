// The listener's io_uring backend (see listener_impl.h and uring.h): a loop's
// ring brings the bytes received with the wait for them, and the round's
// replies go out together in one call (sendQueued). A ring that fails closes
// its connections, and the loop serves with epoll from then on.
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "connectors/mllp/listener_impl.h"
#include "connectors/mllp/uring.h"

namespace junction::mllp::detail {

namespace {

// With io_uring, bytes a connection sends while it is held or its message is
// in processing are still taken in, up to this much; past it the connection
// is not read until it is served (as epoll does at once).
constexpr std::size_t kReadAhead = 256u << 10;

// io_uring requests carry (key << 2 | what); a connection's key is its id.
enum class Req : std::uint64_t { Receive = 0, Writable = 1, Send = 2, Poll = 3 };
std::uint64_t tag(std::uint64_t key, Req r) { return key << 2 | static_cast<std::uint64_t>(r); }

class UringBackend final : public Backend {
public:
    UringBackend(ListenerCore& core, Loop& l, std::unique_ptr<Ring> ring)
        : Backend(true), m_(core), l_(l), ring_(std::move(ring)) {
        ring_->poll(l_.mailbox->wakeFd, POLLIN, true, tag(kWakeKey, Req::Poll));
    }

    Waited wait(int timeoutMs) override;
    void watchListen(bool on) override;
    bool add(Conn& c) override;
    void watch(Conn& c) override;
    void remove(Conn& c) override;
    void sendQueued() override;

private:
    void dispatch(const Ring::Completion& done);
    void received(Conn& c, const Ring::Completion& done);
    void drop(const std::string& error);

    ListenerCore& m_;
    Loop& l_;
    std::unique_ptr<Ring> ring_;          // null once it failed
    std::vector<Ring::Completion> stash_;  // completions that came with the sends, for the next round
    std::vector<Ring::Completion> ready_;  // a wait's completions (kept: no allocation a round)
    std::vector<Ring::Completion> sent_;   // the sends' completions (likewise)
    bool listenOn_ = false, listenArmed_ = false;  // loop 0: the listening socket's poll
};

// Submits what the last round asked for (receives armed again, cancels) and
// waits for the next completions; handles them and those that came with the
// last round's sends, in order. Switched when the ring failed (epoll from then on).
Backend::Waited UringBackend::wait(int timeoutMs) {
    // Dispatching adds nothing to the stash (only sendQueued does, at the end of the round).
    std::vector<Ring::Completion>& done = ready_;
    done.clear();
    done.swap(stash_);
    std::string error;
    if (!ring_->submitAndWait(done.empty() ? 1 : 0, timeoutMs, done, &error)) {
        drop(error);
        return Waited::Switched;
    }
    for (const auto& d : done) {
        if (m_.stopping) break;
        dispatch(d);
    }
    return ring_ ? Waited::Ok : Waited::Switched;
}

void UringBackend::dispatch(const Ring::Completion& d) {
    std::uint64_t key = d.data >> 2;
    auto req = static_cast<Req>(d.data & 3);
    if (req == Req::Poll) {
        if (key == kWakeKey) {
            if (!d.more) ring_->poll(l_.mailbox->wakeFd, POLLIN, true, tag(kWakeKey, Req::Poll));
            m_.takeMail(l_);
        } else {
            if (!d.more) listenArmed_ = false;
            if (listenOn_) m_.acceptAll(l_);
            if (listenOn_ && !listenArmed_) m_.watchListen(true);
        }
        return;
    }
    auto it = l_.conns.find(key);
    Conn* c = it == l_.conns.end() || it->second->dead ? nullptr : it->second.get();
    if (req == Req::Receive) {
        if (c) received(*c, d);
        if (d.buffer >= 0) ring_->recycle(d.buffer);
    } else if (req == Req::Writable && c) {
        c->pollOutArmed = false;
        if (c->wantWrite) m_.writable(l_, *c);
        // The poll fires once: armed again while replies still wait for room.
        if (!c->dead) watch(*c);
    }
}

void UringBackend::received(Conn& c, const Ring::Completion& d) {
    if (!d.more) {
        c.recvArmed = false;
        c.recvCancelling = false;
    }
    if (d.res > 0 && d.buffer >= 0) {
        std::string_view bytes = ring_->buffer(d.buffer, static_cast<std::size_t>(d.res));
        m_.input(l_, c, bytes.data(), bytes.size());
        if (c.dead) return;  // its receive is cancelled when it is reaped
        // Input while a message is in processing, or while the peer leaves its
        // replies unread: taken in up to kReadAhead, handed on once served.
        if (c.busy || c.backlogged()) c.readPaused = true;
        m_.pump(l_, c);
    } else if (d.res == 0) {
        m_.peerEnded(l_, c);
    } else if (d.res != -ENOBUFS && d.res != -ECANCELED) {
        if (d.res != -ECONNRESET) m_.log("warn", "mllp " + c.peer + ": " + std::strerror(-d.res));
        m_.kill(l_, c);
    }
    if (!c.dead) m_.watch(l_, c);  // receive again, or stop past kReadAhead
}

void UringBackend::drop(const std::string& error) {
    m_.log("error", "mllp " + m_.where() + ": " + error + "; its connections are closed, new ones are served with epoll");
    for (auto& [id, c] : l_.conns) m_.kill(l_, *c);
    l_.uring = false;
    ring_.reset();
    l_.backend = l_.epollBackend.get();
    stash_.clear();
    l_.ended.clear();
    l_.queued.clear();
    m_.reap(l_);
    if (&l_ == m_.loops[0].get()) m_.watchListen(!m_.acceptRetryAt);
}

void UringBackend::watchListen(bool on) {
    listenOn_ = on;
    if (on && !listenArmed_) {
        ring_->poll(m_.listenFd, POLLIN, true, tag(kListenKey, Req::Poll));
        listenArmed_ = true;
    } else if (!on && listenArmed_) {
        ring_->cancel(tag(kListenKey, Req::Poll));
    }
}

bool UringBackend::add(Conn& c) {
    watch(c);  // arms its receive
    return true;
}

void UringBackend::watch(Conn& c) {
    bool read = !c.ended && (!c.readPaused || c.decoder.held() < kReadAhead);
    if (read && !c.recvArmed) {
        ring_->receive(c.fd, tag(c.id, Req::Receive));
        c.recvArmed = true;
    } else if (!read && c.recvArmed && !c.recvCancelling) {
        ring_->cancel(tag(c.id, Req::Receive));
        c.recvCancelling = true;
    }
    if (c.wantWrite && !c.pollOutArmed) {
        ring_->poll(c.fd, POLLOUT, false, tag(c.id, Req::Writable));
        c.pollOutArmed = true;
    }
}

void UringBackend::remove(Conn& c) {
    // A request in flight holds the socket open: end it (the socket
    // closes when the cancel is submitted, with the next wait).
    if (c.recvArmed) ring_->cancel(tag(c.id, Req::Receive));
    if (c.pollOutArmed) ring_->cancel(tag(c.id, Req::Writable));
}

// Sends the replies queued in this round, together (one system call, which
// also brings their results: a send never waits for room); what a socket did
// not take goes on as any reply does (flush: the rest when the peer reads).
// Other completions that come with them wait for the next round.
void UringBackend::sendQueued() {
    if (l_.queued.empty() || !ring_) return;
    std::vector<std::uint64_t> ids;
    ids.swap(l_.queued);
    unsigned sends = 0;
    for (std::uint64_t id : ids) {
        auto it = l_.conns.find(id);
        if (it == l_.conns.end()) continue;
        Conn& c = *it->second;
        c.queued = false;
        if (c.dead || c.outOffset >= c.out.size()) {
            m_.settle(c);
            continue;
        }
        ring_->send(c.fd, c.out.data() + c.outOffset, c.out.size() - c.outOffset, tag(id, Req::Send));
        ++sends;
    }
    std::vector<Ring::Completion>& done = sent_;
    done.clear();
    for (unsigned results = 0; results < sends;) {
        std::string error;
        m_.batchCalls.fetch_add(1, std::memory_order_relaxed);
        if (!ring_->submitAndWait(sends - results, -1, done, &error)) {
            drop(error);
            return;
        }
        for (const auto& d : done) {
            if (static_cast<Req>(d.data & 3) != Req::Send) {
                stash_.push_back(d);
                continue;
            }
            ++results;
            auto it = l_.conns.find(d.data >> 2);
            if (it == l_.conns.end() || it->second->dead) continue;
            Conn& c = *it->second;
            if (d.res > 0) c.outOffset += static_cast<std::size_t>(d.res);
            if (d.res < 0 && d.res != -EAGAIN && d.res != -EINTR) {
                m_.kill(l_, c);
                continue;
            }
            m_.sentInRound(l_, c);  // the rest, if any; clears the buffer once all is out
        }
        done.clear();
    }
    m_.batchedReplies.fetch_add(sends, std::memory_order_relaxed);
}

}  // namespace

// A loop's ring where the kernel allows it (and o.ioUring), else epoll; start()
// waits until every loop has chosen.
void ListenerCore::openRing(Loop& l) {
    if (o.ioUring) {
        std::string why;
        std::unique_ptr<Ring> ring = Ring::open(&why);
        if (!ring && &l == loops[0].get()) log("info", "mllp " + where() + ": " + why + "; serving with epoll");
        if (ring) l.ringBackend = std::make_unique<UringBackend>(*this, l, std::move(ring));
    }
    if (l.ringBackend) {
        l.uring = true;
        l.backend = l.ringBackend.get();
        if (&l == loops[0].get()) watchListen(true);
    }
    std::lock_guard<std::mutex> lock(readyMu);
    ++ready;
    readyCv.notify_all();
}

}  // namespace junction::mllp::detail
