// The paced SQLite VFS (paced_vfs.h): writes to the database file and its WAL
// pass through it, and past every 256 KB written it starts their write-back.
#include "engine/store/sqlite/paced_vfs.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>

namespace junction::store::sqlite {

namespace {

constexpr sqlite3_int64 kPaceBytes = 256 * 1024;

sqlite3_vfs* realVfs = nullptr;
std::atomic<std::uint64_t> writebacks{0};
sqlite3_vfs paced;

// Our file: the real one follows it in the same allocation.
struct PacedFile {
    sqlite3_file base;
    int fd;                  // our own descriptor of the same file, for sync_file_range
    bool wait;               // wait for the write-back (main database) or only start it (WAL)
    sqlite3_int64 unpaced;   // bytes written since the last write-back
    sqlite3_file* real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
};

PacedFile* as(sqlite3_file* f) { return reinterpret_cast<PacedFile*>(f); }
sqlite3_file* real(sqlite3_file* f) { return as(f)->real(); }

int xClose(sqlite3_file* f) {
    PacedFile* p = as(f);
    int rc = p->real()->pMethods->xClose(p->real());
    if (p->fd >= 0) ::close(p->fd);
    p->fd = -1;
    return rc;
}
int xRead(sqlite3_file* f, void* buf, int n, sqlite3_int64 off) { return real(f)->pMethods->xRead(real(f), buf, n, off); }
int xWrite(sqlite3_file* f, const void* buf, int n, sqlite3_int64 off) {
    PacedFile* p = as(f);
    int rc = p->real()->pMethods->xWrite(p->real(), buf, n, off);
    if (rc == SQLITE_OK && p->fd >= 0) {
        p->unpaced += n;
        if (p->unpaced >= kPaceBytes) {
            // Start the write-back of what is dirty in the file (and wait for it).
            ::sync_file_range(p->fd, 0, 0,
                              p->wait ? SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER
                                      : SYNC_FILE_RANGE_WRITE);
            p->unpaced = 0;
            writebacks.fetch_add(1, std::memory_order_relaxed);
        }
    }
    return rc;
}
int xTruncate(sqlite3_file* f, sqlite3_int64 size) { return real(f)->pMethods->xTruncate(real(f), size); }
int xSync(sqlite3_file* f, int flags) { return real(f)->pMethods->xSync(real(f), flags); }
int xFileSize(sqlite3_file* f, sqlite3_int64* size) { return real(f)->pMethods->xFileSize(real(f), size); }
int xLock(sqlite3_file* f, int lock) { return real(f)->pMethods->xLock(real(f), lock); }
int xUnlock(sqlite3_file* f, int lock) { return real(f)->pMethods->xUnlock(real(f), lock); }
int xCheckReservedLock(sqlite3_file* f, int* out) { return real(f)->pMethods->xCheckReservedLock(real(f), out); }
int xFileControl(sqlite3_file* f, int op, void* arg) { return real(f)->pMethods->xFileControl(real(f), op, arg); }
int xSectorSize(sqlite3_file* f) { return real(f)->pMethods->xSectorSize(real(f)); }
int xDeviceCharacteristics(sqlite3_file* f) { return real(f)->pMethods->xDeviceCharacteristics(real(f)); }
int xShmMap(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
    return real(f)->pMethods->xShmMap(real(f), page, size, extend, out);
}
int xShmLock(sqlite3_file* f, int offset, int n, int flags) { return real(f)->pMethods->xShmLock(real(f), offset, n, flags); }
void xShmBarrier(sqlite3_file* f) { real(f)->pMethods->xShmBarrier(real(f)); }
int xShmUnmap(sqlite3_file* f, int deleteFlag) { return real(f)->pMethods->xShmUnmap(real(f), deleteFlag); }
int xFetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) { return real(f)->pMethods->xFetch(real(f), off, n, out); }
int xUnfetch(sqlite3_file* f, sqlite3_int64 off, void* p) { return real(f)->pMethods->xUnfetch(real(f), off, p); }

const sqlite3_io_methods kMethods = {
    3,         xClose,        xRead,      xWrite,        xTruncate,   xSync,
    xFileSize, xLock,         xUnlock,    xCheckReservedLock, xFileControl, xSectorSize,
    xDeviceCharacteristics, xShmMap, xShmLock, xShmBarrier, xShmUnmap, xFetch,
    xUnfetch,
};

int xOpen(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* outFlags) {
    PacedFile* p = as(f);
    p->base.pMethods = nullptr;
    p->fd = -1;
    p->unpaced = 0;
    int rc = realVfs->xOpen(realVfs, name, p->real(), flags, outFlags);
    if (rc != SQLITE_OK) return rc;
    // The main database and its WAL are paced (rollback journals and temporary files pass through).
    if ((flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) && name) p->fd = ::open(name, O_RDONLY | O_CLOEXEC);
    p->wait = (flags & SQLITE_OPEN_MAIN_DB) != 0;
    p->base.pMethods = &kMethods;
    return SQLITE_OK;
}

}  // namespace

const char* pacedVfs() {
    static std::once_flag once;
    std::call_once(once, [] {
        realVfs = sqlite3_vfs_find(nullptr);
        paced = *realVfs;
        paced.zName = "junction-paced";
        paced.szOsFile = static_cast<int>(sizeof(PacedFile)) + realVfs->szOsFile;
        paced.xOpen = xOpen;
        paced.pNext = nullptr;
        sqlite3_vfs_register(&paced, 0);
    });
    return paced.zName;
}

std::uint64_t pacedWritebacks() { return writebacks.load(); }

}  // namespace junction::store::sqlite
