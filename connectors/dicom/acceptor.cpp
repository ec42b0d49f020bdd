// The DICOM servers' acceptor (acceptor.h): listening, a thread per connection
// that waits for the whole A-ASSOCIATE-RQ before DCMTK reads it, and the
// eviction of the longest-waiting connection when too many wait.
#include "connectors/dicom/acceptor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <list>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dul.h>

namespace junction::dicom::detail {

namespace {

// DCMTK takes an accepted socket only through one process-wide variable,
// so every hand-over (and the creation of a network, which reads it too)
// happens under this lock. It is held while DCMTK reads a PDU that has
// already arrived, never while waiting for the network.
std::mutex& externalSocketLock() {
    static std::mutex m;
    return m;
}

constexpr unsigned char kAssociateRq = 0x01;
constexpr std::uint32_t kLargestRequest = 1u << 20;  // an A-ASSOCIATE-RQ is a few KB
constexpr int kPendingAllowance = 64;  // connections beyond the limit still waiting for their request

std::string peerOf(const sockaddr_in& a) {
    char ip[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
    return ip;
}

enum class Wait { Ready, Closed, TimedOut, NotDicom, TooLarge };

// Waits until the connection's first PDU (an A-ASSOCIATE-RQ) is complete in
// the socket's receive buffer, without consuming it.
Wait waitForRequest(int fd, std::chrono::steady_clock::time_point deadline) {
    std::size_t need = 6;
    bool sized = false;
    std::vector<unsigned char> peek(6);
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return Wait::TimedOut;
        pollfd p{fd, POLLIN | POLLRDHUP, 0};
        int r = ::poll(&p, 1, static_cast<int>(left.count()));
        if (r < 0) {
            if (errno == EINTR) continue;
            return Wait::Closed;
        }
        if (r == 0) return Wait::TimedOut;
        ssize_t n = ::recv(fd, peek.data(), need, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0) return Wait::Closed;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            return Wait::Closed;
        }
        if (!sized && n >= 6) {
            if (peek[0] != kAssociateRq) return Wait::NotDicom;
            std::uint32_t len = (std::uint32_t(peek[2]) << 24) | (std::uint32_t(peek[3]) << 16) |
                                (std::uint32_t(peek[4]) << 8) | std::uint32_t(peek[5]);
            if (len > kLargestRequest) return Wait::TooLarge;
            need = 6 + len;
            peek.resize(need);
            sized = true;
            n = ::recv(fd, peek.data(), need, MSG_PEEK | MSG_DONTWAIT);
            if (n < 0) n = 0;
        }
        if (static_cast<std::size_t>(n) >= need) return Wait::Ready;
        // Part of it is here: the peer closed, or wake only once the rest arrives.
        if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return Wait::Closed;
        int low = static_cast<int>(need);
        ::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &low, sizeof low);
    }
}

}  // namespace

struct Acceptor::Impl {
    AcceptorOptions o;
    Serve serve;
    Log log;
    std::function<void()> onRejected;

    int listenFd = -1;
    T_ASC_Network* net = nullptr;
    std::atomic<bool> stopping{false};
    std::thread acceptThread;

    struct Worker {
        std::thread thread;
        int fd = -1;  // for shutting it down at stop; -1 once closed
        bool done = false;
        bool waiting = true;   // its association request has not arrived yet
        bool evicted = false;  // shut down to make room for a newer connection
        std::chrono::steady_clock::time_point since;
        std::string peer;
    };
    std::mutex m;
    std::list<Worker> workers;
    int active = 0;  // associations received and not refused

    void acceptLoop();
    // At the limit: shuts down the connection that has waited longest without
    // sending its association request (under m). False when none is waiting.
    bool evictOneWaiting(const std::string& forPeer);
    void connection(Worker* w, int fd, const std::string& peer);
    void reap();
    // Before a socket is closed: stop() must not shut down a number reused since.
    void forget(Worker* w) {
        std::lock_guard<std::mutex> lock(m);
        w->fd = -1;
    }
    void release(Worker* w, int fd) {
        forget(w);
        ::close(fd);
    }
};

Acceptor::Acceptor(AcceptorOptions options, Serve serve, Log log, std::function<void()> onRejected)
    : impl_(std::make_unique<Impl>()) {
    impl_->o = options;
    impl_->serve = std::move(serve);
    impl_->log = std::move(log);
    impl_->onRejected = std::move(onRejected);
}

