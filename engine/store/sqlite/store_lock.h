// One engine per store: an exclusive flock on `<database>.lock`, held for the
// store's life. Two engines sharing a store would take over each other's intake
// journal (one's recovery applies and deletes the segments the other still
// appends to), losing acknowledged messages.
#pragma once

#include <chrono>
#include <string>

namespace junction::store {

class StoreLock {
public:
    // Takes the lock, waiting up to `wait` for a holder to let go (a restart that
    // overlaps the end of the previous process); then throws
    // std::runtime_error("store PATH is in use by process N").
    StoreLock(const std::string& dbPath, std::chrono::milliseconds wait);
    ~StoreLock();
    StoreLock(const StoreLock&) = delete;
    StoreLock& operator=(const StoreLock&) = delete;

    static std::string pathFor(const std::string& dbPath) { return dbPath + ".lock"; }

private:
    int fd_ = -1;
};

}  // namespace junction::store
