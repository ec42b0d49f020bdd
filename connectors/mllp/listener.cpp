// The MLLP listener: event loops (io_uring, or epoll when told or where rings
// are not allowed) that accept, frame, hand messages over and send replies.
#include "connectors/mllp/listener.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "connectors/mllp/framing.h"
#include "connectors/mllp/tls.h"
#include "connectors/mllp/uring.h"
#include "engine/util/round.h"
#include "engine/util/thread_name.h"

namespace junction::mllp {

namespace {

using Clock = std::chrono::steady_clock;

// Replies a peer has not read, past which nothing more is read from it (a
// sender that writes without reading its ACKs is held, as a blocking send would).
constexpr std::size_t kMaxUnsent = 1u << 20;
// Unsent replies past which a connection's replies go out at once instead of
// with the round's others (far below kMaxUnsent).
constexpr std::size_t kMaxBatched = 64u << 10;

// With io_uring, bytes a connection sends while it is held or its message is
// in processing are still taken in, up to this much; past it the connection
// is not read until it is served (as epoll does at once).
constexpr std::size_t kReadAhead = 256u << 10;

constexpr std::uint64_t kListenKey = 0;
constexpr std::uint64_t kWakeKey = 1;

// io_uring requests carry (key << 2 | what); a connection's key is its id.
enum class Req : std::uint64_t { Receive = 0, Writable = 1, Send = 2, Poll = 3 };
std::uint64_t tag(std::uint64_t key, Req r) { return key << 2 | static_cast<std::uint64_t>(r); }

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

struct Loop;

// What the accepting loop knows of every connection, whichever loop serves it:
// enough to pick the one to close when the limit is reached. The serving loop
// alone moves it between Idle and Active; the accepting loop alone marks an
// Idle one Evicted (then the serving loop closes it).
struct Slot {
    enum State : int {
        Idle,     // no message unanswered: may be evicted
        Active,   // a message is taken in and not answered (its reply not all sent)
        Evicted,  // chosen to make room: closed by its loop
        Closed,   // closing for another reason
    };
    Slot(std::uint64_t i, std::string p, std::string a, Loop* l)
        : id(i), peer(std::move(p)), address(std::move(a)), loop(l) {}
    const std::uint64_t id;
    const std::string peer, address;
    Loop* const loop;
    std::atomic<int> state{Idle};
    std::atomic<Clock::rep> lastActive{Clock::now().time_since_epoch().count()};
    bool wasEvicted = false;  // it was Evicted when its loop closed it (that loop only)
};

// Where replies for one loop's connections are posted. Shared with every
// pending Reply, so a reply that comes after the loop ended finds it closed.
struct Mailbox {
    int wakeFd = -1;
    std::atomic<std::thread::id> loopThread{};
    std::mutex mu;
    bool closed = false;
    bool signaled = false;
    std::vector<std::pair<std::uint64_t, std::string>> remote;  // from other threads
    std::vector<std::pair<int, std::shared_ptr<Slot>>> handoffs;  // accepted sockets for this loop
    std::vector<std::uint64_t> evictions;                       // its connections to close to make room
    // A reply made on the loop's own thread (the message was stored at once) is
    // sent at once, before whatever the caller does next (such as waking a
    // delivery thread that would take the CPU before the ACK is out).
    std::function<void(std::uint64_t, std::string)> onLoop;

