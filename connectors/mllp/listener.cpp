// The MLLP listener (listener.h): its connection core. Binding and the loops'
// threads, accepting (limits, eviction of the longest-idle connection),
// framing and TLS input, admission (held connections), one message at a time
// per connection and its reply, closing and timeouts. How a loop waits for its
// sockets is its Backend's: epoll (listener_epoll.cpp) or io_uring
// (listener_uring.cpp); see listener_impl.h.
#include "connectors/mllp/listener.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "connectors/mllp/listener_impl.h"
#include "engine/util/thread_name.h"

namespace junction::mllp {

namespace detail {

namespace {

// Unsent replies past which a connection's replies go out at once instead of
// with the round's others (far below kMaxUnsent).
constexpr std::size_t kMaxBatched = 64u << 10;

// The peer's address alone, and with its port ("10.0.0.7:51234", "[::1]:51234").
std::string addressOf(const sockaddr_storage& a) {
    char host[INET6_ADDRSTRLEN] = "?";
    if (a.ss_family == AF_INET) inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&a)->sin_addr, host, sizeof host);
    if (a.ss_family == AF_INET6) inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&a)->sin6_addr, host, sizeof host);
    return host;
}

std::string peerOf(const sockaddr_storage& a) {
    if (a.ss_family == AF_INET) return addressOf(a) + ":" + std::to_string(ntohs(reinterpret_cast<const sockaddr_in*>(&a)->sin_port));
    if (a.ss_family == AF_INET6)
        return "[" + addressOf(a) + "]:" + std::to_string(ntohs(reinterpret_cast<const sockaddr_in6*>(&a)->sin6_port));
    return "?";
}

std::string seconds(Clock::duration d) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f s", std::chrono::duration<double>(d).count());
    return text;
}

// Takes the ids in `list` (which may grow meanwhile) and calls `fn` for each
// connection of them still open.
template <class Fn>
void forOpen(Loop& l, std::vector<std::uint64_t>& list, Fn fn) {
    std::vector<std::uint64_t> ids;
    ids.swap(list);
    for (std::uint64_t id : ids) {
        auto it = l.conns.find(id);
        if (it != l.conns.end() && !it->second->dead) fn(*it->second);
    }
}

}  // namespace

// ---------------------------------------------------------------- the loop

void ListenerCore::run(Loop& l) {
    util::nameThisThread("mllp-" + std::to_string(o.port));
    l.mailbox->onLoop = [this, &l](std::uint64_t id, std::string response) {
        auto it = l.conns.find(id);
        if (it == l.conns.end() || it->second->dead) return;
        complete(l, *it->second, std::move(response));
        // Answered outside its own pump() (at the end of the round): its next
        // message, if already read, is handed on then.
        if (id != l.pumping) l.repump.push_back(id);
    };
    l.mailbox->loopThread.store(std::this_thread::get_id());
    openRing(l);
    // Timeouts are checked every second, or four times in the shortest of them.
    auto sweepEvery = std::chrono::milliseconds(1000);
    bool sweeping = false;
    for (auto t : {o.idleTimeout, o.frameTimeout, tls ? o.tls.handshakeTimeout : std::chrono::milliseconds(0)}) {
        if (t.count() <= 0) continue;
        sweeping = true;
        sweepEvery = std::min(sweepEvery, std::max(std::chrono::milliseconds(10), t / 4));
    }
    auto nextSweep = Clock::now() + sweepEvery;
    constexpr int kHeldRetryMs = 20;
    util::Round round;
    while (!stopping) {
        int timeout = l.held.empty() ? static_cast<int>(sweepEvery.count()) : kHeldRetryMs;
        if (acceptRetryAt && &l == loops[0].get()) timeout = std::min<int>(timeout, static_cast<int>(kAcceptBackoff.count()));
        Backend::Waited waited = l.backend->wait(timeout);
        if (waited == Backend::Waited::Failed) break;
        if (waited == Backend::Waited::Switched) continue;  // the ring failed: epoll from now on
        if (!l.held.empty()) retryHeld(l);
        endRound(l, round);  // after retryHeld: what a held message left must not wait for the next event
        if (!l.ended.empty()) closeEnded(l);
        reap(l);
        if (acceptRetryAt && &l == loops[0].get() && Clock::now() >= *acceptRetryAt) {
            acceptRetryAt.reset();
            watchListen(true);
        }
        if (sweeping && Clock::now() >= nextSweep) {
            sweep(l);
            reap(l);
            nextSweep = Clock::now() + sweepEvery;
        }
    }
    sendQueued(l);
    {
        std::lock_guard<std::mutex> lock(l.mailbox->mu);
        l.mailbox->closed = true;
        l.mailbox->loopThread.store(std::thread::id());  // a later reply takes the locked path and is dropped
    }
    for (auto& [id, c] : l.conns) {
        if (l.uring) ::shutdown(c->fd, SHUT_RDWR);  // ends the connection now, not when the ring lets go of it
        ::close(c->fd);
        forget(*c->slot);
    }
    l.conns.clear();
    l.count = 0;
    l.uring = false;
    l.backend = l.epollBackend.get();
    l.ringBackend.reset();  // ends what is still in flight, on the thread that owns the ring
}

