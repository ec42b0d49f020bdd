// The listener's epoll backend (see listener_impl.h): a loop learns which of
// its sockets are ready with epoll_wait, reads each readable one with recv,
// and its replies go out one by one (ListenerCore::flush). It serves where
// io_uring cannot or is not wanted, and takes over a loop whose ring failed.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "connectors/mllp/listener_impl.h"

namespace junction::mllp::detail {

namespace {

class EpollBackend final : public Backend {
public:
    EpollBackend(ListenerCore& core, Loop& l, int ep) : Backend(false), m_(core), l_(l), ep_(ep) {}
    ~EpollBackend() override { ::close(ep_); }

    Waited wait(int timeoutMs) override;
    void watchListen(bool on) override;
    bool add(Conn& c) override;
    void watch(Conn& c) override;
    void remove(Conn& c) override;

private:
    void readable(Conn& c);

    ListenerCore& m_;
    Loop& l_;
    int ep_;
    char buffer_[65536];
};

Backend::Waited EpollBackend::wait(int timeoutMs) {
    epoll_event events[64];
    int n = ::epoll_wait(ep_, events, 64, timeoutMs);
    if (n < 0 && errno != EINTR) {
        m_.log("error", "mllp :" + std::to_string(m_.o.port) + ": epoll_wait: " + std::strerror(errno));
        return Waited::Failed;
    }
    for (int i = 0; i < n && !m_.stopping; ++i) {
        std::uint64_t key = events[i].data.u64;
        if (key == kListenKey) {
            m_.acceptAll(l_);
            continue;
        }
        if (key == kWakeKey) {
            m_.takeMail(l_);
            continue;
        }
        auto it = l_.conns.find(key);
        if (it == l_.conns.end() || it->second->dead) continue;
        Conn& c = *it->second;
        std::uint32_t e = events[i].events;
        if (e & EPOLLOUT) m_.writable(l_, c);
        if (!c.dead && (e & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
            if ((c.busy || c.backlogged()) && !(e & (EPOLLHUP | EPOLLERR))) {
                // Input while a message is in processing, or while the peer
                // leaves its replies unread: wait for that first.
                c.readPaused = true;
                watch(c);
            } else {
                readable(c);
            }
        }
    }
    return Waited::Ok;
}

void EpollBackend::readable(Conn& c) {
    ssize_t n = ::recv(c.fd, buffer_, sizeof buffer_, 0);
    if (n == 0) {
        m_.kill(l_, c);
        return;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        if (errno != ECONNRESET) m_.log("warn", "mllp " + c.peer + ": " + std::strerror(errno));
        m_.kill(l_, c);
        return;
    }
    m_.input(l_, c, buffer_, static_cast<std::size_t>(n));
    if (!c.dead) m_.pump(l_, c);
}

void EpollBackend::watchListen(bool on) {
    epoll_event ev{};
    ev.events = on ? static_cast<std::uint32_t>(EPOLLIN) : 0u;
    ev.data.u64 = kListenKey;
    ::epoll_ctl(ep_, EPOLL_CTL_MOD, m_.listenFd, &ev);
}

bool EpollBackend::add(Conn& c) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = c.id;
    return ::epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) == 0;
}

void EpollBackend::watch(Conn& c) {
    epoll_event ev{};
    ev.events = (c.readPaused || c.ended ? 0u : static_cast<std::uint32_t>(EPOLLIN)) | (c.wantWrite ? EPOLLOUT : 0u);
    ev.data.u64 = c.id;
    ::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
}

void EpollBackend::remove(Conn& c) { ::epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr); }

}  // namespace

std::unique_ptr<Backend> openEpoll(ListenerCore& core, Loop& l, int listenFd) {
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return nullptr;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeKey;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, l.mailbox->wakeFd, &ev);
    if (listenFd >= 0) {
        ev.data.u64 = kListenKey;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, listenFd, &ev);
    }
    return std::make_unique<EpollBackend>(core, l, ep);
}

}  // namespace junction::mllp::detail
