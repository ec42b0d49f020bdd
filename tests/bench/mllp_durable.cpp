// mllpdurable: the durable floor, the peer of a store-before-ACK listener
// (Junction with store sync: full) in scripts/bench.sh. Like mllpecho it
// answers every framed message with a minimal AA ACK echoing MSH-10, but only
// once the message is on disk: it is appended to FILE (one line each) and
// fdatasync'ed first. Syncs are shared across connections (group commit): one
// fdatasync covers every message appended before it started, and a connection
// waits only for the first sync that covers its own messages. Nothing is
// parsed or indexed, so this is the best any engine that stores before it
// ACKs can do on this disk with the same senders.
//
//   mllpdurable PORT FILE      (FILE is truncated at start)
#include <fcntl.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "tests/support/loopback_server.h"

namespace {

using namespace junction::testing;

// An append-only file whose writers share fdatasyncs. Writers add to
// `pending_`; the syncer thread takes all of it as one batch (batch number
// `taken_`), writes and syncs it, and then publishes `synced_`.
class GroupCommitFile {
public:
    explicit GroupCommitFile(int fd) : fd_(fd) {}

    // Appends data; returns once a sync that covers it has completed.
    void appendDurably(std::string_view data) {
        std::unique_lock<std::mutex> lock(mutex_);
        pending_ += data;
        // Whatever is pending now goes out with the next batch taken.
        unsigned long batch = taken_ + 1;
        wake_.notify_one();
        done_.wait(lock, [&] { return synced_ >= batch; });
    }

    // The syncer: runs for ever on a thread of its own.
    [[noreturn]] void syncForever() {
        std::string batch;
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            wake_.wait(lock, [&] { return !pending_.empty(); });
            batch.swap(pending_);
            unsigned long number = ++taken_;
            lock.unlock();
            writeAndSync(batch);
            batch.clear();
            lock.lock();
            synced_ = number;
            done_.notify_all();
        }
    }

private:
    void writeAndSync(std::string_view data) {
        while (!data.empty()) {
            ssize_t n = write(fd_, data.data(), data.size());
            if (n < 0) fail("write");
            data.remove_prefix(static_cast<std::size_t>(n));
        }
        if (fdatasync(fd_) != 0) fail("fdatasync");
    }

    [[noreturn]] static void fail(const char* what) {
        std::perror(what);
        std::_Exit(1);  // a floor that cannot write has nothing to measure
    }

    int fd_;
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    std::string pending_;
    unsigned long taken_ = 0;   // batches the syncer has taken
    unsigned long synced_ = 0;  // the last batch on disk
};

GroupCommitFile* journal = nullptr;

// Serves one connection: the messages that arrived together are appended in
// one go and acknowledged in one send, once they are on disk.
void storeAndAnswer(int fd) {
    std::string records;
    acknowledgeMessages(
        fd, "DURABLE",
        [&](std::string_view msg) {
            records += msg;
            records += '\n';
        },
        [&] {
            journal->appendDurably(records);
            records.clear();
        });
}

}  // namespace

int main(int argc, char** argv) {
    int listener = listenOnPortArgument(argc, argv, 2, "mllpdurable PORT FILE");
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (out < 0) {
        std::perror(argv[2]);
        return 2;
    }
    static GroupCommitFile file(out);
    journal = &file;
    std::thread([] { journal->syncForever(); }).detach();
    serveConnections(listener, storeAndAnswer);
}