// A peer that ended its stream gets its answers first (as with epoll, which
// reads the end only once the connection is served).
void ListenerCore::closeEnded(Loop& l) {
    forOpen(l, l.ended, [&](Conn& c) {
        if (!c.busy && !c.held && !c.queued && !c.decoder.peek() && c.outOffset >= c.out.size())
            kill(l, c);
        else
            l.ended.push_back(c.id);
    });
}

void ListenerCore::acceptAll(Loop& l) {
    for (;;) {
        sockaddr_storage addr{};
        socklen_t len = sizeof addr;
        int fd = ::accept4(listenFd, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED) continue;
            if (e == EAGAIN || e == EWOULDBLOCK) return;
            // Out of file descriptors or memory: the connection stays in the
            // backlog, so the listening socket stays readable. Stop watching it
            // for a while instead of spinning on it.
            auto now = Clock::now();
            if (now - lastAcceptWarning >= std::chrono::seconds(10)) {
                log("warn", "mllp :" + std::to_string(o.port) + ": accept: " + std::strerror(e) +
                                "; new connections wait");
                lastAcceptWarning = now;
            }
            watchListen(false);
            acceptRetryAt = now + kAcceptBackoff;
            return;
        }
        accepted(l, fd, addr);
    }
}

// A new connection: refused past max_connections_per_address; at
// max_connections it takes the place of the longest-idle connection that has
// no message unanswered, and is refused when there is none.
void ListenerCore::accepted(Loop& l, int fd, const sockaddr_storage& addr) {
    // Spread connections over the loops, the least loaded first.
    Loop* target = &l;
    for (auto& other : loops)
        if (other->count.load() < target->count.load()) target = other.get();
    auto slot = std::make_shared<Slot>(nextId.fetch_add(1), peerOf(addr), addressOf(addr), target);
    std::shared_ptr<Slot> victim;
    std::string refusal;
    {
        std::lock_guard<std::mutex> lock(slotsMu);
        auto from = perAddress.find(slot->address);
        if (o.maxConnectionsPerAddress > 0 && from != perAddress.end() && from->second >= o.maxConnectionsPerAddress) {
            refusal = "connection from " + slot->peer + " refused: " + std::to_string(from->second) + " open from " +
                      slot->address + " (max_connections_per_address)";
        } else if (total.load() - evicting >= o.maxConnections) {
            victim = pickVictim();
            if (victim)
                ++evicting;
            else
                refusal = "connection from " + slot->peer + " refused: " + std::to_string(o.maxConnections) +
                          " connections open (max_connections), each with a message unanswered";
        }
        if (refusal.empty()) {
            slots.emplace(slot->id, slot);
            ++perAddress[slot->address];
            total.fetch_add(1);
        }
    }
    if (!refusal.empty()) {
        ::close(fd);
        refuse(refusal);
        return;
    }
    if (victim) {
        auto idle = Clock::now() - Clock::time_point(Clock::duration(victim->lastActive.load(std::memory_order_relaxed)));
        log("info", "mllp " + victim->peer + ": idle for " + seconds(idle) + ", closed to make room for " + slot->peer +
                        " (max_connections " + std::to_string(o.maxConnections) + ")");
        victim->loop->mailbox->evict(victim->id);
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    event("connection.opened", "mllp " + where() + ": connection from " + slot->peer);
    target->count.fetch_add(1);
    if (target == &l) {
        adopt(l, fd, std::move(slot));
    } else if (!target->mailbox->handOff(fd, slot)) {  // stopping
        target->count.fetch_sub(1);
        ::close(fd);
        event("connection.closed", "mllp " + where() + ": connection from " + slot->peer + " (stopping)");
        forget(*slot);
    }
}

// The longest-idle connection with no message unanswered, marked Evicted; null
// when there is none. Under slotsMu.
std::shared_ptr<Slot> ListenerCore::pickVictim() {
    for (;;) {
        std::shared_ptr<Slot> best;
        Clock::rep oldest = 0;
        for (const auto& [id, s] : slots) {
            if (s->state.load() != Slot::Idle) continue;
            Clock::rep since = s->lastActive.load(std::memory_order_relaxed);
            if (!best || since < oldest) {
                best = s;
                oldest = since;
            }
        }
        if (!best) return nullptr;
        int idle = Slot::Idle;
        if (best->state.compare_exchange_strong(idle, Slot::Evicted)) return best;
        // It took a message in meanwhile: look again.
    }
}

void ListenerCore::refuse(const std::string& why) {
    auto now = Clock::now();
    if (now - lastRefusalLog < kRefusalLogEvery) {
        ++refusalsUnlogged;
        return;
    }
    std::string more = refusalsUnlogged > 0 ? " (and " + std::to_string(refusalsUnlogged) + " more refused before it)" : "";
    log("warn", "mllp " + where() + ": " + why + more);
    event("connection.refused", "mllp " + where() + ": " + why + more);
    lastRefusalLog = now;
    refusalsUnlogged = 0;
}

void ListenerCore::forget(Slot& s) {
    std::lock_guard<std::mutex> lock(slotsMu);
    if (!slots.erase(s.id)) return;
    auto it = perAddress.find(s.address);
    if (it != perAddress.end() && --it->second <= 0) perAddress.erase(it);
    if (s.wasEvicted || s.state.exchange(Slot::Closed) == Slot::Evicted) --evicting;
    total.fetch_sub(1);
}

void ListenerCore::adopt(Loop& l, int fd, std::shared_ptr<Slot> slot) {
    std::uint64_t id = slot->id;
    auto c = std::make_unique<Conn>(fd, std::move(slot), o.maxMessageBytes);
    auto fail = [&](const std::string& why) {
        log("warn", "mllp " + c->peer + ": " + why);
        ::close(fd);
        event("connection.closed", "mllp " + where() + ": connection from " + c->peer + " (" + why + ")");
        l.count.fetch_sub(1);
        forget(*c->slot);
    };
    if (tls) {
        try {
            c->tls = std::make_unique<TlsSession>(*tls);
        } catch (const std::runtime_error& e) {
            fail(e.what());
            return;
        }
    }
    if (!l.backend->add(*c)) {
        fail(std::strerror(errno));
        return;
    }
    l.conns.emplace(id, std::move(c));
}

void ListenerCore::takeMail(Loop& l) {
    std::uint64_t counter;
    while (::read(l.mailbox->wakeFd, &counter, sizeof counter) > 0) {
    }
    std::vector<std::pair<std::uint64_t, std::string>> replies;
    std::vector<std::pair<int, std::shared_ptr<Slot>>> handoffs;
    std::vector<std::uint64_t> evictions;
    {
        std::lock_guard<std::mutex> lock(l.mailbox->mu);
        replies.swap(l.mailbox->remote);
        handoffs.swap(l.mailbox->handoffs);
        evictions.swap(l.mailbox->evictions);
        l.mailbox->signaled = false;
    }
    for (auto& [fd, slot] : handoffs) adopt(l, fd, std::move(slot));
    forOpen(l, evictions, [&](Conn& c) { kill(l, c); });  // Evicted: it took no message in since
    for (auto& [id, response] : replies) {
        auto it = l.conns.find(id);
        if (it == l.conns.end() || it->second->dead) continue;  // closed meanwhile: the message is stored all the same
        Conn& c = *it->second;
        complete(l, c, std::move(response));
        if (!c.dead) pump(l, c);
    }
}

// Bytes received: to the frame decoder, through TLS if the connection has it.
// A message taken in makes the connection Active (see claim).
void ListenerCore::input(Loop& l, Conn& c, const char* data, std::size_t size) {
    auto now = Clock::now();
    c.touch(now);
    if (!c.tls) {
        c.decoder.feed(data, size);
    } else {
        std::string error;
        TlsSession::Status status = c.tls->receive(data, size, c.decoder, error);
        c.tls->drain(c.out);  // the handshake's answer, an alert
        if (c.outOffset < c.out.size()) flush(l, c);
        if (status == TlsSession::Status::Failed) {
            log("warn", "mllp " + c.peer + ": " + error + "; closing the connection");
            kill(l, c);
            return;
        }
        if (status == TlsSession::Status::Ended) peerEnded(l, c);
        if (c.dead || c.tls->handshaking()) return;
    }
    // The frame clock (frame_timeout) runs from the arrival of a frame's first byte.
    bool partial = c.decoder.inFrame() || (c.tls && c.tls->partial());
    if (partial && (!c.partial || c.decoder.framesBegun() != c.framesBegun)) c.partialSince = now;
    c.partial = partial;
    c.framesBegun = c.decoder.framesBegun();
    claim(l, c);
}

// The peer ended its stream: closed once what it sent is answered.
void ListenerCore::peerEnded(Loop& l, Conn& c) {
    if (c.ended) return;
    c.ended = true;
    l.ended.push_back(c.id);
}

// A connection that took a message in is not evicted until the reply is sent.
// One chosen for eviction before is closed instead (the sender, not answered,
// sends the message again).
void ListenerCore::claim(Loop& l, Conn& c) {
    if (c.claimed || c.dead || !c.decoder.peek()) return;
    int idle = Slot::Idle;
    if (c.slot->state.compare_exchange_strong(idle, Slot::Active))
        c.claimed = true;
    else
        kill(l, c);
}

// Evictable again once every message taken in is answered and its reply sent.
void ListenerCore::settle(Conn& c) {
    if (!c.claimed || c.dead || c.busy || c.held || c.queued || c.decoder.peek() || c.outOffset < c.out.size()) return;
    c.claimed = false;
    c.slot->state.store(Slot::Idle);
}

// Room to send again: the rest of the replies goes out; a peer that read its
// replies is read from again.
void ListenerCore::writable(Loop& l, Conn& c) {
    flush(l, c);
    if (unpause(l, c)) pump(l, c);
}

// The round's sends took some of the connection's replies: the rest goes out
// as any reply's; a peer that read its replies is read from again, and its
// next message handed on once the round's sends are done (endRound).
void ListenerCore::sentInRound(Loop& l, Conn& c) {
    flush(l, c);
    if (unpause(l, c)) l.repump.push_back(c.id);
}

// A connection not read while its replies were unread is read from again once
// they are no longer too many (and no message of it is in processing or held).
// True when it is.
bool ListenerCore::unpause(Loop& l, Conn& c) {
    if (c.dead || !c.readPaused || c.busy || c.held || c.backlogged()) return false;
    c.readPaused = false;
    watch(l, c);
    return true;
}

// Runs the work the round's messages left for its end (such as the journal's
// write and fdatasync that their ACKs wait for), sends the round's replies
// together, runs what waited for them (waking delivery threads), then hands on
// the next message of every connection answered meanwhile or read again once
// those sends took its unread replies; those may leave work for the end again.
void ListenerCore::endRound(Loop& l, util::Round& round) {
    for (;;) {
        bool ran = round.end();
        sendQueued(l);
        ran = round.afterRepliesSent() || ran;  // such as waking a delivery thread, now that the ACKs are out
        if (!ran && l.repump.empty()) return;
        forOpen(l, l.repump, [&](Conn& c) { pump(l, c); });
    }
}

// Hands on the connection's complete messages, one at a time: the next only
// once the reply to the previous one is out.
void ListenerCore::pump(Loop& l, Conn& c) {
    struct Pumping {
        std::uint64_t& slot;
        std::uint64_t saved;
        Pumping(std::uint64_t& s, std::uint64_t id) : slot(s), saved(s) { slot = id; }
        ~Pumping() { slot = saved; }
    } pumping(l.pumping, c.id);
    FrameDecoder::Event ev;
    while (!c.busy && !c.dead && !c.held && !stopping && c.decoder.peek()) {
        if (c.backlogged()) {
            if (!c.readPaused) {
                c.readPaused = true;
                watch(l, c);
            }
            return;
        }
        if (c.decoder.peek()->isError) {
            c.decoder.next(ev);
            // Broken framing: this connection only is closed.
            log("warn", "mllp " + c.peer + ": " + ev.detail + "; closing the connection");
            kill(l, c);
            return;
        }
        Handlers::Admit admit = h.admit ? h.admit() : Handlers::Admit::Yes;
        if (admit == Handlers::Admit::Stop) {
            kill(l, c);
            return;
        }
        if (admit == Handlers::Admit::Wait) {
            // Paused or over its queue limit: hold this connection (read nothing
            // more from it) and ask again shortly; replies still go out.
            c.held = true;
            l.held.push_back(c.id);
            if (!c.readPaused) {
                c.readPaused = true;
                watch(l, c);
            }
            return;
        }
        c.decoder.next(ev);
        c.busy = true;
        try {
            h.message(std::move(ev.payload), c.origin,
                      [mb = l.mailbox, id = c.id](std::string response) { mb->post(id, std::move(response)); });
        } catch (const std::exception& e) {
            log("error", "mllp " + c.peer + ": " + e.what() + "; closing the connection");
            kill(l, c);
            return;
        }
    }
    settle(c);
}

void ListenerCore::complete(Loop& l, Conn& c, std::string response) {
    c.busy = false;
    c.touch(Clock::now());
    if (!response.empty()) {
        if (!c.tls) {
            if (c.out.empty()) c.out.reserve(response.size() + 3);
            appendFrame(c.out, response);
        } else {
            std::string error;
            if (!c.tls->send(frame(response), error)) {
                log("warn", "mllp " + c.peer + ": " + error + "; closing the connection");
                kill(l, c);
                return;
            }
            c.tls->drain(c.out);
        }
        if (l.backend->batchesReplies && !c.wantWrite && c.out.size() - c.outOffset <= kMaxBatched) {
            if (!c.queued) {
                c.queued = true;
                l.queued.push_back(c.id);
            }
        } else {
            flush(l, c);
        }
    }
    if (!c.dead && c.readPaused && !c.backlogged()) {
        c.readPaused = false;
        watch(l, c);
    }
    settle(c);
}

void ListenerCore::flush(Loop& l, Conn& c) {
    while (c.outOffset < c.out.size()) {
        ssize_t n = ::send(c.fd, c.out.data() + c.outOffset, c.out.size() - c.outOffset, MSG_NOSIGNAL);
        if (n > 0) {
            c.outOffset += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c.wantWrite) {
                c.wantWrite = true;
                watch(l, c);
            }
            return;
        }
        kill(l, c);
        return;
    }
    c.out.clear();
    c.outOffset = 0;
    if (c.wantWrite) {
        c.wantWrite = false;
        watch(l, c);
    }
    settle(c);
}