Acceptor::~Acceptor() { stop(); }

std::string checkListenHost(const std::string& host) {
    in_addr a{};
    if (::inet_pton(AF_INET, host.c_str(), &a) == 1) return {};
    return "'" + host + "' is not an IPv4 address (0.0.0.0 for every interface, 127.0.0.1 for this machine only)";
}

void Acceptor::start() {
    Impl& s = *impl_;
    if (s.acceptThread.joinable()) return;
    const std::string where = s.o.host + ":" + std::to_string(s.o.port);
    auto fail = [&](const std::string& what) {
        std::string text = "cannot listen on " + where + ": " + what + ": " + std::strerror(errno);
        if (s.listenFd >= 0) ::close(s.listenFd);
        s.listenFd = -1;
        throw std::runtime_error(text);
    };
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(s.o.port));
    if (::inet_pton(AF_INET, s.o.host.c_str(), &addr.sin_addr) != 1)
        throw std::runtime_error("cannot listen on " + where + ": " + checkListenHost(s.o.host));
    s.listenFd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s.listenFd < 0) fail("socket");
    int one = 1;
    ::setsockopt(s.listenFd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(s.listenFd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fail("bind");
    if (::listen(s.listenFd, 64) != 0) fail("listen");

    // A network whose listening socket is ours: with an external socket
    // set, DCMTK creates none.
    OFCondition c;
    {
        std::lock_guard<std::mutex> lock(externalSocketLock());
        dcmExternalSocketHandle.set(s.listenFd);
        c = ASC_initializeNetwork(NET_ACCEPTOR, 0, s.o.requestTimeoutSeconds, &s.net);
        dcmExternalSocketHandle.set(DCMNET_INVALID_SOCKET);
    }
    if (c.bad()) {
        s.net = nullptr;
        ::close(s.listenFd);
        s.listenFd = -1;
        throw std::runtime_error("cannot listen on " + where + ": " + c.text());
    }
    s.stopping = false;
    s.acceptThread = std::thread([&s] { s.acceptLoop(); });
}

void Acceptor::Impl::reap() {
    std::list<Worker> finished;
    {
        std::lock_guard<std::mutex> lock(m);
        for (auto it = workers.begin(); it != workers.end();) {
            auto next = std::next(it);
            if (it->done) finished.splice(finished.end(), workers, it);
            it = next;
        }
    }
    for (auto& w : finished) w.thread.join();
}

void Acceptor::Impl::acceptLoop() {
    while (!stopping) {
        reap();
        pollfd p{listenFd, POLLIN, 0};
        int r = ::poll(&p, 1, 500);
        if (r <= 0 || stopping) continue;
        sockaddr_in from{};
        socklen_t len = sizeof from;
        int fd = ::accept4(listenFd, reinterpret_cast<sockaddr*>(&from), &len, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
                log("warn", std::string("cannot accept a connection: ") + std::strerror(errno));
                std::this_thread::sleep_for(std::chrono::milliseconds(100));  // e.g. out of descriptors
            }
            continue;
        }
        int one = 1;  // responses go out at once, not after a delayed ACK
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        std::string peer = peerOf(from);
        std::lock_guard<std::mutex> lock(m);
        int open = 0;
        for (const auto& w : workers) open += !w.done && !w.evicted;
        // Idle connections must not lock the port out: the one that has waited
        // longest for nothing makes room. Only when every connection carries an
        // association is a new one turned away.
        if (open >= o.maxAssociations + kPendingAllowance && !evictOneWaiting(peer)) {
            ::close(fd);
            log("warn", "connection from " + peer + " closed: " + std::to_string(open) +
                            " connections already open");
            continue;
        }
        workers.emplace_back();
        Worker* w = &workers.back();
        w->fd = fd;
        w->since = std::chrono::steady_clock::now();
        w->peer = peer;
        w->thread = std::thread([this, w, fd, peer] {
            connection(w, fd, peer);
            std::lock_guard<std::mutex> l(m);
            w->fd = -1;
            w->done = true;
        });
    }
}

bool Acceptor::Impl::evictOneWaiting(const std::string& forPeer) {
    Worker* oldest = nullptr;
    for (auto& w : workers)
        if (!w.done && !w.evicted && w.waiting && w.fd >= 0 && (!oldest || w.since < oldest->since)) oldest = &w;
    if (!oldest) return false;
    oldest->evicted = true;
    ::shutdown(oldest->fd, SHUT_RDWR);  // its wait ends; its thread closes it
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - oldest->since);
    log("warn", "connection from " + oldest->peer + " closed after " + std::to_string(waited.count()) +
                    " ms without an association request, to make room for one from " + forPeer);
    return true;
}

