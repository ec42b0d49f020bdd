// The store's lock file: flock(LOCK_EX) on `<database>.lock`, the holder's pid
// written in it for the message a second engine prints.
#include "engine/store/sqlite/store_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace junction::store {

namespace {

std::string holderOf(int fd) {
    char buf[32] = {};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    std::string pid = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    return pid.empty() ? "another process" : "process " + pid;
}

}  // namespace

StoreLock::StoreLock(const std::string& dbPath, std::chrono::milliseconds wait) {
    std::string path = pathFor(dbPath);
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd_ < 0) throw std::runtime_error("cannot open the store's lock file " + path + ": " + std::strerror(errno));
    auto until = std::chrono::steady_clock::now() + wait;
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err != EWOULDBLOCK || std::chrono::steady_clock::now() >= until) {
            std::string why = err == EWOULDBLOCK ? "is in use by " + holderOf(fd_)
                                                 : std::string("cannot be locked: ") + std::strerror(err);
            ::close(fd_);
            fd_ = -1;
            throw std::runtime_error("store " + dbPath + " " + why);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    bool wrote = ::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, pid.data(), pid.size(), 0) == static_cast<ssize_t>(pid.size());
    (void)wrote;  // the lock holds without the pid; only a second engine's message is vaguer
}

StoreLock::~StoreLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the flock; the file stays (removing it would race a new holder)
}

}  // namespace junction::store
