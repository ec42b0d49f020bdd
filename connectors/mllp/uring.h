// One event loop's io_uring: multishot receives into a ring of provided
// buffers, sends, polls, and the wait for all of them in one system call.
//
// An epoll loop makes a system call to learn which sockets are readable, one
// per socket to read it, and one to send the round's replies. With this ring a
// round costs two: one submits the round's sends and takes their results, one
// waits for the next events and brings the received bytes with them.
//
// Only the thread that opened the ring may use it (IORING_SETUP_SINGLE_ISSUER,
// DEFER_TASKRUN: completions are made ready when that thread waits, never by
// interrupting it). open() fails where the kernel lacks any of this (before
// Linux 6.1), where io_uring is disabled, or under a seccomp filter; the
// caller then serves with epoll.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace junction::mllp {

class Ring {
public:
    struct Completion {
        std::uint64_t data;  // as given to the request
        int res;             // bytes, or -errno
        bool more;           // a multishot request goes on
        int buffer;          // provided buffer holding the bytes (recycle it), or -1
    };

    // Null, with the reason in `why`, where a ring cannot be had.
    static std::unique_ptr<Ring> open(std::string* why);
    ~Ring();
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;

    // Requests, sent with the next submit. A multishot receive completes once
    // per arrival of bytes (in a provided buffer) until end of stream, an error,
    // cancel(), or -ENOBUFS when every buffer is in use (arm it again then).
    void receive(int fd, std::uint64_t data);
    // Readiness of `fd` (poll(2) events): every time it occurs (multishot) or once.
    void poll(int fd, unsigned events, bool multishot, std::uint64_t data);
    // Sends without waiting for room (-EAGAIN or fewer bytes when the socket is
    // full). The bytes must stay where they are until the send's completion.
    void send(int fd, const char* bytes, std::size_t size, std::uint64_t data);
    // Ends the request made with `data`; the cancel has no completion of its own.
    void cancel(std::uint64_t data);

    // Submits the requests made, waits until `minCompletions` completions are
    // ready (or `timeoutMs` passed; < 0: no limit) and appends every ready one
    // to `out`. False when the ring failed (`error` says why).
    bool submitAndWait(unsigned minCompletions, int timeoutMs, std::vector<Completion>& out, std::string* error);

    std::string_view buffer(int id, std::size_t size) const;
    // Gives a provided buffer back for further receives.
    void recycle(int id);

private:
    Ring();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace junction::mllp
