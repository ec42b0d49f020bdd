// A loop's io_uring (uring.h) over liburing: the ring and its provided
// receive buffers, the requests (receive, poll, send, cancel) and the one
// call that submits them and waits for completions.
#include "connectors/mllp/uring.h"

#include <liburing.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace junction::mllp {

namespace {
constexpr unsigned kEntries = 256;       // requests per submit (more: submitted on the way)
constexpr unsigned kCqEntries = 4096;    // ready completions (beyond: the kernel holds them)
constexpr unsigned kBuffers = 64;        // provided receive buffers (a power of two)
constexpr unsigned kBufferBytes = 16384;
constexpr unsigned short kGroup = 0;
constexpr std::uint64_t kNoCompletion = ~0ull;  // a cancel's own result
}  // namespace

struct Ring::Impl {
    io_uring ring{};
    bool open = false;
    io_uring_buf_ring* bufRing = nullptr;
    std::size_t bufRingBytes = 0;
    std::unique_ptr<char[]> memory;

    ~Impl() {
        if (open) io_uring_queue_exit(&ring);  // ends every request still in flight
        if (bufRing) ::munmap(bufRing, bufRingBytes);
    }
    io_uring_sqe* sqe() {
        io_uring_sqe* s = io_uring_get_sqe(&ring);
        if (!s) {
            io_uring_submit(&ring);  // full: what is queued goes now
            s = io_uring_get_sqe(&ring);
        }
        return s;
    }
};

Ring::Ring() : impl_(std::make_unique<Impl>()) {}
Ring::~Ring() = default;

std::unique_ptr<Ring> Ring::open(std::string* why) {
    std::unique_ptr<Ring> r(new Ring());
    Impl& m = *r->impl_;
    io_uring_params p{};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = kCqEntries;
    int rc = io_uring_queue_init_params(kEntries, &m.ring, &p);
    if (rc < 0) {
        if (why) *why = std::string("io_uring: ") + std::strerror(-rc) + (rc == -EINVAL ? " (Linux 6.1 or later needed)" : "");
        return nullptr;
    }
    m.open = true;
    if (!(p.features & IORING_FEAT_EXT_ARG) || !(p.features & IORING_FEAT_NODROP)) {
        if (why) *why = "io_uring: the kernel lacks waiting with a timeout or keeping every completion";
        return nullptr;
    }
    m.bufRingBytes = kBuffers * sizeof(io_uring_buf);
    void* mem = ::mmap(nullptr, m.bufRingBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        if (why) *why = std::string("io_uring buffers: ") + std::strerror(errno);
        return nullptr;
    }
    m.bufRing = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(mem);
    reg.ring_entries = kBuffers;
    reg.bgid = kGroup;
    rc = io_uring_register_buf_ring(&m.ring, &reg, 0);
    if (rc < 0) {
        if (why) *why = std::string("io_uring buffers: ") + std::strerror(-rc);
        return nullptr;
    }
    m.memory.reset(new char[static_cast<std::size_t>(kBuffers) * kBufferBytes]);
    io_uring_buf_ring_init(m.bufRing);
    for (unsigned i = 0; i < kBuffers; ++i)
        io_uring_buf_ring_add(m.bufRing, m.memory.get() + static_cast<std::size_t>(i) * kBufferBytes, kBufferBytes,
                              static_cast<unsigned short>(i), io_uring_buf_ring_mask(kBuffers), static_cast<int>(i));
    io_uring_buf_ring_advance(m.bufRing, kBuffers);
    return r;
}

void Ring::receive(int fd, std::uint64_t data) {
    io_uring_sqe* s = impl_->sqe();
    io_uring_prep_recv_multishot(s, fd, nullptr, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = kGroup;
    io_uring_sqe_set_data64(s, data);
}

void Ring::poll(int fd, unsigned events, bool multishot, std::uint64_t data) {
    io_uring_sqe* s = impl_->sqe();
    if (multishot)
        io_uring_prep_poll_multishot(s, fd, events);
    else
        io_uring_prep_poll_add(s, fd, events);
    io_uring_sqe_set_data64(s, data);
}

void Ring::send(int fd, const char* bytes, std::size_t size, std::uint64_t data) {
    io_uring_sqe* s = impl_->sqe();
    io_uring_prep_send(s, fd, bytes, std::min<std::size_t>(size, INT_MAX), MSG_NOSIGNAL | MSG_DONTWAIT);
    io_uring_sqe_set_data64(s, data);
}

void Ring::cancel(std::uint64_t data) {
    io_uring_sqe* s = impl_->sqe();
    io_uring_prep_cancel64(s, data, 0);
    io_uring_sqe_set_data64(s, kNoCompletion);
}

bool Ring::submitAndWait(unsigned minCompletions, int timeoutMs, std::vector<Completion>& out, std::string* error) {
    Impl& m = *impl_;
    int rc;
    if (timeoutMs >= 0 && minCompletions > 0) {
        __kernel_timespec ts{};
        ts.tv_sec = timeoutMs / 1000;
        ts.tv_nsec = static_cast<long long>(timeoutMs % 1000) * 1000000;
        io_uring_cqe* first = nullptr;
        rc = io_uring_submit_and_wait_timeout(&m.ring, &first, minCompletions, &ts, nullptr);
    } else {
        rc = io_uring_submit_and_wait(&m.ring, minCompletions);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        if (error) *error = std::string("io_uring_enter: ") + std::strerror(-rc);
        return false;
    }
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&m.ring, head, cqe) {
        ++seen;
        if (cqe->user_data == kNoCompletion) continue;
        out.push_back({cqe->user_data, cqe->res, (cqe->flags & IORING_CQE_F_MORE) != 0,
                       (cqe->flags & IORING_CQE_F_BUFFER) ? static_cast<int>(cqe->flags >> IORING_CQE_BUFFER_SHIFT) : -1});
    }
    io_uring_cq_advance(&m.ring, seen);
    return true;
}

std::string_view Ring::buffer(int id, std::size_t size) const {
    return {impl_->memory.get() + static_cast<std::size_t>(id) * kBufferBytes, std::min<std::size_t>(size, kBufferBytes)};
}

void Ring::recycle(int id) {
    Impl& m = *impl_;
    io_uring_buf_ring_add(m.bufRing, m.memory.get() + static_cast<std::size_t>(id) * kBufferBytes, kBufferBytes,
                          static_cast<unsigned short>(id), io_uring_buf_ring_mask(kBuffers), 0);
    io_uring_buf_ring_advance(m.bufRing, 1);
}

}  // namespace junction::mllp
