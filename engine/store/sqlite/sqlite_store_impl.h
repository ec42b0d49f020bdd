// SqliteStore, the SQLite implementation of MessageStore: its declaration and
// the helpers its files share. Internal to engine/store/sqlite, included only by
// the files that implement it; the public entry is openSqliteStore
// (engine/store/message_store.h).
//
// Layout (schema version 4, PRAGMA user_version):
//   messages     one row per message (metadata + search columns), INTEGER PRIMARY KEY id
//   deliveries   one row per (message, destination), WITHOUT ROWID, with the channel
//                copied in so that the partial index deliveries_queued answers
//                "Queued deliveries of a channel, oldest first" directly
//   partitions   day (yyyymmdd, UTC) -> first message id of that day
//   content_<yyyymmdd>  raw / transformed / encoded / response / log / attempts of the messages
//                whose ids fall in that day's id range. A copy is not written
//                twice: an empty transformed row means "the same as the raw
//                message", an empty encoded row "the same as the transformed
//                message" (or the raw one when no transformed is kept). The raw
//                content of a
//                journaled message kept by its storage mode is not copied here:
//                messages.raw_ref points at its record in the intake journal,
//                whose segment is then kept as a content file (schema version 2)
//   store_meta   key/value (last_id high-water mark, written by prune)
//
// The text index of the raw content (StoreOptions::textIndex) is a database of
// its own beside the store, <db>-text, written by a thread of its own at idle
// CPU priority, behind the writer (see sqlite_store_text.cpp).
//   source_marks key -> value of each source mark (MessageStore::saveMark,
//                NewMessage::mark) and the id of the record that wrote it:
//                a mark is only replaced by one of a later record, so that
//                replaying the journal after a crash never puts an older
//                value back (schema version 3). Ids of mark-only records
//                are taken from the message ids (never reused; a gap in
//                the messages' ids)
//   message_copies copy -> original: a message made by reprocessing another
//                (NewMessage::copyOf; schema version 4), written with the
//                copy (its journal record, its insert's transaction); deleted
//                with the copy (prune, deleteMessage)
//
// Writes: one writer thread owns the write connection (group commit). Public write
// calls enqueue and return; the writer takes everything queued, runs it in one
// BEGIN IMMEDIATE ... COMMIT (at most maxBatchRows per transaction) and then runs
// the callbacks in submission order. When a batch fails it is rolled back and
// replayed one write per transaction so that only the bad writes fail.
//
// Ids are preassigned by the writer (next = max(id, last_id, ...) + 1), never
// reused: prune records the high-water mark before deleting.
//
// Partitions: the writer assigns each new message to the current day partition
// (days never go backwards in id order), so every day owns a contiguous id range.
// Content of a message always lives in the partition of its id, whenever it is
// written. prune runs on the writer thread: it deletes prunable metadata rows by
// id range (per partition, in chunks), then DROPs the day's content table when no
// message of any channel is left in its range (and it is not the newest
// partition, which inserts still use) followed by PRAGMA incremental_vacuum;
// otherwise (other channels still hold messages of that day) it deletes the
// orphaned content rows instead - those pages go to the freelist and are reused,
// but the file does not shrink until the whole day is pruned.
//
// Reads use a second connection guarded by a mutex, each call in one read
// transaction (consistent snapshot; WAL lets it run beside the writer).
// Checkpoints (WAL -> database file) run on a third connection and thread,
// requested by the writer's WAL hook every 16 MB of WAL.
//
// Statuses are stored as text ('Received', 'Queued', ...; see dbStatus). Only the
// rare states are indexed (partial indexes for Received = recovery and Error =
// console); searches for other statuses walk messages_channel newest first.
//
// The implementation, by concern:
//   sqlite_store.cpp             opening (connections, schema, statements, what the
//                                intake journal holds from the last run) and closing
//   sqlite_store_writer.cpp      the write queue, the writer thread (batches, group
//                                commit, the content rows it writes), the disk
//                                budget, checkpoints
//   sqlite_store_partitions.cpp  day partitions (their creation) and prune
//   sqlite_store_readers.cpp     reads (recovery, searches, a message's detail, counts)
//   sqlite_store_text.cpp        the text index: its tables, its rows, text searches
//   sqlite_store_repairs.cpp     operators' repairs: links of reprocessed messages,
//                                a delivery queued again, a message deleted
#pragma once

#include "engine/store/message_store.h"
#include "engine/store/sqlite/intake_journal.h"
#include "engine/store/sqlite/sqlite_db.h"
#include "engine/store/sqlite/store_lock.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