    ~Mailbox() {
        if (wakeFd >= 0) ::close(wakeFd);
        for (auto& h : handoffs) ::close(h.first);
    }
    void wake() {
        std::uint64_t one = 1;
        ssize_t r = ::write(wakeFd, &one, sizeof one);
        (void)r;
    }
    void post(std::uint64_t conn, std::string response) {
        if (std::this_thread::get_id() == loopThread.load(std::memory_order_relaxed)) {
            onLoop(conn, std::move(response));
            return;
        }
        bool signal;
        {
            std::lock_guard<std::mutex> lock(mu);
            if (closed) return;
            remote.emplace_back(conn, std::move(response));
            signal = !signaled;
            signaled = true;
        }
        if (signal) wake();
    }
    bool handOff(int fd, std::shared_ptr<Slot> slot) {
        {
            std::lock_guard<std::mutex> lock(mu);
            if (closed) return false;
            handoffs.emplace_back(fd, std::move(slot));
            signaled = true;
        }
        wake();
        return true;
    }
    void evict(std::uint64_t conn) {
        {
            std::lock_guard<std::mutex> lock(mu);
            if (closed) return;
            evictions.push_back(conn);
            signaled = true;
        }
        wake();
    }
};

struct Conn {
    Conn(int f, std::shared_ptr<Slot> s, std::size_t max)
        : fd(f), id(s->id), peer(s->peer), origin("mllp " + peer), decoder(max), slot(std::move(s)) {}
    int fd;
    std::uint64_t id;
    std::string peer, origin;
    FrameDecoder decoder;
    std::shared_ptr<Slot> slot;
    std::unique_ptr<TlsSession> tls;  // null: plain MLLP
    std::string out;
    std::size_t outOffset = 0;
    bool busy = false;        // a message is being processed; its reply is awaited
    bool readPaused = false;  // not watching for input (busy, held, or its replies unread)
    bool wantWrite = false;   // output is waiting for room in the socket
    bool held = false;        // its next message waits for the channel to take it
    bool dead = false;        // closed at the end of this round of events
    bool queued = false;      // its replies go out with the round's others
    // io_uring
    bool recvArmed = false;       // a multishot receive is in flight
    bool recvCancelling = false;  // ... and asked to end
    bool pollOutArmed = false;    // waiting for room to send
    bool ended = false;           // the peer ended its stream: close once served
    bool claimed = false;         // its slot is Active
    Clock::time_point accepted = Clock::now();
    // A frame (or TLS record) begun and not complete: since when it is awaited.
    bool partial = false;
    std::size_t framesBegun = 0;
    Clock::time_point partialSince{};
    bool backlogged() const { return out.size() - outOffset > kMaxUnsent; }
    Clock::time_point lastActive() const {
        return Clock::time_point(Clock::duration(slot->lastActive.load(std::memory_order_relaxed)));
    }
    void touch(Clock::time_point now) { slot->lastActive.store(now.time_since_epoch().count(), std::memory_order_relaxed); }
};

struct Loop {
    int ep = -1;
    std::shared_ptr<Mailbox> mailbox = std::make_shared<Mailbox>();
    std::thread thread;
    std::unordered_map<std::uint64_t, std::unique_ptr<Conn>> conns;
    std::vector<std::uint64_t> dead;
    std::vector<std::uint64_t> held;
    std::uint64_t pumping = 0;           // the connection pump() is handing on (0: none)
    // Answered at the end of the round, or read again once the round's sends
    // took their unread replies: hand on their next message.
    std::vector<std::uint64_t> repump;
    std::unique_ptr<Ring> ring;          // null: epoll, replies sent one by one
    std::atomic<bool> uring{false};      // ring is set (read by other loops)
    std::vector<Ring::Completion> stash;  // completions that came with the sends, for the next round
    std::vector<Ring::Completion> ready;  // a wait's completions (kept: no allocation a round)
    std::vector<Ring::Completion> sent;   // the sends' completions (likewise)
    std::vector<std::uint64_t> ended;    // connections whose peer ended its stream (io_uring)
    bool listenOn = false, listenArmed = false;  // loop 0 with io_uring: the listening socket's poll
    std::vector<std::uint64_t> queued;   // connections with replies for the round's sends
    std::atomic<int> count{0};
    char buffer[65536];