void Acceptor::Impl::connection(Worker* w, int fd, const std::string& peer) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.requestTimeoutSeconds);
    Wait waited = waitForRequest(fd, deadline);
    {
        std::lock_guard<std::mutex> lock(m);
        if (w->evicted) waited = Wait::Closed;  // logged by the eviction
        w->waiting = false;
    }
    switch (waited) {
        case Wait::Ready:
            break;
        case Wait::Closed:  // a port check, the peer gave up, or evicted
            release(w, fd);
            return;
        case Wait::TimedOut:
            if (!stopping)
                log("warn", "connection from " + peer + " closed: no association request within " +
                                std::to_string(o.requestTimeoutSeconds) + "s");
            release(w, fd);
            return;
        case Wait::NotDicom:
            log("warn", "connection from " + peer + " closed: it did not start with a DICOM association request");
            release(w, fd);
            return;
        case Wait::TooLarge:
            log("warn", "connection from " + peer + " closed: association request larger than 1 MiB");
            release(w, fd);
            return;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);

    T_ASC_Association* assoc = nullptr;
    OFCondition c;
    {
        std::lock_guard<std::mutex> lock(externalSocketLock());
        dcmExternalSocketHandle.set(fd);
        c = ASC_receiveAssociation(net, &assoc, o.maxPdu, nullptr, nullptr, OFFalse, DUL_NOBLOCK, 1);
        dcmExternalSocketHandle.set(DCMNET_INVALID_SOCKET);
    }
    if (c.bad()) {
        if (!stopping) log("warn", "bad association request from " + peer + ": " + c.text());
        if (assoc && assoc->DULassociation) {
            forget(w);
            ASC_dropAssociation(assoc);  // closes the socket
            ASC_destroyAssociation(&assoc);
        } else {
            if (assoc) ASC_destroyAssociation(&assoc);
            release(w, fd);
        }
        return;
    }
    bool refuse;
    {
        std::lock_guard<std::mutex> lock(m);
        refuse = active >= o.maxAssociations || stopping;
        if (!refuse) ++active;
    }
    if (refuse) {
        forget(w);
        T_ASC_RejectParameters rej{ASC_RESULT_REJECTEDTRANSIENT, ASC_SOURCE_SERVICEPROVIDER_PRESENTATION_RELATED,
                                   ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED};
        ASC_rejectAssociation(assoc, &rej);
        ASC_dropSCPAssociation(assoc);
        ASC_destroyAssociation(&assoc);
        if (onRejected) onRejected();
        if (!stopping) {
            log("warn", "association from " + peer + " rejected: " + std::to_string(o.maxAssociations) +
                            " associations already open");
            if (o.event)
                o.event("connection.refused", "dicom association from " + peer + " rejected: " +
                                                  std::to_string(o.maxAssociations) + " associations already open");
        }
        return;
    }
    std::string calling = assoc->params ? std::string(assoc->params->DULparams.callingAPTitle) : std::string();
    std::string who = "dicom association from " + (calling.empty() ? std::string() : calling + "@") + peer;
    if (o.event) o.event("connection.opened", who);
    serve(assoc);  // negotiates, serves, releases and destroys the association
    if (o.event) o.event("connection.closed", who);
    std::lock_guard<std::mutex> lock(m);
    --active;
}

void Acceptor::stop() {
    Impl& s = *impl_;
    if (!s.acceptThread.joinable()) return;
    s.stopping = true;
    s.acceptThread.join();
    ::close(s.listenFd);
    s.listenFd = -1;
    {
        std::lock_guard<std::mutex> lock(s.m);
        for (auto& w : s.workers)
            if (!w.done && w.fd >= 0) ::shutdown(w.fd, SHUT_RDWR);
    }
    for (;;) {
        std::thread t;
        {
            std::lock_guard<std::mutex> lock(s.m);
            auto it = s.workers.begin();
            while (it != s.workers.end() && !it->thread.joinable()) ++it;
            if (it == s.workers.end()) break;
            t = std::move(it->thread);
        }
        t.join();
    }
    s.workers.clear();
    s.active = 0;
    if (s.net) ASC_dropNetwork(&s.net);
    s.net = nullptr;
}

}  // namespace junction::dicom::detail
