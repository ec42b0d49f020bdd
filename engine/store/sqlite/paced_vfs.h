// A SQLite VFS over the default one that paces the write-back of the main
// database file and its WAL: past every `kPaceBytes` (256 KB) written, the pages
// written so far are sent to the disk.
//
// The store's writer and checkpointer use it. With only the operating
// system's write-back, the WAL's pages stay in memory until a checkpoint syncs
// the WAL (16 MB here), and a checkpoint copies megabytes of WAL frames into the
// database's page cache in a few milliseconds, then flushes them all at once:
// tens of milliseconds during which every other flush on the same disk (the
// intake journal's, that ACKs wait for with sync: full) queues behind it.
// Paced, the checkpoint's writes reach the disk in small pieces, and a journal
// flush waits at most for one of them. The WAL's write-back is started every
// `kPaceBytes` without waiting for it (the writer is not held up); the main
// database's is waited for (only the checkpointer writes it, in the background).
// Private to engine/store.
#pragma once

#include <cstdint>

namespace junction::store::sqlite {

// Registers the VFS (once) and returns its name, for sqlite3_open_v2.
const char* pacedVfs();

// Write-backs started so far by the VFS, in every file (tests).
std::uint64_t pacedWritebacks();

}  // namespace junction::store::sqlite