    ~Loop() {
        if (ep >= 0) ::close(ep);
    }
};

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

struct Listener::Impl {
    ListenerOptions o;
    Handlers h;
    int listenFd = -1;
    std::vector<std::unique_ptr<Loop>> loops;
    std::atomic<bool> stopping{false};
    std::atomic<int> total{0};  // connections open (changed under slotsMu)
    std::atomic<std::uint64_t> nextId{2};
    std::atomic<std::uint64_t> batchedReplies{0}, batchCalls{0};
    std::unique_ptr<TlsServer> tls;
    // Every open connection, for the accepting loop to choose one to evict.
    std::mutex slotsMu;
    std::unordered_map<std::uint64_t, std::shared_ptr<Slot>> slots;
    std::unordered_map<std::string, int> perAddress;  // open connections by peer address
    int evicting = 0;                                 // Evicted, not closed yet
    // Refusals are logged at most every kRefusalLogEvery (loop 0 only).
    static constexpr std::chrono::seconds kRefusalLogEvery{10};
    Clock::time_point lastRefusalLog{};
    int refusalsUnlogged = 0;
    std::mutex readyMu;  // start() waits until every loop has chosen io_uring or epoll
    std::condition_variable readyCv;
    std::size_t ready = 0;
    bool ioUring = false;  // what the loops chose at start
    // accept failing for want of resources (loop 0 only)
    static constexpr std::chrono::milliseconds kAcceptBackoff{100};
    std::optional<Clock::time_point> acceptRetryAt;
    Clock::time_point lastAcceptWarning{};

    void log(const std::string& level, const std::string& text) {
        if (h.log) h.log(level, text);
    }
    std::string where() const { return o.host + ":" + std::to_string(o.port); }
    // Watch the listening socket (loop 0, on its thread) for new connections, or stop.
    void watchListen(bool on) {
        Loop& l0 = *loops[0];
        if (!l0.uring.load()) {
            epoll_event ev{};
            ev.events = on ? static_cast<std::uint32_t>(EPOLLIN) : 0u;
            ev.data.u64 = kListenKey;
            ::epoll_ctl(l0.ep, EPOLL_CTL_MOD, listenFd, &ev);
            return;
        }
        l0.listenOn = on;
        if (on && !l0.listenArmed) {
            l0.ring->poll(listenFd, POLLIN, true, tag(kListenKey, Req::Poll));
            l0.listenArmed = true;
        } else if (!on && l0.listenArmed) {
            l0.ring->cancel(tag(kListenKey, Req::Poll));
        }
    }