void ListenerCore::kill(Loop& l, Conn& c) {
    if (c.dead) return;
    c.dead = true;
    if (c.slot->state.exchange(Slot::Closed) == Slot::Evicted) c.slot->wasEvicted = true;
    l.dead.push_back(c.id);
}

void ListenerCore::reap(Loop& l) {
    if (l.dead.empty()) return;
    for (std::uint64_t id : l.dead) {
        auto it = l.conns.find(id);
        if (it == l.conns.end()) continue;
        Conn& c = *it->second;
        l.backend->remove(c);
        ::close(c.fd);
        event("connection.closed", "mllp " + where() + ": connection from " + c.peer);
        forget(*c.slot);
        l.conns.erase(it);
        l.count.fetch_sub(1);
    }
    l.dead.clear();
}

void ListenerCore::retryHeld(Loop& l) {
    forOpen(l, l.held, [&](Conn& c) {
        c.held = false;
        pump(l, c);
        unpause(l, c);
    });
}

// Closes the connections past a timeout: a TLS handshake not done within
// handshake_timeout, a frame begun and not ended within frame_timeout (its
// clock stands while the connection is not read: a message in processing or
// held, replies unread), no bytes at all for idle_timeout.
void ListenerCore::sweep(Loop& l) {
    auto now = Clock::now();
    for (auto& [id, cp] : l.conns) {
        Conn& c = *cp;
        if (c.dead) continue;
        if (c.tls && c.tls->handshaking() && o.tls.handshakeTimeout.count() > 0 &&
            now - c.accepted >= o.tls.handshakeTimeout) {
            log("info", "mllp " + c.peer + ": no TLS handshake within " + seconds(o.tls.handshakeTimeout) +
                            " (handshake_timeout), closing");
            kill(l, c);
            continue;
        }
        if (c.busy || c.held || c.readPaused) {
            c.partialSince = now;
            if (c.busy || c.held) continue;
        }
        if (c.partial && o.frameTimeout.count() > 0 && now - c.partialSince >= o.frameTimeout) {
            log("warn", "mllp " + c.peer + ": frame not complete after " + seconds(now - c.partialSince) +
                            " (frame_timeout), closing");
            kill(l, c);
            continue;
        }
        if (o.idleTimeout.count() > 0 && now - c.lastActive() >= o.idleTimeout) {
            log("info", "mllp " + c.peer + ": idle timeout, closing");
            kill(l, c);
        }
    }
}

}  // namespace detail

