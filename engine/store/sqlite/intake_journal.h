// The intake journal: an append-only log in front of the SQLite store.
//
// A new message is durable once its record is in the journal (one sequential
// write, plus a shared fdatasync when the store syncs), so a source can
// acknowledge it without waiting for a SQLite commit. An event loop's records
// are written together at the end of its round (appendInRound). The store's
// writer thread applies journaled messages to SQLite later in large
// transactions, and drops a journal segment once every record in it is applied.
// At open, records not yet applied are read back and applied first (crash
// recovery).
//
// Content files: a record appended with a content reference (append's
// `contentRef`) keeps its message's raw content in the journal instead of a
// second copy in SQLite, which stores only the reference (segment number and
// offset). Once applied, a segment holding such records is renamed, not
// deleted: <db>-raw.<n>.<last id>. readContent() reads a record's raw content
// back from either kind of file; dropContentBelow() deletes the content files
// whose messages are all pruned.
//
// Files: <db>-jnl.<n> (n = 1, 2, ...), a new segment every `segmentBytes`.
// When the journal syncs, segments are zero-filled ahead of use (a background
// thread keeps a spare, <db>-jnl.spare, ready): an fdatasync after an append
// that grows a file also flushes its size and extents, and costs three times
// as much on ext4 as one after an overwrite. A zero length ends a segment.
// Record: u32 payload length, u32 CRC-32 of the payload, payload (see
// encodeRecord). A torn or corrupt tail (a crash in the middle of a write) ends
// the readable part of a segment; such a record was never acknowledged.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <map>
#include <mutex>
#include <optional>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "engine/store/message_store.h"

namespace junction::store {

struct JournalRecord {
    MessageId id = 0;
    std::int64_t receivedMs = 0;
    NewMessage message;     // its mark (format 3) in message.mark
    bool markOnly = false;  // a source mark alone (encodeMarkRecord): `message` holds only the mark
    std::uint64_t ref = 0;  // where it is (see append's contentRef), from recover()
};

// Record payload codec (exposed for tests).
std::string encodeRecord(MessageId id, std::int64_t receivedMs, const NewMessage& m);
// A record of a source mark alone (MessageStore::saveMark), ordered with the
// messages by its id as they are.
std::string encodeMarkRecord(MessageId id, std::int64_t receivedMs, const SourceMark& mark);
// Sets the id of an encoded record (encode first, take the id under the ordering lock).
void setRecordId(std::string& record, MessageId id);
// Throws std::runtime_error on a malformed payload.
JournalRecord decodeRecord(std::string_view payload);

// Without the journal open (a store with a quota journals nothing, but may
// find content files of earlier runs): IntakeJournal::readContent, finding the
// file by name, and IntakeJournal::dropContentBelow for the files there.
std::optional<std::string> readContentFile(const std::string& dbPath, std::uint64_t ref, MessageId id);
std::size_t dropContentFilesBelow(const std::string& dbPath, MessageId firstLiveId);

class IntakeJournal {
public:
    // Opens the journal of database `dbPath`; existing segments are kept for
    // recover(). Throws std::runtime_error when a segment cannot be created.
    IntakeJournal(const std::string& dbPath, bool syncEveryAppend, std::uint64_t segmentBytes = 64u << 20);
    ~IntakeJournal();
    IntakeJournal(const IntakeJournal&) = delete;
    IntakeJournal& operator=(const IntakeJournal&) = delete;

    // Every readable record of the existing segments, oldest first. `warnings`
    // receives a line per corrupt tail. Call once, before the first append.
    std::vector<JournalRecord> recover(std::vector<std::string>* warnings = nullptr);