namespace junction::store::detail {

using sqlite::Stmt;
using sqlite::Use;

constexpr int kPageBytes = 16384;  // page size of a new store

// kLog: the message's log (destination "": processing; a destination's name:
// its response script's lines); kAttempts: a destination's failed attempts.
// Both are written only when there is something to say, appended to by
// concatenation (message_log.h's line format).
enum ContentKind : int { kRaw = 0, kTransformed = 1, kEncoded = 2, kResponse = 3, kLog = 4, kAttempts = 5 };
// Every kind, for the SQL that reads or deletes all content of a message.
#define JUNCTION_CONTENT_KINDS "(0, 1, 2, 3, 4, 5)"

inline std::int64_t toMs(Clock::time_point tp) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count();
}

// yyyymmdd (UTC) of a time in ms since the epoch.
inline int dayOf(std::int64_t ms) {
    using namespace std::chrono;
    sys_days d = floor<days>(sys_time<milliseconds>(milliseconds(ms)));
    year_month_day ymd{d};
    return static_cast<int>(ymd.year()) * 10000 + static_cast<int>(static_cast<unsigned>(ymd.month())) * 100 +
           static_cast<int>(static_cast<unsigned>(ymd.day()));
}

inline std::string contentTable(int day) { return "content_" + std::to_string(day); }

inline bool keepsAll(StorageMode m) { return m == StorageMode::Development; }
inline bool keepsRaw(StorageMode m) { return m == StorageMode::Development || m == StorageMode::Production; }

// Encoded content of a delivery in state `s` is kept when...
inline bool keepEncoded(StorageMode m, Status s) {
    if (m == StorageMode::Development) return true;
    if (m == StorageMode::Production) return s == Status::Queued || s == Status::Error;  // until Sent
    return s == Status::Queued;                                                          // until sent
}

// What a journaled insert holds in memory until it is applied (about).
inline std::size_t heldBytes(const NewMessage& m) {
    std::size_t n = 512 + m.raw.size();
    if (m.processed) {
        n += m.processed->transformed.size();
        for (const auto& d : m.processed->deliveries) n += 64 + d.encoded.size();
    }
    return n;
}

// Status as stored in the database: fixed here (the SQL and the partial indexes
// use these literals), independent of toString(Status), which is for display.
inline const char* dbStatus(Status s) {
    switch (s) {
        case Status::Received: return "Received";
        case Status::Filtered: return "Filtered";
        case Status::Transformed: return "Transformed";
        case Status::Queued: return "Queued";
        case Status::Sent: return "Sent";
        case Status::Error: return "Error";
    }
    return "Error";
}

struct Partition {
    int day = 0;
    MessageId firstId = 0;
    bool dropped = false;
};

// Index of the partition holding `id` (-1 if none).
inline int partitionIndex(const std::vector<Partition>& parts, MessageId id) {
    if (parts.empty() || id < parts.front().firstId) return -1;
    if (id >= parts.back().firstId) return static_cast<int>(parts.size()) - 1;
    auto it = std::upper_bound(parts.begin(), parts.end(), id,
                               [](MessageId v, const Partition& p) { return v < p.firstId; });
    return static_cast<int>(it - parts.begin()) - 1;
}

// The columns of a MessageSummary (summaryFrom reads them), of messages m.
inline constexpr const char* kSummaryColumns =
    "SELECT m.id, m.channel, m.received_at, m.status, m.data_type, m.source, m.message_type, m.control_id,"
    " m.patient_id, m.accession, m.error";
MessageSummary summaryFrom(const Use& u);

class SqliteStore final : public MessageStore {
public:
    SqliteStore(const std::string& path, const StoreOptions& options);
    ~SqliteStore() override;

    void insert(NewMessage message, InsertCompletion done) override;
    void recordProcessed(ProcessedMessage processed, Completion done) override;
    void recordDelivery(DeliveryUpdate update, Completion done) override;
    void flush() override;
    void saveMark(SourceMark mark, Completion done) override;
    std::optional<std::string> sourceMark(const std::string& key) override;