    void run(Loop& l);
    void openRing(Loop& l);
    bool waitRing(Loop& l, int timeoutMs);
    void dispatch(Loop& l, const Ring::Completion& done);
    void received(Loop& l, Conn& c, const Ring::Completion& done);
    void dropRing(Loop& l, const std::string& error);
    void closeEnded(Loop& l);
    void writable(Loop& l, Conn& c);
    void sentInRound(Loop& l, Conn& c);
    bool unpause(Loop& l, Conn& c);
    void acceptAll(Loop& l);
    void accepted(Loop& l, int fd, const sockaddr_storage& addr);
    std::shared_ptr<Slot> pickVictim();
    void refuse(const std::string& why);
    void forget(Slot& s);
    void adopt(Loop& l, int fd, std::shared_ptr<Slot> slot);
    void readable(Loop& l, Conn& c);
    void input(Loop& l, Conn& c, const char* data, std::size_t size);
    void peerEnded(Loop& l, Conn& c);
    void claim(Loop& l, Conn& c);
    void settle(Conn& c);
    void pump(Loop& l, Conn& c);
    void complete(Loop& l, Conn& c, std::string response);
    void takeMail(Loop& l);
    void flush(Loop& l, Conn& c);
    void watch(Loop& l, Conn& c);
    void kill(Loop& l, Conn& c);
    void reap(Loop& l);
    void sweep(Loop& l);
    void retryHeld(Loop& l);
    void endRound(Loop& l, util::Round& round);
    void sendQueued(Loop& l);
};

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
        auto l = std::make_unique<Loop>();
        l->ep = ::epoll_create1(EPOLL_CLOEXEC);
        l->mailbox->wakeFd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (l->ep < 0 || l->mailbox->wakeFd < 0) {
            int e = errno;
            m.loops.clear();
            ::close(fd);
            m.listenFd = -1;
            throw std::runtime_error("cannot listen on " + where + ": " + std::strerror(e));
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = kWakeKey;
        ::epoll_ctl(l->ep, EPOLL_CTL_ADD, l->mailbox->wakeFd, &ev);
        if (i == 0) {
            ev.data.u64 = kListenKey;
            ::epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev);
        }
        m.loops.push_back(std::move(l));
    }
    m.ready = 0;
    for (auto& l : m.loops) {
        Loop* lp = l.get();
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

// ---------------------------------------------------------------- the loop

void Listener::Impl::run(Loop& l) {
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
    epoll_event events[64];
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
        int n = 0;
        if (l.ring && !waitRing(l, timeout)) continue;  // the ring failed: epoll from now on
        if (!l.ring) n = ::epoll_wait(l.ep, events, 64, timeout);
        if (n < 0 && errno != EINTR) {
            log("error", "mllp :" + std::to_string(o.port) + ": epoll_wait: " + std::strerror(errno));
            break;
        }
        for (int i = 0; i < n && !stopping; ++i) {
            std::uint64_t key = events[i].data.u64;
            if (key == kListenKey) {
                acceptAll(l);
                continue;
            }
            if (key == kWakeKey) {
                takeMail(l);
                continue;
            }
            auto it = l.conns.find(key);
            if (it == l.conns.end() || it->second->dead) continue;
            Conn& c = *it->second;
            std::uint32_t e = events[i].events;
            if (e & EPOLLOUT) writable(l, c);
            if (!c.dead && (e & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                if ((c.busy || c.backlogged()) && !(e & (EPOLLHUP | EPOLLERR))) {
                    // Input while a message is in processing, or while the peer
                    // leaves its replies unread: wait for that first.
                    c.readPaused = true;
                    watch(l, c);
                } else {
                    readable(l, c);
                }
            }
        }
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
        if (l.ring) ::shutdown(c->fd, SHUT_RDWR);  // ends the connection now, not when the ring lets go of it
        ::close(c->fd);
        forget(*c->slot);
    }
    l.conns.clear();
    l.count = 0;
    l.uring = false;
    l.ring.reset();  // ends what is still in flight, on the thread that owns the ring
}

// ---------------------------------------------------------------- io_uring

void Listener::Impl::openRing(Loop& l) {
    if (o.ioUring) {
        std::string why;
        l.ring = Ring::open(&why);
        if (!l.ring && &l == loops[0].get()) log("info", "mllp " + where() + ": " + why + "; serving with epoll");
    }
    if (l.ring) {
        l.uring = true;
        l.ring->poll(l.mailbox->wakeFd, POLLIN, true, tag(kWakeKey, Req::Poll));
        if (&l == loops[0].get()) watchListen(true);
    }
    std::lock_guard<std::mutex> lock(readyMu);
    ++ready;
    readyCv.notify_all();
}

// Submits what the last round asked for (receives armed again, cancels) and
// waits for the next completions; handles them and those that came with the
// last round's sends, in order. False when the ring failed (epoll from then on).
bool Listener::Impl::waitRing(Loop& l, int timeoutMs) {
    // Dispatching adds nothing to the stash (only sendQueued does, at the end of the round).
    std::vector<Ring::Completion>& done = l.ready;
    done.clear();
    done.swap(l.stash);
    std::string error;
    if (!l.ring->submitAndWait(done.empty() ? 1 : 0, timeoutMs, done, &error)) {
        dropRing(l, error);
        return false;
    }
    for (const auto& d : done) {
        if (stopping) break;
        dispatch(l, d);
    }
    return l.ring != nullptr;
}

void Listener::Impl::dispatch(Loop& l, const Ring::Completion& d) {
    std::uint64_t key = d.data >> 2;
    auto req = static_cast<Req>(d.data & 3);
    if (req == Req::Poll) {
        if (key == kWakeKey) {
            if (!d.more) l.ring->poll(l.mailbox->wakeFd, POLLIN, true, tag(kWakeKey, Req::Poll));
            takeMail(l);
        } else {
            if (!d.more) l.listenArmed = false;
            if (l.listenOn) acceptAll(l);
            if (l.listenOn && !l.listenArmed) watchListen(true);
        }
        return;
    }
    auto it = l.conns.find(key);
    Conn* c = it == l.conns.end() || it->second->dead ? nullptr : it->second.get();
    if (req == Req::Receive) {
        if (c) received(l, *c, d);
        if (d.buffer >= 0) l.ring->recycle(d.buffer);
    } else if (req == Req::Writable && c) {
        c->pollOutArmed = false;
        if (c->wantWrite) writable(l, *c);
        // The poll fires once: armed again while replies still wait for room.
        if (!c->dead) watch(l, *c);
    }
}

void Listener::Impl::received(Loop& l, Conn& c, const Ring::Completion& d) {
    if (!d.more) {
        c.recvArmed = false;
        c.recvCancelling = false;
    }
    if (d.res > 0 && d.buffer >= 0) {
        std::string_view bytes = l.ring->buffer(d.buffer, static_cast<std::size_t>(d.res));
        input(l, c, bytes.data(), bytes.size());
        if (c.dead) return;  // its receive is cancelled when it is reaped
        // Input while a message is in processing, or while the peer leaves its
        // replies unread: taken in up to kReadAhead, handed on once served.
        if (c.busy || c.backlogged()) c.readPaused = true;
        pump(l, c);
    } else if (d.res == 0) {
        peerEnded(l, c);
    } else if (d.res != -ENOBUFS && d.res != -ECANCELED) {
        if (d.res != -ECONNRESET) log("warn", "mllp " + c.peer + ": " + std::strerror(-d.res));
        kill(l, c);
    }
    if (!c.dead) watch(l, c);  // receive again, or stop past kReadAhead
}

// A peer that ended its stream gets its answers first (as with epoll, which
// reads the end only once the connection is served).
void Listener::Impl::closeEnded(Loop& l) {
    forOpen(l, l.ended, [&](Conn& c) {
        if (!c.busy && !c.held && !c.queued && !c.decoder.peek() && c.outOffset >= c.out.size())
            kill(l, c);
        else
            l.ended.push_back(c.id);
    });
}

void Listener::Impl::dropRing(Loop& l, const std::string& error) {
    log("error", "mllp " + where() + ": " + error + "; its connections are closed, new ones are served with epoll");
    for (auto& [id, c] : l.conns) kill(l, *c);
    l.uring = false;
    l.ring.reset();
    l.stash.clear();
    l.ended.clear();
    l.queued.clear();
    reap(l);
    if (&l == loops[0].get()) watchListen(!acceptRetryAt);
}

void Listener::Impl::acceptAll(Loop& l) {
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
void Listener::Impl::accepted(Loop& l, int fd, const sockaddr_storage& addr) {
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
    target->count.fetch_add(1);
    if (target == &l) {
        adopt(l, fd, std::move(slot));
    } else if (!target->mailbox->handOff(fd, slot)) {  // stopping
        target->count.fetch_sub(1);
        ::close(fd);
        forget(*slot);
    }
}

// The longest-idle connection with no message unanswered, marked Evicted; null
// when there is none. Under slotsMu.
std::shared_ptr<Slot> Listener::Impl::pickVictim() {
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

void Listener::Impl::refuse(const std::string& why) {
    auto now = Clock::now();
    if (now - lastRefusalLog < kRefusalLogEvery) {
        ++refusalsUnlogged;
        return;
    }
    std::string more = refusalsUnlogged > 0 ? " (and " + std::to_string(refusalsUnlogged) + " more refused before it)" : "";
    log("warn", "mllp " + where() + ": " + why + more);
    lastRefusalLog = now;
    refusalsUnlogged = 0;
}

void Listener::Impl::forget(Slot& s) {
    std::lock_guard<std::mutex> lock(slotsMu);
    if (!slots.erase(s.id)) return;
    auto it = perAddress.find(s.address);
    if (it != perAddress.end() && --it->second <= 0) perAddress.erase(it);
    if (s.wasEvicted || s.state.exchange(Slot::Closed) == Slot::Evicted) --evicting;
    total.fetch_sub(1);
}

void Listener::Impl::adopt(Loop& l, int fd, std::shared_ptr<Slot> slot) {
    std::uint64_t id = slot->id;
    auto c = std::make_unique<Conn>(fd, std::move(slot), o.maxMessageBytes);
    auto fail = [&](const std::string& why) {
        log("warn", "mllp " + c->peer + ": " + why);
        ::close(fd);
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
    if (l.ring) {
        watch(l, *c);  // arms its receive
        l.conns.emplace(id, std::move(c));
        return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = id;
    if (::epoll_ctl(l.ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        fail(std::strerror(errno));
        return;
    }
    l.conns.emplace(id, std::move(c));
}

void Listener::Impl::takeMail(Loop& l) {
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

void Listener::Impl::readable(Loop& l, Conn& c) {
    ssize_t n = ::recv(c.fd, l.buffer, sizeof l.buffer, 0);
    if (n == 0) {
        kill(l, c);
        return;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        if (errno != ECONNRESET) log("warn", "mllp " + c.peer + ": " + std::strerror(errno));
        kill(l, c);
        return;
    }
    input(l, c, l.buffer, static_cast<std::size_t>(n));
    if (!c.dead) pump(l, c);
}

// Bytes received: to the frame decoder, through TLS if the connection has it.
// A message taken in makes the connection Active (see claim).
void Listener::Impl::input(Loop& l, Conn& c, const char* data, std::size_t size) {
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
void Listener::Impl::peerEnded(Loop& l, Conn& c) {
    if (c.ended) return;
    c.ended = true;
    l.ended.push_back(c.id);
}

// A connection that took a message in is not evicted until the reply is sent.
// One chosen for eviction before is closed instead (the sender, not answered,
// sends the message again).
void Listener::Impl::claim(Loop& l, Conn& c) {
    if (c.claimed || c.dead || !c.decoder.peek()) return;
    int idle = Slot::Idle;
    if (c.slot->state.compare_exchange_strong(idle, Slot::Active))
        c.claimed = true;
    else
        kill(l, c);
}

// Evictable again once every message taken in is answered and its reply sent.
void Listener::Impl::settle(Conn& c) {
    if (!c.claimed || c.dead || c.busy || c.held || c.queued || c.decoder.peek() || c.outOffset < c.out.size()) return;
    c.claimed = false;
    c.slot->state.store(Slot::Idle);
}

// Room to send again: the rest of the replies goes out; a peer that read its
// replies is read from again.
void Listener::Impl::writable(Loop& l, Conn& c) {
    flush(l, c);
    if (unpause(l, c)) pump(l, c);
}

// The round's sends took some of the connection's replies: the rest goes out
// as any reply's; a peer that read its replies is read from again, and its
// next message handed on once the round's sends are done (endRound).
void Listener::Impl::sentInRound(Loop& l, Conn& c) {
    flush(l, c);
    if (unpause(l, c)) l.repump.push_back(c.id);
}

// A connection not read while its replies were unread is read from again once
// they are no longer too many (and no message of it is in processing or held).
// True when it is.
bool Listener::Impl::unpause(Loop& l, Conn& c) {
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
void Listener::Impl::endRound(Loop& l, util::Round& round) {
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
void Listener::Impl::pump(Loop& l, Conn& c) {
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

void Listener::Impl::complete(Loop& l, Conn& c, std::string response) {
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
        if (l.ring && !c.wantWrite && c.out.size() - c.outOffset <= kMaxBatched) {
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

// Sends the replies queued in this round, together (one system call, which
// also brings their results: a send never waits for room); what a socket did
// not take goes on as any reply does (flush: the rest when the peer reads).
// Other completions that come with them wait for the next round.
void Listener::Impl::sendQueued(Loop& l) {
    if (l.queued.empty() || !l.ring) return;
    std::vector<std::uint64_t> ids;
    ids.swap(l.queued);
    unsigned sends = 0;
    for (std::uint64_t id : ids) {
        auto it = l.conns.find(id);
        if (it == l.conns.end()) continue;
        Conn& c = *it->second;
        c.queued = false;
        if (c.dead || c.outOffset >= c.out.size()) {
            settle(c);
            continue;
        }
        l.ring->send(c.fd, c.out.data() + c.outOffset, c.out.size() - c.outOffset, tag(id, Req::Send));
        ++sends;
    }
    std::vector<Ring::Completion>& done = l.sent;
    done.clear();
    for (unsigned results = 0; results < sends;) {
        std::string error;
        batchCalls.fetch_add(1, std::memory_order_relaxed);
        if (!l.ring->submitAndWait(sends - results, -1, done, &error)) {
            dropRing(l, error);
            return;
        }
        for (const auto& d : done) {
            if (static_cast<Req>(d.data & 3) != Req::Send) {
                l.stash.push_back(d);
                continue;
            }
            ++results;
            auto it = l.conns.find(d.data >> 2);
            if (it == l.conns.end() || it->second->dead) continue;
            Conn& c = *it->second;
            if (d.res > 0) c.outOffset += static_cast<std::size_t>(d.res);
            if (d.res < 0 && d.res != -EAGAIN && d.res != -EINTR) {
                kill(l, c);
                continue;
            }
            sentInRound(l, c);  // the rest, if any; clears the buffer once all is out
        }
        done.clear();
    }
    batchedReplies.fetch_add(sends, std::memory_order_relaxed);
}

void Listener::Impl::flush(Loop& l, Conn& c) {
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

void Listener::Impl::watch(Loop& l, Conn& c) {
    if (l.ring) {
        bool read = !c.ended && (!c.readPaused || c.decoder.held() < kReadAhead);
        if (read && !c.recvArmed) {
            l.ring->receive(c.fd, tag(c.id, Req::Receive));
            c.recvArmed = true;
        } else if (!read && c.recvArmed && !c.recvCancelling) {
            l.ring->cancel(tag(c.id, Req::Receive));
            c.recvCancelling = true;
        }
        if (c.wantWrite && !c.pollOutArmed) {
            l.ring->poll(c.fd, POLLOUT, false, tag(c.id, Req::Writable));
            c.pollOutArmed = true;
        }
        return;
    }
    epoll_event ev{};
    ev.events = (c.readPaused || c.ended ? 0u : static_cast<std::uint32_t>(EPOLLIN)) | (c.wantWrite ? EPOLLOUT : 0u);
    ev.data.u64 = c.id;
    ::epoll_ctl(l.ep, EPOLL_CTL_MOD, c.fd, &ev);
}

void Listener::Impl::kill(Loop& l, Conn& c) {
    if (c.dead) return;
    c.dead = true;
    if (c.slot->state.exchange(Slot::Closed) == Slot::Evicted) c.slot->wasEvicted = true;
    l.dead.push_back(c.id);
}

void Listener::Impl::reap(Loop& l) {
    if (l.dead.empty()) return;
    for (std::uint64_t id : l.dead) {
        auto it = l.conns.find(id);
        if (it == l.conns.end()) continue;
        Conn& c = *it->second;
        if (l.ring) {
            // A request in flight holds the socket open: end it (the socket
            // closes when the cancel is submitted, with the next wait).
            if (c.recvArmed) l.ring->cancel(tag(id, Req::Receive));
            if (c.pollOutArmed) l.ring->cancel(tag(id, Req::Writable));
        } else {
            ::epoll_ctl(l.ep, EPOLL_CTL_DEL, c.fd, nullptr);
        }
        ::close(c.fd);
        forget(*c.slot);
        l.conns.erase(it);
        l.count.fetch_sub(1);
    }
    l.dead.clear();
}

void Listener::Impl::retryHeld(Loop& l) {
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
void Listener::Impl::sweep(Loop& l) {
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

}  // namespace junction::mllp
