#include "connectors/mllp/send_batch.h"

#include <liburing.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <vector>

namespace junction::mllp {

struct SendBatch::Impl {
    struct Entry {
        int fd;
        const char* data;
        std::size_t size;
        std::uint64_t key;
        int result;
    };
    io_uring ring{};
    bool ok = false;
    unsigned depth = 1;
    std::vector<Entry> entries;
    std::uint64_t calls = 0;

    // A submission that failed may leave entries in the ring that would go out
    // with a later one: give the ring up, the caller sends one by one from then on.
    void giveUp() {
        if (!ok) return;
        io_uring_queue_exit(&ring);
        ok = false;
    }
    // Sends entries [begin, end) (at most `depth`) in one call.
    void sendChunk(std::size_t begin, std::size_t end) {
        unsigned n = 0;
        for (std::size_t k = begin; k < end; ++k) {
            io_uring_sqe* sqe = io_uring_get_sqe(&ring);
            if (!sqe) break;  // cannot happen: the ring is empty and holds `depth`
            const Entry& e = entries[k];
            // MSG_DONTWAIT: a full socket completes at once with -EAGAIN, never
            // waits in the kernel with the caller's buffer.
            io_uring_prep_send(sqe, e.fd, e.data, std::min<std::size_t>(e.size, INT_MAX), MSG_NOSIGNAL | MSG_DONTWAIT);
            io_uring_sqe_set_data64(sqe, k);
            ++n;
        }
        int rc;
        do {
            rc = io_uring_submit_and_wait(&ring, n);
        } while (rc == -EINTR);
        ++calls;
        if (rc < 0 || static_cast<unsigned>(rc) != n) {
            giveUp();
            return;  // results stay -EAGAIN: the caller sends them itself
        }
        while (n > 0) {
            io_uring_cqe* cqe = nullptr;
            int w = io_uring_wait_cqe(&ring, &cqe);
            if (w == -EINTR) continue;
            if (w < 0) {
                giveUp();
                return;
            }
            std::uint64_t k = io_uring_cqe_get_data64(cqe);
            if (k >= begin && k < end) entries[k].result = cqe->res;
            io_uring_cqe_seen(&ring, cqe);
            --n;
        }
    }
};

SendBatch::SendBatch(unsigned depth) : impl_(std::make_unique<Impl>()) {
    impl_->depth = std::max(1u, depth);
    impl_->ok = io_uring_queue_init(impl_->depth, &impl_->ring, 0) == 0;
}

SendBatch::~SendBatch() { impl_->giveUp(); }

bool SendBatch::available() const { return impl_->ok; }

void SendBatch::add(int fd, const char* data, std::size_t size, std::uint64_t key) {
    impl_->entries.push_back({fd, data, size, key, -EAGAIN});
}

std::size_t SendBatch::pending() const { return impl_->entries.size(); }

std::uint64_t SendBatch::calls() const { return impl_->calls; }

void SendBatch::run(const std::function<void(std::uint64_t key, int result)>& done) {
    Impl& m = *impl_;
    for (std::size_t begin = 0; begin < m.entries.size() && m.ok; begin += m.depth)
        m.sendChunk(begin, std::min(m.entries.size(), begin + m.depth));
    // Take the entries first: `done` may queue the next round's sends.
    std::vector<Impl::Entry> finished;
    finished.swap(m.entries);
    for (const auto& e : finished) done(e.key, e.result);
}

}  // namespace junction::mllp