    std::vector<PendingMessage> pendingMessages(const std::string& channel, std::size_t limit) override;
    std::vector<PendingDelivery> pendingDeliveries(const std::string& channel, std::size_t limit) override;
    std::vector<PendingDelivery> pendingDeliveries(const std::string& channel, const std::string& destination,
                                                   MessageId after, MessageId through, std::size_t limit,
                                                   bool waitForWrites) override;
    std::uint64_t countQueued(const std::string& channel, const std::string& destination) override;
    MessageId lastMessageId() override;
    MessageId lastAssignedId() const override { return nextId_.load() - 1; }
    std::vector<MessageSummary> search(const SearchQuery& query) override;
    std::uint64_t countMatching(const SearchQuery& query, std::uint64_t upTo) override;
    std::optional<MessageDetail> get(MessageId id) override;
    std::vector<std::pair<Status, std::uint64_t>> countByStatus(const std::string& channel) override;
    std::uint64_t prune(const std::string& channel, Clock::time_point cutoff) override;
    StoreStats stats() const override;
    RepairOutcome requeueDelivery(MessageId id, const std::string& destination) override;
    RepairOutcome deleteMessage(MessageId id) override;

private:
    struct SearchSql;  // a search's conditions (sqlite_store_readers.cpp)
    struct Few {
        bool queuedDeliveries = false, messages = false;
    };
    Few fewOf(const SearchQuery& q);  // under readMu_
    // Runs `body` as a RepairOp and waits for it (sqlite_store_repairs.cpp).
    void runRepair(const std::function<void()>& body);
    // The original and copies of message `id` (readers; under readMu_).
    void readLinks(MessageId id, MessageDetail& d);
    // ------------------------------------------------------------ queued writes
    // A delivery result applied together with its message's insert (see foldDeliveries).
    struct FoldedDelivery {
        std::size_t index = 0;           // into m.processed->deliveries
        int attempts = 0;
        std::optional<std::int64_t> nextMs;
        const std::string* response = nullptr;  // the last non-empty one
        StorageMode storage = StorageMode::Development;
    };
    struct InsertOp {
        NewMessage m;
        InsertCompletion done;
        std::int64_t receivedMs = 0;
        MessageId id = 0;
        int day = 0;         // partition, once placed by the writer
        bool journaled = false;  // durable in the intake journal, acknowledged already
        std::vector<FoldedDelivery> folded;
        std::uint64_t rawRef = 0;  // the raw content is kept in the journal, at this record (0 = in SQLite)
    };
    struct ProcessedOp {
        ProcessedMessage p;
        Completion done;
    };
    struct DeliveryOp {
        DeliveryUpdate u;
        Completion done;
        std::size_t foldedInto = kNotFolded;  // the batch index of the insert that applies it
    };
    static constexpr std::size_t kNotFolded = static_cast<std::size_t>(-1);
    struct PruneOp {
        std::string channel;
        std::int64_t cutoffMs = 0;
        std::promise<std::uint64_t>* result = nullptr;
    };
    // A journaled message's record could not be written: its raw content goes
    // into SQLite after all, and the void reference is dropped.
    struct RawRepairOp {
        MessageId id = 0;
        std::string raw;
    };
    // A source mark alone (saveMark). Journaled: acknowledged once its record is
    // durable, `done` already run (nullptr here).
    struct MarkOp {
        SourceMark mark;
        Completion done;
        MessageId id = 0;  // its record's (journaled), else taken by the writer
        bool journaled = false;
    };
    // An operator's repair (sqlite_store_repairs.cpp): `body` runs alone on the
    // writer thread, in its own transaction, as prune does; the caller waits.
    struct RepairOp {
        std::function<void()> body;
        std::promise<void>* result = nullptr;
    };
    struct Op {
        template <class T>
        explicit Op(T&& alt) : v(std::forward<T>(alt)) {}
        std::variant<InsertOp, ProcessedOp, DeliveryOp, PruneOp, RawRepairOp, MarkOp, RepairOp> v;
        bool failed = false;
        std::string error;
    };