    // Appends one record (the caller holds its own ordering lock: records are
    // written in call order). Returns a sequence number for whenDurable().
    // Throws std::runtime_error on an I/O error (nothing is written then).
    // With `contentRef`, the record's segment is kept as a content file once
    // applied, and *contentRef receives the record's reference for readContent().
    std::uint64_t append(MessageId id, std::string_view record, std::uint64_t* contentRef = nullptr);
    // On an event loop's thread (util::Round): appends one record to be
    // written at the end of the round, in one write with every record appended
    // meanwhile (a loop answering several connections makes one write a round,
    // not one a message), and runs `then` after that, as whenDurable does
    // (with the write's error if it failed). Runs no callback before it
    // returns. Throws std::runtime_error when a new segment cannot be created;
    // `then` is then neither run nor taken (it stays with the caller).
    void appendInRound(MessageId id, std::string_view record, std::function<void(const std::string& error)>&& then,
                       std::uint64_t* contentRef = nullptr);
    // Runs `then` once the record of `seq` is on disk: at once (on the calling
    // thread) when the journal does not sync, else after the fdatasync that
    // covers it - one fdatasync for every record appended while the previous
    // one ran (group commit without holding the appender). That fdatasync runs
    // on the journal's sync thread, or, when the caller is an event loop's
    // thread (util::Round), on that thread at the end of its round: no hand-off
    // to another thread and back for the loop's ACKs. `then` gets "" or the
    // error of a failed sync; it must not block.
    void whenDurable(std::uint64_t seq, std::function<void(const std::string& error)> then);
    // Receives the records whose write failed (their waiters or append's caller
    // get the error, and later records take their place in the segment): a
    // content reference to them is void. Called on the appending thread, outside
    // the journal's lock. Set once, before the first append.
    void onWriteFailure(std::function<void(std::vector<JournalRecord>&& failed)> handler);
    // Every record with an id <= `appliedId` is in SQLite: delete the segments
    // that hold only such records (never the one being written), or keep them
    // as content files when a record in them was appended with a contentRef.
    void release(MessageId appliedId);
    // The segment of a recovered record (JournalRecord::ref) is kept as a
    // content file once applied (a reference into it may be in SQLite already).
    void keep(std::uint64_t ref);
    // The raw content of the record at `ref`, which must be message `id`'s;
    // nullopt when it is not there (its file was dropped, or its write failed
    // and later records took its place). Any thread.
    std::optional<std::string> readContent(std::uint64_t ref, MessageId id) const;
    // Deletes the content files whose records all have ids below `firstLiveId`
    // (their messages are pruned). Returns how many were deleted.
    std::size_t dropContentBelow(MessageId firstLiveId);
    // Number of content files (tests).
    std::size_t contentFiles() const;
    // Would release(appliedId) drop a segment?
    bool releasable(MessageId appliedId) const;
    // Number of segment files (tests).
    std::size_t segments() const;
    // fdatasync calls made for waiting records so far (tests).
    std::uint64_t syncs() const { return syncs_.load(); }
    // Writes of records so far, each of one record or of a round's (tests).
    std::uint64_t writes() const { return writes_.load(); }
    // Every record is applied (a clean shutdown): delete every segment, or keep
    // it as a content file (see release).
    void retireAll();

private:
    struct Segment {
        std::uint64_t number = 0;
        std::string path;
        MessageId lastId = 0;  // highest id written to it (0 = none)
        bool keep = false;     // holds content referenced from SQLite
    };
    struct ContentFile {
        std::string path;
        MessageId lastId = 0;
    };
    struct File {
        int fd = -1;
        explicit File(int f) : fd(f) {}
        ~File();
    };
    using Then = std::function<void(const std::string& error)>;
    struct Waiter {
        std::uint64_t seq;
        Then then;
        bool written = false;  // its record's write is over (see error)
        std::string error;
    };
    void openSegment(std::uint64_t number);  // under mu_
    // Adds a record to pending_ (under mu_, writing pending_ first when the
    // segment is full); returns its sequence number.
    std::uint64_t add(MessageId id, std::string_view record, std::uint64_t* contentRef);
    void retire(const Segment& s);  // under mu_: delete, or rename to a content file
    bool writePending(std::string* error);  // under mu_
    void reportFailed();                     // not under mu_: hands failed_ to the handler
    void writeAtRoundEnd();
    void prepareLoop();
    std::string spareName() const;

    std::string base_;
    bool sync_;
    std::uint64_t segmentBytes_;
    std::string rotateError_;  // why the last new segment could not be made (guarded by mu_)
    std::chrono::steady_clock::time_point rotateRetry_;
    mutable std::mutex mu_;
    std::deque<Segment> segments_;  // the last one is written
    std::map<std::uint64_t, ContentFile> content_;  // by segment number
    std::shared_ptr<File> file_;  // shared: a sync in progress keeps a rotated-away file open
    std::uint64_t size_ = 0;        // bytes in the current segment
    std::uint64_t written_ = 0;     // records appended (sequence)
    // Records appended in rounds and not written yet (the last bytes of the
    // segment, at size_ - pending_.size()): written at the end of a round, or
    // before the next record written at once.
    std::string pending_;
    std::function<void(std::vector<JournalRecord>&&)> failureHandler_;
    std::vector<JournalRecord> failed_;  // records whose write failed, not reported yet
    std::vector<Waiter> roundWaiters_;  // answered at the end of a round, on its thread
    // group fdatasync, on its own thread or at the end of a loop's round
    void syncLoop();
    void syncAtRoundEnd();
    void syncOnce(std::vector<std::function<void(const std::string&)>>& ready);
    bool syncing_ = false;  // an fdatasync is running (on the sync thread or a loop's)
    std::atomic<std::uint64_t> syncs_{0}, writes_{0};
    std::mutex syncMu_;
    std::condition_variable syncCv_;
    std::deque<std::pair<std::uint64_t, std::function<void(const std::string&)>>> waiting_;
    bool syncStop_ = false;
    std::thread syncer_;
    // zero-filled spare segment (sync mode)
    std::mutex prepMu_;
    std::condition_variable prepCv_;
    bool spareReady_ = false, prepStop_ = false;
    std::thread preparer_;
};

}  // namespace junction::store