// The listener's state is its connection core's.
struct Listener::Impl : detail::ListenerCore {};

Listener::Listener(ListenerOptions options, Handlers handlers) : impl_(std::make_unique<Impl>()) {
    impl_->o = std::move(options);
    impl_->h = std::move(handlers);
    if (impl_->o.threads < 1) impl_->o.threads = 1;
}

Listener::~Listener() { stop(); }

int Listener::connections() const { return impl_->total.load(); }

bool Listener::usesIoUring() const { return impl_->ioUring; }

Listener::Batching Listener::batching() const {
    return {impl_->batchedReplies.load(), impl_->batchCalls.load()};
}

int Listener::port() const {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (impl_->listenFd < 0 || ::getsockname(impl_->listenFd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
    if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port);
    if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
    return 0;
}

void Listener::start() {
    Impl& m = *impl_;
    m.stopping = false;
    std::string where = m.where();
    m.tls.reset();
    if (m.o.tls.enabled) {
        try {
            m.tls = std::make_unique<TlsServer>(m.o.tls);
        } catch (const std::runtime_error& e) {
            throw std::runtime_error("cannot listen on " + where + ": " + e.what());
        }
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string port = std::to_string(m.o.port);
    int rc = ::getaddrinfo(m.o.host.empty() ? nullptr : m.o.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) throw std::runtime_error("cannot listen on " + where + ": " + gai_strerror(rc));
    int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || ::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 128) != 0) {
        int e = errno;
        if (fd >= 0) ::close(fd);
        ::freeaddrinfo(res);
        throw std::runtime_error("cannot listen on " + where + ": " + std::strerror(e));
    }
    ::freeaddrinfo(res);
    m.listenFd = fd;
    m.loops.clear();
    for (int i = 0; i < m.o.threads; ++i) {
        auto l = std::make_unique<detail::Loop>();
        l->mailbox->wakeFd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (l->mailbox->wakeFd >= 0) l->epollBackend = detail::openEpoll(m, *l, i == 0 ? fd : -1);
        if (!l->epollBackend) {
            int e = errno;
            m.loops.clear();
            ::close(fd);
            m.listenFd = -1;
            throw std::runtime_error("cannot listen on " + where + ": " + std::strerror(e));
        }
        l->backend = l->epollBackend.get();
        m.loops.push_back(std::move(l));
    }
    m.ready = 0;
    for (auto& l : m.loops) {
        detail::Loop* lp = l.get();
        lp->thread = std::thread([&m, lp] { m.run(*lp); });
    }
    std::unique_lock<std::mutex> lock(m.readyMu);
    m.readyCv.wait(lock, [&] { return m.ready == m.loops.size(); });
    m.ioUring = m.loops[0]->uring.load();
}

void Listener::stop() {
    Impl& m = *impl_;
    if (m.loops.empty()) return;
    m.stopping = true;
    for (auto& l : m.loops) l->mailbox->wake();
    for (auto& l : m.loops)
        if (l->thread.joinable()) l->thread.join();
    m.loops.clear();
    {
        std::lock_guard<std::mutex> lock(m.slotsMu);
        m.slots.clear();
        m.perAddress.clear();
        m.evicting = 0;
        m.total = 0;
    }
    // A closed ring ends its requests later, in the kernel, and until then a
    // request holds the socket open and listening: a restart on the same port
    // (a redeploy) would find it in use. shutdown() stops the listening now.
    if (m.listenFd >= 0) {
        ::shutdown(m.listenFd, SHUT_RDWR);
        ::close(m.listenFd);
    }
    m.listenFd = -1;
}

}  // namespace junction::mllp