    void enqueue(Op&& op);
    // Reads see every write submitted before them: with the journal, an
    // acknowledged insert may not be in SQLite yet, so wait for the writer.
    void catchUp() {
        if (journal_) flush();
    }
    void insertJournaled(NewMessage message, InsertCompletion done);
    // Appends a journal record under the ordering lock with the next id, queues
    // `op(id)` for the writer in the same order, and runs `answer(id, error)`
    // once the record is durable (or with the error of its write); it must not block.
    // (MakeOp: Op(MessageId); Answer: void(MessageId, const std::string& error).)
    template <class MakeOp, class Answer>
    void appendJournaled(std::string& record, std::uint64_t* contentRef, MakeOp&& op, Answer&& answer);
    // The latest durable value of each source mark (sourceMark), and the id of
    // the record that wrote it: a mark is replaced only by a later one.
    void noteMark(const SourceMark& mark, MessageId id);
    void applyMark(const SourceMark& mark, MessageId id);  // writer: the source_marks row
    void checkSchema();    // read-only: the schema must be this build's
    void migrateSchema();  // creates or upgrades it
    void recoverJournal();
    void writerLoop();
    void runSegment(std::vector<Op>& ops, std::size_t begin, std::size_t end);
    void assignIds(std::vector<Op>& ops, std::size_t begin, std::size_t end);
    void foldDeliveries(std::vector<Op>& ops, std::size_t begin, std::size_t end);
    void apply(Op& op, std::int64_t now);
    void applyInsert(InsertOp& op, std::int64_t now);
    template <typename T, typename Row, typename Content>
    std::vector<T> readPending(Stmt& st, const std::string& channel, std::size_t limit, Row row, Content content,
                               const std::function<void(Use&)>& bindMore = {}, bool waitForWrites = true);
    void markJournalApplied(const std::vector<Op>& ops, std::size_t begin, std::size_t end);
    // The id of a journaled insert or mark (0 for any other op).
    static MessageId journaledId(const Op& op);
    void applyProcessed(ProcessedOp& op, std::int64_t now);
    void writeOutcome(MessageId id, const ProcessedMessage& p, std::int64_t now, const InsertOp* insert = nullptr);
    void applyDelivery(DeliveryOp& op, std::int64_t now);
    void applyRawRepair(RawRepairOp& op);
    void callbacks(std::vector<Op>& ops, std::size_t begin, std::size_t end);
    std::uint64_t runPrune(const std::string& channel, std::int64_t cutoffMs);
    void rollback();
    // Runs `body` in one transaction of the writer's connection: committed when
    // it returns, rolled back (and the exception passed on) when it throws.
    template <class F>
    void inTransaction(F&& body) {
        Use(wBegin_).run();
        try {
            body();
            Use(wCommit_).run();
        } catch (...) {
            rollback();
            throw;
        }
    }
    void syncWal();
    void finalizeStatements();

    // ------------------------------------------------------------ partitions
    struct WriterPart {
        Stmt put, del, append;
    };
    void ensurePartition(int day, MessageId firstId);
    WriterPart* writerPart(MessageId id);  // nullptr when the id has no (live) partition
    void putContent(MessageId id, int kind, std::string_view dest, std::string_view data);
    void delContent(MessageId id, int kind, std::string_view dest);
    // Appends to a content row (made when there is none): log lines, attempts.
    void appendContent(MessageId id, int kind, std::string_view dest, std::string_view data);
    void writeContent(Stmt WriterPart::*stmt, MessageId id, int kind, std::string_view dest, std::string_view data);
    // A delivery attempt's failure and log lines (applied or folded alike).
    void writeAttempt(const DeliveryUpdate& d, std::int64_t now);

    // ------------------------------------------------------------ text index (sqlite_store_text.cpp)
    struct TextPrune {
        int day = 0;
        MessageId lo = 0, hi = 0;  // the day's id range
        bool drop = false;         // the whole day is gone
    };
    void openTextIndex();   // at open (after the partitions are known): the indexer, or the index removed
    void openTextDatabase();  // xdb_ and its tables (throws)
    void attachTextIndex();  // the reader's connection sees the index (when there is one)
    void closeTextIndex();
    void textIndexLoop();
    bool indexTextBatch(MessageId* through);  // one step of the indexer (true: there may be more to do)
    void pruneText(std::vector<TextPrune> prunes);  // prune: handed to the indexer
    void catchUpTextIndex() override;
    // A search with SearchQuery::text (caller holds readMu_, in a read transaction).
    // `where` are the other conditions on messages m (bound by `bind` from ?1 on).
    std::vector<MessageSummary> searchText(const SearchQuery& q, const std::string& where, int params,
                                           const std::function<void(Use&)>& bind);
    std::string textPath_;        // <db>-text
    bool textAttached_ = false;   // the reader's connection has it as "text"
    bool textOn_ = false;         // this store keeps the text index
    sqlite3* xdb_ = nullptr;      // the indexer's connection (its database; the store's attached as "store")
    std::thread textIndexer_;
    std::mutex textMu_;
    std::condition_variable textCv_;
    bool textStop_ = false;
    std::uint64_t textRequested_ = 0, textDone_ = 0;  // catch-up requests, and those answered
    std::vector<TextPrune> textPrunes_;               // to apply before the next batch

