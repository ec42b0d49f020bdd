// The MLLP listener's insides (see listener.h), shared by its files and
// internal to the MLLP library: the connection core (listener.cpp: accepting,
// framing, admission, replies, eviction, timeouts) and the two ways a loop
// waits for its sockets, behind Backend: epoll (listener_epoll.cpp) and
// io_uring (listener_uring.cpp). TLS is in tls.h: the core feeds a
// connection's bytes through its TlsSession.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "connectors/mllp/framing.h"
#include "connectors/mllp/listener.h"
#include "connectors/mllp/tls.h"
#include "engine/util/round.h"

namespace junction::mllp::detail {

using Clock = std::chrono::steady_clock;

// Replies a peer has not read, past which nothing more is read from it (a
// sender that writes without reading its ACKs is held, as a blocking send would).
constexpr std::size_t kMaxUnsent = 1u << 20;

constexpr std::uint64_t kListenKey = 0;
constexpr std::uint64_t kWakeKey = 1;

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

// How one loop waits for its sockets and watches them: epoll, or io_uring
// where the kernel allows (ListenerOptions::ioUring). The core calls wait once
// a round, and the rest when what a connection waits for changes; a backend
// hands what it finds back to the core (ListenerCore's acceptAll, takeMail,
// input, pump, writable, ...). Only the loop's own thread uses it.
class Backend {
public:
    explicit Backend(bool batches) : batchesReplies(batches) {}
    virtual ~Backend() = default;
    Backend(const Backend&) = delete;
    Backend& operator=(const Backend&) = delete;

    // Replies go out together at the end of a round (sendQueued), not one by one.
    const bool batchesReplies;

    enum class Waited {
        Ok,        // what came (up to timeoutMs) is handled
        Switched,  // the ring failed: its connections are closed, epoll serves from now on
        Failed,    // the loop cannot wait any more: it ends
    };
    virtual Waited wait(int timeoutMs) = 0;
    // Watches the listening socket for new connections, or stops (loop 0 only).
    virtual void watchListen(bool on) = 0;
    // A new connection, watched for input from now on; false (errno set) when it cannot be.
    virtual bool add(Conn& c) = 0;
    // What the connection waits for changed (readPaused, wantWrite, ended).
    virtual void watch(Conn& c) = 0;
    // The connection is about to be closed: no longer watched.
    virtual void remove(Conn& c) = 0;
    // Sends the replies the round queued (Loop::queued), when the backend batches them.
    virtual void sendQueued() {}
};

struct Loop {
    std::shared_ptr<Mailbox> mailbox = std::make_shared<Mailbox>();
    std::thread thread;
    std::unordered_map<std::uint64_t, std::unique_ptr<Conn>> conns;
    std::vector<std::uint64_t> dead;
    std::vector<std::uint64_t> held;
    std::uint64_t pumping = 0;           // the connection pump() is handing on (0: none)
    // Answered at the end of the round, or read again once the round's sends
    // took their unread replies: hand on their next message.
    std::vector<std::uint64_t> repump;
    std::unique_ptr<Backend> epollBackend;  // made at start: serves without a ring, or once it failed
    std::unique_ptr<Backend> ringBackend;   // io_uring, made on the loop's thread (kept once it failed)
    Backend* backend = nullptr;             // the one serving
    std::atomic<bool> uring{false};         // the ring serves (read by other loops)
    std::vector<std::uint64_t> ended;    // connections whose peer ended its stream
    std::vector<std::uint64_t> queued;   // connections with replies for the round's sends
    std::atomic<int> count{0};
};

// The listener's state and its connection core (what Listener::Impl is).
struct ListenerCore {
    using Handlers = Listener::Handlers;

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
    void event(const std::string& type, const std::string& text) {
        if (h.event) h.event(type, text);
    }
    std::string where() const { return o.host + ":" + std::to_string(o.port); }
    // Watch the listening socket (loop 0, on its thread) for new connections, or stop.
    void watchListen(bool on) { loops[0]->backend->watchListen(on); }

    void run(Loop& l);
    void openRing(Loop& l);  // listener_uring.cpp
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
    void input(Loop& l, Conn& c, const char* data, std::size_t size);
    void peerEnded(Loop& l, Conn& c);
    void claim(Loop& l, Conn& c);
    void settle(Conn& c);
    void pump(Loop& l, Conn& c);
    void complete(Loop& l, Conn& c, std::string response);
    void takeMail(Loop& l);
    void flush(Loop& l, Conn& c);
    void watch(Loop& l, Conn& c) { l.backend->watch(c); }
    void kill(Loop& l, Conn& c);
    void reap(Loop& l);
    void sweep(Loop& l);
    void retryHeld(Loop& l);
    void endRound(Loop& l, util::Round& round);
    void sendQueued(Loop& l) {
        if (!l.queued.empty()) l.backend->sendQueued();
    }
};

// A loop's epoll (listener_epoll.cpp), watching its mailbox's wake-up and, when
// listenFd >= 0, the listening socket; null (errno set) when it cannot be made.
std::unique_ptr<Backend> openEpoll(ListenerCore& core, Loop& l, int listenFd);

}  // namespace junction::mllp::detail
