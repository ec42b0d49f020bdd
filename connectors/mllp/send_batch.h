// Sends to several sockets in one system call (io_uring), for an event loop
// that answers many connections in one round.
//
// Sending a reply wakes the peer waiting for it; the kernel often runs that
// peer on the sender's CPU and switches to it as the send returns. With one
// send() per reply, a loop answering four connections is switched out up to
// four times a round; with its replies sent together it is switched out once
// at most, and gives every peer its reply sooner.
//
// Where io_uring cannot be used (an old kernel, a seccomp filter,
// kernel.io_uring_disabled), available() is false and the caller sends one by
// one as before.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace junction::mllp {

class SendBatch {
public:
    // `depth`: sends per system call (more are sent in further calls).
    explicit SendBatch(unsigned depth = 64);
    ~SendBatch();
    SendBatch(const SendBatch&) = delete;
    SendBatch& operator=(const SendBatch&) = delete;

    bool available() const;
    // Queues a send of `size` bytes at `data` to `fd`. The bytes must stay
    // where they are until run() returns.
    void add(int fd, const char* data, std::size_t size, std::uint64_t key);
    std::size_t pending() const;
    // Sends everything queued without waiting for room in any socket, and
    // calls `done(key, result)` for each, in the order queued: the bytes sent
    // (possibly fewer than asked), or -errno (-EAGAIN: the socket is full).
    void run(const std::function<void(std::uint64_t key, int result)>& done);
    // System calls made by run() (stats, tests).
    std::uint64_t calls() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace junction::mllp