    struct ReaderPart {
        Stmt all, one;
    };
    ReaderPart* readerPart(MessageId id);
    std::string readContent(MessageId id, int kind, const std::string& dest);
    // The row of a content (nullopt when there is none; "" is a copy marker).
    std::optional<std::string> contentRow(MessageId id, int kind, const std::string& dest);
    // The raw message, wherever it is kept (journal content file or content row).
    std::string rawOf(MessageId id);
    // A delivery's encoded message, its copy marker resolved.
    std::string encodedOf(MessageId id, const std::string& dest);
    // Raw content kept in the intake journal (messages.raw_ref); empty, with a log line, when gone.
    std::string journalContent(std::uint64_t ref, MessageId id) const;

    // ------------------------------------------------------------ state
    StoreOptions options_;
    std::string path_;
    std::unique_ptr<StoreLock> lock_;  // first taken, last let go
    sqlite3* wdb_ = nullptr;  // writer thread only (and constructor/destructor)
    sqlite3* rdb_ = nullptr;  // guarded by readMu_

    mutable std::mutex partsMu_;  // guards parts_ (written by the writer only)
    std::vector<Partition> parts_;

    // writer-thread state (nextId_ is taken by inserting threads in journal mode)
    std::atomic<MessageId> nextId_{1};
    // intake journal (see intake_journal.h); null when off
    std::unique_ptr<IntakeJournal> journal_;
    std::mutex journalMu_;               // id order = journal order = apply order
    MessageId journalApplied_ = 0;       // writer: every journaled id <= this is in SQLite
    MessageId journalReleased_ = 0;      // writer: journal segments released up to this id
    bool journalBlocked_ = false;        // writer: a journaled insert could not be applied
    // Why new messages are refused right now (empty: they are not): the writer
    // cannot write SQLite (disk full, I/O error), or the disk budget is reached.
    std::atomic<bool> refusing_{false};
    mutable std::mutex refuseMu_;
    std::string writerTrouble_, budgetTrouble_;
    void setTrouble(std::string SqliteStore::*which, const std::string& why);
    std::string refusal() const;
    std::string refusedNow() const;  // refusal() when new writes are refused, else "" (cheap)
    // The disk budget's watch (StoreOptions::maxStoreBytes, minFreeBytes).
    std::thread budgetWatch_;
    std::mutex budgetMu_;
    std::condition_variable budgetCv_;
    bool budgetStop_ = false;
    void watchBudget();
    std::set<MessageId> voidRefs_;       // writer: failed records whose insert is still to come
    std::size_t flushWaiters_ = 0;       // under mu_
    std::size_t unappliedBytes_ = 0;     // under mu_: content of the journaled inserts queued or being applied
    std::map<int, WriterPart> wparts_;
    Stmt wJournalMark_, wDropRawRef_, wSourceMark_;
    std::mutex marksMu_;
    std::map<std::string, std::pair<MessageId, std::string>> marks_;  // key -> (record id, value), durable
    Stmt wBegin_, wCommit_, wInsertMsg_, wProcessed_, wProcessedStatus_, wMeta_, wDeliveryNew_, wDeliveryAt_, wDeliveryUpd_, wDeliveryIns_, wAggregate_, wMessageStatus_,
        wPartition_;
    std::thread::id writerId_;

    // queue
    std::mutex mu_;
    std::condition_variable cvWork_, cvDone_;
    std::vector<Op> queue_;
    std::uint64_t submitted_ = 0, completed_ = 0;
    bool stop_ = false, writerIdle_ = false;
    std::thread writer_;

    std::atomic<std::uint64_t> commits_{0}, writes_{0}, folded_{0};

    // background checkpoints (see walHook)
    static int walHook(void* self, sqlite3* db, const char* name, int pages);
    void checkpointLoop();
    sqlite3* cdb_ = nullptr;  // checkpointer thread only
    std::mutex ckMu_;
    std::condition_variable ckCv_;
    bool ckRequested_ = false, ckStop_ = false;
    int ckRequestedAt_ = 0;  // WAL pages when last requested (writer thread only)
    int pageBytes_ = kPageBytes;  // this store's page size (an older store may have another)
    std::thread checkpointer_;

    // readers
    std::mutex readMu_;
    std::map<int, ReaderPart> rparts_;
    Stmt rBegin_, rCommit_, rRollback_, rPendingMsgs_, rPendingDels_, rGetMsg_, rGetDels_, rCountAll_, rCount_;
    std::map<std::string, Stmt> rSearch_;
    // The prepared statement of a search's SQL, made on its first use (under readMu_).
    Stmt& searchStatement(const std::string& sql) {
        auto it = rSearch_.find(sql);
        if (it == rSearch_.end()) it = rSearch_.emplace(sql, Stmt(rdb_, sql)).first;
        return it->second;
    }
};

}  // namespace junction::store::detail
