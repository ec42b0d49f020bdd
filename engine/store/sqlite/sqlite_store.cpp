// SQLite implementation of MessageStore.
//
// Layout (schema version 2, PRAGMA user_version):
//   messages     one row per message (metadata + search columns), INTEGER PRIMARY KEY id
//   deliveries   one row per (message, destination), WITHOUT ROWID, with the channel
//                copied in so that the partial index deliveries_queued answers
//                "Queued deliveries of a channel, oldest first" directly
//   partitions   day (yyyymmdd, UTC) -> first message id of that day
//   content_<yyyymmdd>  raw / transformed / encoded / response of the messages
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
#include "engine/store/message_store.h"
#include "engine/store/sqlite/intake_journal.h"
#include "engine/store/sqlite/paced_vfs.h"
#include "engine/store/sqlite/sqlite_db.h"
#include "engine/store/sqlite/store_lock.h"
#include "engine/util/round.h"
#include "engine/util/thread_name.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <variant>

namespace junction::store {

namespace {

using sqlite::Stmt;
using sqlite::Use;

constexpr int kSchemaVersion = 2;
constexpr int kPageBytes = 16384;  // page size of a new store
constexpr std::int64_t kPruneChunk = 20000;  // ids per prune transaction

enum ContentKind : int { kRaw = 0, kTransformed = 1, kEncoded = 2, kResponse = 3 };

std::int64_t toMs(Clock::time_point tp) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count();
}
Clock::time_point fromMs(std::int64_t ms) {
    return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(ms)));
}
std::int64_t nowMs() { return toMs(Clock::now()); }

// yyyymmdd (UTC) of a time in ms since the epoch.
int dayOf(std::int64_t ms) {
    using namespace std::chrono;
    sys_days d = floor<days>(sys_time<milliseconds>(milliseconds(ms)));
    year_month_day ymd{d};
    return static_cast<int>(ymd.year()) * 10000 + static_cast<int>(static_cast<unsigned>(ymd.month())) * 100 +
           static_cast<int>(static_cast<unsigned>(ymd.day()));
}

std::string contentTable(int day) { return "content_" + std::to_string(day); }

bool keepsAll(StorageMode m) { return m == StorageMode::Development; }
bool keepsRaw(StorageMode m) { return m == StorageMode::Development || m == StorageMode::Production; }

// Encoded content of a delivery in state `s` is kept when...
bool keepEncoded(StorageMode m, Status s) {
    if (m == StorageMode::Development) return true;
    if (m == StorageMode::Production) return s == Status::Queued || s == Status::Error;  // until Sent
    return s == Status::Queued;                                                          // until sent
}

// Message status from its deliveries: any Error -> Error, else any Queued ->
// Queued, else any Sent -> Sent, else (all Filtered) Filtered.
Status aggregate(const std::vector<ProcessedMessage::Delivery>& ds) {
    bool queued = false, sent = false;
    for (auto& d : ds) {
        if (d.status == Status::Error) return Status::Error;
        if (d.status == Status::Queued) queued = true;
        if (d.status == Status::Sent) sent = true;
    }
    return queued ? Status::Queued : sent ? Status::Sent : Status::Filtered;
}

// Status as stored in the database: fixed here (the SQL and the partial indexes
// use these literals), independent of toString(Status), which is for display.
const char* dbStatus(Status s) {
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

Status statusOf(const std::string& s) {
    for (Status st : {Status::Received, Status::Filtered, Status::Transformed, Status::Queued, Status::Sent,
                      Status::Error})
        if (s == dbStatus(st)) return st;
    return Status::Error;
}

const char* kAggregateSql =
    "UPDATE messages SET status = (SELECT CASE WHEN max(status = 'Error') THEN 'Error' "
    "WHEN max(status = 'Queued') THEN 'Queued' WHEN max(status = 'Sent') THEN 'Sent' ELSE 'Filtered' END "
    "FROM deliveries WHERE message_id = ?1), updated_at = ?2 WHERE id = ?1";

const char* kSchemaV1[] = {
    "CREATE TABLE messages ("
    " id INTEGER PRIMARY KEY,"
    " channel TEXT NOT NULL,"
    " received_at INTEGER NOT NULL,"  // ms since the epoch
    " status TEXT NOT NULL,"
    " data_type TEXT NOT NULL DEFAULT '',"
    " source TEXT NOT NULL DEFAULT '',"
    " message_type TEXT,"  // NULL when unknown (keeps the partial indexes small)
    " control_id TEXT,"
    " patient_id TEXT,"
    " accession TEXT,"
    " error TEXT NOT NULL DEFAULT '',"
    " updated_at INTEGER NOT NULL)",
    "CREATE INDEX messages_channel ON messages(channel, id)",
    // Status lookups: only the rare states get an index (a full (channel, status, id)
    // index would be rewritten at every status change of every message).
    "CREATE INDEX messages_received ON messages(channel, id) WHERE status = 'Received'",
    "CREATE INDEX messages_error ON messages(channel, id) WHERE status = 'Error'",
    "CREATE INDEX messages_control_id ON messages(control_id) WHERE control_id IS NOT NULL",
    "CREATE INDEX messages_patient_id ON messages(patient_id) WHERE patient_id IS NOT NULL",
    "CREATE INDEX messages_accession ON messages(accession) WHERE accession IS NOT NULL",
    "CREATE INDEX messages_received_at ON messages(received_at)",
    "CREATE TABLE deliveries ("
    " message_id INTEGER NOT NULL,"
    " destination TEXT NOT NULL,"
    " channel TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt INTEGER,"  // ms since the epoch, NULL = now
    " error TEXT NOT NULL DEFAULT '',"
    " updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (message_id, destination)) WITHOUT ROWID",
    "CREATE INDEX deliveries_queued ON deliveries(channel, message_id) WHERE status = 'Queued'",
    "CREATE TABLE partitions (day INTEGER PRIMARY KEY, first_id INTEGER NOT NULL, dropped INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE store_meta (key TEXT PRIMARY KEY, value)",
};

struct Partition {
    int day = 0;
    MessageId firstId = 0;
    bool dropped = false;
};

// Index of the partition holding `id` (-1 if none).
int partitionIndex(const std::vector<Partition>& parts, MessageId id) {
    if (parts.empty() || id < parts.front().firstId) return -1;
    if (id >= parts.back().firstId) return static_cast<int>(parts.size()) - 1;
    auto it = std::upper_bound(parts.begin(), parts.end(), id,
                               [](MessageId v, const Partition& p) { return v < p.firstId; });
    return static_cast<int>(it - parts.begin()) - 1;
}

sqlite3* openConnection(const std::string& path) { return sqlite::open(path, "message store", 10000); }

class SqliteStore final : public MessageStore {
public:
    SqliteStore(const std::string& path, const StoreOptions& options);
    ~SqliteStore() override;

    void insert(NewMessage message, InsertCompletion done) override;
    void recordProcessed(ProcessedMessage processed, Completion done) override;
    void recordDelivery(DeliveryUpdate update, Completion done) override;
    void flush() override;

    std::vector<PendingMessage> pendingMessages(const std::string& channel, std::size_t limit) override;
    std::vector<PendingDelivery> pendingDeliveries(const std::string& channel, std::size_t limit) override;
    std::vector<PendingDelivery> pendingDeliveries(const std::string& channel, const std::string& destination,
                                                   MessageId after, std::size_t limit, bool waitForWrites) override;
    std::uint64_t countQueued(const std::string& channel, const std::string& destination) override;
    MessageId lastMessageId() override;
    std::vector<MessageSummary> search(const SearchQuery& query) override;
    std::optional<MessageDetail> get(MessageId id) override;
    std::vector<std::pair<Status, std::uint64_t>> countByStatus(const std::string& channel) override;
    std::uint64_t prune(const std::string& channel, Clock::time_point cutoff) override;
    StoreStats stats() const override;

private:
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
    struct Op {
        template <class T>
        explicit Op(T&& alt) : v(std::forward<T>(alt)) {}
        std::variant<InsertOp, ProcessedOp, DeliveryOp, PruneOp, RawRepairOp> v;
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
    void applyProcessed(ProcessedOp& op, std::int64_t now);
    void writeOutcome(MessageId id, const ProcessedMessage& p, std::int64_t now, const InsertOp* insert = nullptr);
    void applyDelivery(DeliveryOp& op, std::int64_t now);
    void applyRawRepair(RawRepairOp& op);
    void callbacks(std::vector<Op>& ops, std::size_t begin, std::size_t end);
    std::uint64_t runPrune(const std::string& channel, std::int64_t cutoffMs);
    void rollback();
    void syncWal();
    void finalizeStatements();

    // ------------------------------------------------------------ partitions
    struct WriterPart {
        Stmt put, del;
    };
    void ensurePartition(int day, MessageId firstId);
    WriterPart* writerPart(MessageId id);  // nullptr when the id has no (live) partition
    void putContent(MessageId id, int kind, std::string_view dest, std::string_view data);
    void delContent(MessageId id, int kind, std::string_view dest);

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
    Stmt wJournalMark_, wDropRawRef_;
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
};

// ================================================================== open

SqliteStore::SqliteStore(const std::string& path, const StoreOptions& options) : options_(options), path_(path) {
    if (options_.maxBatchRows == 0) options_.maxBatchRows = 1;
    if (options_.readOnly) {
        if (!std::filesystem::exists(path)) throw std::runtime_error("message store: no store at " + path);
        options_.journal = false;
    } else {
        sqlite::createParentDirectory(path);
        lock_ = std::make_unique<StoreLock>(path, options_.lockWait);
    }
    try {
        wdb_ = sqlite::open(path, "message store", 10000, sqlite::pacedVfs());
        // Page size and auto_vacuum must be chosen before the first table exists
        // (an existing store keeps its own page size). 16 KB pages: a 700-byte
        // HL7 message and its index entries cost the writer 15-20% less CPU than
        // with SQLite's 4 KB (fewer page splits and WAL frames per message), and
        // with a large store and random patient ids a quarter less
        // (bench_store_apply, --random-keys).
        if (options_.readOnly) {
            sqlite::exec(wdb_, "PRAGMA query_only = 1");
        } else {
            sqlite::exec(wdb_, ("PRAGMA page_size = " + std::to_string(kPageBytes)).c_str());
            sqlite::exec(wdb_, "PRAGMA auto_vacuum = INCREMENTAL");
            sqlite::useWal(wdb_, path);
        }
        // With the journal, SQLite commits need no flush of their own: the journal
        // holds the messages until the WAL is flushed (syncWal) before a journal
        // segment is dropped; checkpoints still flush (their own connection).
        bool journaling = options_.journal && options_.maxDatabaseBytes == 0;
        sqlite::exec(wdb_, options_.synchronousFull && !journaling ? "PRAGMA synchronous = FULL"
                                                                  : "PRAGMA synchronous = NORMAL");
        // 16 MB: inserts append to the right edge of most B-trees, but the search
        // indexes (patient id, accession number) take keys anywhere: with random
        // keys and 400,000 messages, the writer needs 25-30% less CPU than with
        // 8 MB. Larger caches gained little more and cost a page allocation per
        // page until full (bench_store_apply).
        sqlite::exec(wdb_, "PRAGMA cache_size = -16384");
        sqlite::exec(wdb_, "PRAGMA temp_store = MEMORY");
        pageBytes_ = static_cast<int>(sqlite::queryInt(wdb_, "PRAGMA page_size", kPageBytes));
        sqlite::exec(wdb_, "PRAGMA journal_size_limit = 67108864");
        if (options_.maxDatabaseBytes > 0) {
            std::uint64_t pages = std::max<std::uint64_t>(options_.maxDatabaseBytes / pageBytes_, 16);
            sqlite::exec(wdb_, ("PRAGMA max_page_count = " + std::to_string(pages)).c_str());
        }

        // Schema (versioned by PRAGMA user_version; migrations go here).
        if (options_.readOnly) checkSchema();
        else migrateSchema();

        // Partitions and the next id.
        {
            Stmt s(wdb_, "SELECT day, first_id, dropped FROM partitions ORDER BY first_id, day");
            Use u(s);
            while (u.step()) parts_.push_back({static_cast<int>(u.int64(0)), u.int64(1), u.int64(2) != 0});
        }
        MessageId last = 0;
        {
            Stmt s(wdb_,
                   "SELECT max(coalesce((SELECT max(id) FROM messages), 0),"
                   " coalesce((SELECT value FROM store_meta WHERE key = 'last_id'), 0),"
                   " coalesce((SELECT max(first_id) - 1 FROM partitions), 0))");
            Use u(s);
            if (u.step()) last = u.int64(0);
        }
        nextId_ = last + 1;

        wBegin_ = Stmt(wdb_, "BEGIN IMMEDIATE");
        wCommit_ = Stmt(wdb_, "COMMIT");
        wInsertMsg_ = Stmt(wdb_,
                           "INSERT INTO messages (id, channel, received_at, status, data_type, source, message_type,"
                           " control_id, patient_id, accession, error, updated_at, raw_ref)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)");
        wProcessed_ = Stmt(wdb_,
                           "UPDATE messages SET status = ?2, error = ?3, message_type = coalesce(?4, message_type),"
                           " control_id = coalesce(?5, control_id), patient_id = coalesce(?6, patient_id),"
                           " accession = coalesce(?7, accession), updated_at = ?8,"
                           " raw_ref = CASE WHEN ?9 THEN raw_ref END WHERE id = ?1");
        wProcessedStatus_ = Stmt(wdb_, "UPDATE messages SET status = ?2, error = ?3, updated_at = ?4,"
                                       " raw_ref = CASE WHEN ?5 THEN raw_ref END WHERE id = ?1");
        wMeta_ = Stmt(wdb_, "SELECT message_type, control_id, patient_id, accession FROM messages WHERE id = ?1");
        wDeliveryNew_ = Stmt(wdb_,
                             "INSERT OR REPLACE INTO deliveries (message_id, destination, channel, status, attempts,"
                             " next_attempt, error, updated_at)"
                             " SELECT ?1, ?2, channel, ?3, 0, NULL, ?4, ?5 FROM messages WHERE id = ?1");
        wDeliveryAt_ = Stmt(wdb_,
                            "INSERT OR REPLACE INTO deliveries (message_id, destination, channel, status, attempts,"
                            " next_attempt, error, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
        wDeliveryUpd_ = Stmt(wdb_,
                             "UPDATE deliveries SET status = ?3, attempts = ?4, next_attempt = ?5, error = ?6,"
                             " updated_at = ?7 WHERE message_id = ?1 AND destination = ?2");
        wDeliveryIns_ = Stmt(wdb_,
                             "INSERT INTO deliveries (message_id, destination, channel, status, attempts,"
                             " next_attempt, error, updated_at)"
                             " SELECT ?1, ?2, channel, ?3, ?4, ?5, ?6, ?7 FROM messages WHERE id = ?1");
        wAggregate_ = Stmt(wdb_, kAggregateSql);
        wMessageStatus_ = Stmt(wdb_, "UPDATE messages SET status = ?2, updated_at = ?3 WHERE id = ?1");
        wPartition_ = Stmt(wdb_, "INSERT OR REPLACE INTO partitions (day, first_id, dropped) VALUES (?1, ?2, 0)");
        wJournalMark_ = Stmt(wdb_, "INSERT OR REPLACE INTO store_meta (key, value) VALUES ('journal_applied', ?1)");
        wDropRawRef_ = Stmt(wdb_, "UPDATE messages SET raw_ref = NULL WHERE id = ?1 AND raw_ref IS NOT NULL");

        // Reader connection.
        rdb_ = openConnection(path);
        sqlite::exec(rdb_, "PRAGMA cache_size = -16384");
        sqlite::exec(rdb_, "PRAGMA query_only = 1");
        rBegin_ = Stmt(rdb_, "BEGIN");
        rCommit_ = Stmt(rdb_, "COMMIT");
        rRollback_ = Stmt(rdb_, "ROLLBACK");
        rPendingMsgs_ = Stmt(rdb_,
                             "SELECT id, channel, data_type, source, received_at, raw_ref FROM messages"
                             " WHERE channel = ?1 AND status = 'Received' ORDER BY id LIMIT ?2");
        rPendingDels_ = Stmt(rdb_,
                             "SELECT message_id, channel, destination, attempts, next_attempt FROM deliveries"
                             " WHERE channel = ?1 AND status = 'Queued' AND message_id > ?3"
                             " AND (?4 IS NULL OR destination = ?4) ORDER BY message_id LIMIT ?2");
        rGetMsg_ = Stmt(rdb_,
                        "SELECT id, channel, received_at, status, data_type, source, message_type, control_id,"
                        " patient_id, accession, error, raw_ref FROM messages WHERE id = ?1");
        rGetDels_ = Stmt(rdb_,
                         "SELECT destination, status, attempts, next_attempt, error, updated_at FROM deliveries"
                         " WHERE message_id = ?1 ORDER BY destination");
        rCountAll_ = Stmt(rdb_, "SELECT status, count(*) FROM messages GROUP BY status");
        rCount_ = Stmt(rdb_, "SELECT status, count(*) FROM messages WHERE channel = ?1 GROUP BY status");

        // Checkpoints run on their own connection and thread so that copying the WAL
        // into the database (and its fsync) does not stall the writer.
        cdb_ = sqlite::open(path, "message store", 10000, sqlite::pacedVfs());
        sqlite::exec(cdb_, options_.synchronousFull ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
        sqlite3_wal_hook(wdb_, &SqliteStore::walHook, this);  // replaces wal_autocheckpoint
    } catch (const std::exception& e) {
        // Stmt members are finalized by their destructors; close_v2 defers until then.
        if (cdb_) sqlite3_close_v2(cdb_);
        if (rdb_) sqlite3_close_v2(rdb_);
        if (wdb_) sqlite3_close_v2(wdb_);
        throw std::runtime_error(std::string("message store: ") + e.what());
    }

    queue_.reserve(1024);
    // A quota needs the exact answer at insert time (SQLite says "full"), so a
    // store with a quota commits every insert itself instead of journaling it.
    if (options_.journal && options_.maxDatabaseBytes == 0) {
        try {
            journal_ = std::make_unique<IntakeJournal>(path, options_.synchronousFull, options_.journalSegmentBytes);
            journal_->onWriteFailure([this](std::vector<JournalRecord>&& failed) {
                for (auto& rec : failed)
                    if (keepsRaw(rec.message.storage)) enqueue(Op(RawRepairOp{rec.id, std::move(rec.message.raw)}));
            });
            recoverJournal();
        } catch (const std::exception& e) {
            finalizeStatements();
            sqlite3_close_v2(cdb_);
            sqlite3_close_v2(rdb_);
            sqlite3_close_v2(wdb_);
            throw std::runtime_error(std::string("message store: ") + e.what());
        }
    }
    checkpointer_ = std::thread([this] { checkpointLoop(); });
    if (!options_.readOnly && (options_.maxStoreBytes || options_.minFreeBytes))
        budgetWatch_ = std::thread([this] { watchBudget(); });
    writer_ = std::thread([this] { writerLoop(); });
    writerId_ = writer_.get_id();  // read by flush()/prune() callers, which come later
    if (journal_) flush();  // journaled messages of the last run are in SQLite before anyone reads
}

void SqliteStore::checkSchema() {
    auto version = sqlite::queryInt(wdb_, "PRAGMA user_version", 0);
    if (version != kSchemaVersion)
        throw std::runtime_error("message store " + path_ + " has schema version " + std::to_string(version) +
                                 "; this build reads version " + std::to_string(kSchemaVersion) +
                                 " (an engine of this build upgrades it when it starts)");
}

void SqliteStore::migrateSchema() {
    sqlite::exec(wdb_, "BEGIN IMMEDIATE");
    try {
        int version = static_cast<int>(sqlite::queryInt(wdb_, "PRAGMA user_version", 0));
        if (version > kSchemaVersion)
            throw std::runtime_error("message store " + path_ + " has schema version " + std::to_string(version) +
                                     ", newer than this build (" + std::to_string(kSchemaVersion) + ")");
        if (version == 0) {
            for (const char* sql : kSchemaV1) sqlite::exec(wdb_, sql);
            version = 1;
        }
        if (version == 1) {  // raw content referenced in the intake journal's content files
            sqlite::exec(wdb_, "ALTER TABLE messages ADD COLUMN raw_ref INTEGER");
            version = 2;
        }
        sqlite::exec(wdb_, ("PRAGMA user_version = " + std::to_string(version)).c_str());
        sqlite::exec(wdb_, "COMMIT");
    } catch (...) {
        sqlite3_exec(wdb_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

SqliteStore::~SqliteStore() {
    {
        std::lock_guard<std::mutex> lock(budgetMu_);
        budgetStop_ = true;
    }
    budgetCv_.notify_all();
    if (budgetWatch_.joinable()) budgetWatch_.join();
    if (journal_) journal_->onWriteFailure(nullptr);
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
    }
    cvWork_.notify_all();
    if (writer_.joinable()) writer_.join();
    // Everything journaled is in SQLite now (the writer drained its queue)
    // unless an insert could not be applied: then the journal stays for the next open.
    if (journal_ && !journalBlocked_) {
        if (options_.synchronousFull) syncWal();
        journal_->retireAll();
    }
    {
        std::lock_guard<std::mutex> lock(ckMu_);
        ckStop_ = true;
    }
    ckCv_.notify_all();
    if (checkpointer_.joinable()) checkpointer_.join();
    sqlite3_close_v2(cdb_);
    finalizeStatements();
    sqlite3_close_v2(rdb_);
    sqlite3_close_v2(wdb_);
}

// Every prepared statement, finalized before its connection closes.
void SqliteStore::finalizeStatements() {
    wparts_.clear();
    rparts_.clear();
    rSearch_.clear();
    for (Stmt* s : {&wJournalMark_, &wDropRawRef_, &wBegin_, &wCommit_, &wInsertMsg_, &wProcessed_, &wProcessedStatus_, &wMeta_,
                    &wDeliveryNew_, &wDeliveryAt_, &wDeliveryUpd_, &wDeliveryIns_, &wAggregate_, &wMessageStatus_,
                    &wPartition_, &rBegin_, &rCommit_, &rRollback_, &rPendingMsgs_, &rPendingDels_, &rGetMsg_, &rGetDels_,
                    &rCountAll_, &rCount_})
        s->reset();
}

// ================================================================== queue

void SqliteStore::enqueue(Op&& op) {
    bool wake;
    {
        std::lock_guard<std::mutex> lock(mu_);
        queue_.push_back(std::move(op));
        ++submitted_;
        wake = writerIdle_;
        if (wake) writerIdle_ = false;
    }
    if (wake) cvWork_.notify_one();
}

void SqliteStore::insert(NewMessage message, InsertCompletion done) {
    if (refusing_.load(std::memory_order_relaxed)) {
        // Answered at once: a sender gets an error now rather than no answer.
        std::string why = refusal();
        if (!why.empty()) {
            if (done) done(0, why);
            return;
        }
    }
    if (journal_) return insertJournaled(std::move(message), std::move(done));
    std::int64_t received = message.receivedAt ? toMs(*message.receivedAt) : nowMs();
    enqueue(Op(InsertOp{std::move(message), std::move(done), received, 0, 0, false, {}}));
}

namespace {
// Journaled inserts the writer has not applied yet (queued or in the batch it
// is applying), past which new inserts wait: memory stays bounded when SQLite
// falls behind, whatever the message size or the backlog.
constexpr std::size_t kMaxUnapplied = 100000;
constexpr std::size_t kMaxUnappliedBytes = 48u << 20;

// What a journaled insert holds in memory until it is applied (about).
std::size_t heldBytes(const NewMessage& m) {
    std::size_t n = 512 + m.raw.size();
    if (m.processed) {
        n += m.processed->transformed.size();
        for (const auto& d : m.processed->deliveries) n += 64 + d.encoded.size();
    }
    return n;
}
}  // namespace

// Journal mode: the message is durable once its record is in the journal (and,
// with synchronous FULL, fdatasync'ed together with the records of the other
// threads appending at the time); the writer applies it to SQLite later, in
// order, in large transactions. `done` runs on the calling thread (no sync) or
// on the journal's sync thread; either way the caller does not wait for the
// disk, so a source holding a processing slot lets the next message in.
namespace {
// A throwing callback must not break the caller's insert (as on the writer thread).
void complete(const InsertCompletion& done, MessageId id, const std::string& error) {
    if (!done) return;
    try {
        done(id, error);
    } catch (...) {
    }
}
}  // namespace

void SqliteStore::insertJournaled(NewMessage message, InsertCompletion done) {
    std::int64_t received = message.receivedAt ? toMs(*message.receivedAt) : nowMs();
    std::string record = encodeRecord(0, received, message);
    {
        std::unique_lock<std::mutex> lock(mu_);
        auto full = [&] { return queue_.size() >= kMaxUnapplied || unappliedBytes_ >= kMaxUnappliedBytes; };
        if (full()) {
            ++flushWaiters_;  // no lingering while someone waits
            cvWork_.notify_one();
            cvDone_.wait(lock, [&] { return !full() || stop_; });
            --flushWaiters_;
        }
        unappliedBytes_ += heldBytes(message);
    }
    std::function<void(const std::string&)> then;
    std::uint64_t seq = 0, rawRef = 0;
    // Raw content kept after processing stays in the journal: SQLite gets its reference.
    std::uint64_t* contentRef = keepsRaw(message.storage) ? &rawRef : nullptr;
    bool inRound = util::Round::active();
    {
        std::lock_guard<std::mutex> jl(journalMu_);
        MessageId id = nextId_.fetch_add(1);
        setRecordId(record, id);
        // Answers the insert once its record is durable. A failed write or sync:
        // not acknowledged, though the record may still be applied (a resend is
        // then a duplicate, not a loss).
        then = [done = std::move(done), id](const std::string& error) {
            if (error.empty()) complete(done, id, error);
            else complete(done, 0, error);
        };
        try {
            // On an event loop's thread the record is written at the end of the
            // round, with the round's others, and `then` runs after that.
            if (inRound) journal_->appendInRound(id, record, std::move(then), contentRef);
            else seq = journal_->append(id, record, contentRef);
        } catch (const std::exception& e) {
            then(e.what());  // still ours: appendInRound takes it only once the record is in
            return;
        }
        enqueue(Op(InsertOp{std::move(message), nullptr, received, id, 0, true, {}, rawRef}));
    }
    if (!inRound) journal_->whenDurable(seq, std::move(then));
}

// At open: journaled messages not yet in SQLite are queued for the writer
// first, before any new write.
void SqliteStore::recoverJournal() {
    std::vector<std::string> warnings;
    auto records = journal_->recover(&warnings);
    for (const auto& w : warnings) std::fprintf(stderr, "junction: %s\n", w.c_str());
    MessageId applied = 0;
    {
        Stmt s(wdb_, "SELECT value FROM store_meta WHERE key = 'journal_applied'");
        Use u(s);
        if (u.step()) applied = u.int64(0);
    }
    Stmt exists(wdb_, "SELECT 1 FROM messages WHERE id = ?1");
    MessageId maxId = 0;
    std::size_t replayed = 0;
    for (auto& rec : records) {
        maxId = std::max(maxId, rec.id);
        // Applied or not, SQLite may reference its raw content: keep its segment.
        bool kept = keepsRaw(rec.message.storage);
        if (kept) journal_->keep(rec.ref);
        if (rec.id <= applied) continue;
        {
            Use u(exists);
            u.int64(1, rec.id);
            if (u.step()) continue;  // applied after a blocked one (see journalBlocked_)
        }
        unappliedBytes_ += heldBytes(rec.message);
        queue_.push_back(Op(InsertOp{std::move(rec.message), nullptr, rec.receivedMs, rec.id, 0, true, {}, kept ? rec.ref : 0}));
        ++submitted_;
        ++replayed;
    }
    if (maxId >= nextId_.load()) nextId_ = maxId + 1;
    journalApplied_ = applied;
    if (replayed == 0 && journal_->releasable(maxId)) {  // nothing left to apply from the old segments
        if (options_.synchronousFull) syncWal();
        journal_->release(maxId);
    }
}

void SqliteStore::recordProcessed(ProcessedMessage processed, Completion done) {
    enqueue(Op(ProcessedOp{std::move(processed), std::move(done)}));
}

void SqliteStore::recordDelivery(DeliveryUpdate update, Completion done) {
    enqueue(Op(DeliveryOp{std::move(update), std::move(done)}));
}

void SqliteStore::flush() {
    if (std::this_thread::get_id() == writerId_) return;  // from a callback: cannot wait for ourselves
    std::unique_lock<std::mutex> lock(mu_);
    std::uint64_t target = submitted_;
    ++flushWaiters_;
    cvWork_.notify_one();  // cut a lingering batch short
    cvDone_.wait(lock, [&] { return completed_ >= target; });
    --flushWaiters_;
}

StoreStats SqliteStore::stats() const {
    StoreStats s;
    s.commits = commits_.load(std::memory_order_relaxed);
    s.writes = writes_.load(std::memory_order_relaxed);
    s.folded = folded_.load(std::memory_order_relaxed);
    return s;
}

// ================================================================== writer

void SqliteStore::writerLoop() {
    util::nameThisThread("junction-store");
    std::vector<Op> batch;
    batch.reserve(1024);
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(mu_);
            while (queue_.empty() && !stop_) {
                writerIdle_ = true;
                cvWork_.wait(lock);
            }
            writerIdle_ = false;
            if (queue_.empty()) break;  // stopping and drained
            // Journaled inserts are acknowledged already: nobody waits for their
            // commit, so the writer lets the batch grow for up to maxBatchDelay
            // (fewer, larger transactions) unless someone flushes.
            if (journal_ && !stop_ && flushWaiters_ == 0 && queue_.size() < options_.maxBatchRows)
                cvWork_.wait_for(lock, options_.maxBatchDelay, [&] {
                    return stop_ || flushWaiters_ > 0 || queue_.size() >= options_.maxBatchRows;
                });
            // No waiting for company: the writer commits whatever is queued as soon
            // as it is free, so batches grow with the load by themselves (while one
            // commit runs the next batch gathers). Lingering for maxBatchDelay was
            // measured: no throughput gain, only added latency.
            batch.swap(queue_);
        }
        std::size_t batchBytes = 0;
        for (const auto& op : batch)
            if (auto* ins = std::get_if<InsertOp>(&op.v); ins && ins->journaled) batchBytes += heldBytes(ins->m);
        std::size_t i = 0;
        while (i < batch.size()) {
            if (auto* pr = std::get_if<PruneOp>(&batch[i].v)) {
                try {
                    pr->result->set_value(runPrune(pr->channel, pr->cutoffMs));
                } catch (...) {
                    rollback();
                    pr->result->set_exception(std::current_exception());
                }
                ++i;
                continue;
            }
            std::size_t j = i;
            while (j < batch.size() && j - i < options_.maxBatchRows && !std::holds_alternative<PruneOp>(batch[j].v))
                ++j;
            runSegment(batch, i, j);
            callbacks(batch, i, j);
            i = j;
        }
        std::size_t n = batch.size();
        batch.clear();
        if (journal_ && !journalBlocked_ && journalApplied_ > journalReleased_ && journal_->releasable(journalApplied_)) {
            // What the segments to be dropped hold must be on disk in SQLite first.
            if (options_.synchronousFull) syncWal();
            journal_->release(journalApplied_);
            journalReleased_ = journalApplied_;
        }
        {
            std::lock_guard<std::mutex> lock(mu_);
            completed_ += n;
            unappliedBytes_ -= std::min(unappliedBytes_, batchBytes);
        }
        cvDone_.notify_all();
    }
}

// Flushes the WAL file: every commit so far is then on disk (what checkpoints
// moved out of the WAL before its last restart is in the database file, which
// checkpoints flush).
void SqliteStore::syncWal() {
    int fd = ::open((path_ + "-wal").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;  // no WAL file: everything is in the database (flushed by its checkpoint)
    ::fdatasync(fd);
    ::close(fd);
}

void SqliteStore::rollback() {
    if (!sqlite3_get_autocommit(wdb_)) sqlite3_exec(wdb_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void SqliteStore::assignIds(std::vector<Op>& ops, std::size_t begin, std::size_t end) {
    // Journaled inserts come with their id (taken in journal order); the others
    // get theirs here. Either way ids reach this point in increasing order, so
    // each day's partition owns a contiguous id range.
    for (std::size_t k = begin; k < end; ++k) {
        auto* ins = std::get_if<InsertOp>(&ops[k].v);
        if (!ins || ins->day != 0 || ops[k].failed) continue;
        int day = dayOf(ins->receivedMs);
        MessageId id = ins->id != 0 ? ins->id : nextId_.load();
        if (parts_.empty() || day > parts_.back().day) {
            try {
                ensurePartition(day, id);
            } catch (const std::exception& e) {
                ops[k].failed = true;
                ops[k].error = e.what();
                continue;
            }
        }
        if (ins->id == 0) ins->id = nextId_++;
        ins->day = parts_.back().day;
    }
}

// A journaled message is often delivered before the writer applies its insert
// (the batch lingers for maxBatchDelay): its delivery results in the same batch
// are applied with the insert (the delivery row written once, in its final
// state; the encoded content not written just to be deleted) instead of as
// updates of rows written moments before in the same transaction. The end state
// is the one the updates would have left.
void SqliteStore::foldDeliveries(std::vector<Op>& ops, std::size_t begin, std::size_t end) {
    std::unordered_map<MessageId, std::size_t> inserts;
    for (std::size_t k = begin; k < end; ++k) {
        if (ops[k].failed) continue;
        if (auto* ins = std::get_if<InsertOp>(&ops[k].v)) {
            if (ins->id != 0 && ins->m.processed && !ins->m.processed->deliveries.empty()) inserts[ins->id] = k;
            continue;
        }
        auto* d = std::get_if<DeliveryOp>(&ops[k].v);
        if (!d) continue;
        auto it = inserts.find(d->u.id);
        if (it == inserts.end()) continue;
        auto& ins = std::get<InsertOp>(ops[it->second].v);
        auto& dels = ins.m.processed->deliveries;
        std::size_t i = 0;
        while (i < dels.size() && dels[i].destination != d->u.destination) ++i;
        if (i == dels.size()) continue;  // not recorded with the message: applied on its own
        dels[i].status = d->u.status;
        dels[i].error = d->u.error;
        FoldedDelivery* f = nullptr;
        for (auto& x : ins.folded)
            if (x.index == i) f = &x;
        if (!f) {
            f = &ins.folded.emplace_back();
            f->index = i;
        }
        f->attempts = d->u.attempts;
        f->nextMs = d->u.status == Status::Queued ? std::optional<std::int64_t>(toMs(d->u.nextAttempt)) : std::nullopt;
        if (!d->u.response.empty()) f->response = &d->u.response;
        f->storage = d->u.storage;
        d->foldedInto = it->second;
        folded_.fetch_add(1, std::memory_order_relaxed);
    }
}

void SqliteStore::runSegment(std::vector<Op>& ops, std::size_t begin, std::size_t end) {
    assignIds(ops, begin, end);
    foldDeliveries(ops, begin, end);
    std::int64_t now = nowMs();
    auto journaled = [&](std::size_t k) {
        auto* ins = std::get_if<InsertOp>(&ops[k].v);
        return ins && ins->journaled;
    };
    auto noteApplied = [&](std::size_t k) {
        auto* ins = std::get_if<InsertOp>(&ops[k].v);
        if (ins && ins->journaled && !journalBlocked_) journalApplied_ = std::max(journalApplied_, ins->id);
    };
    std::size_t live = 0;
    bool anyJournaled = false, journaledFailed = false;
    for (std::size_t k = begin; k < end; ++k) {
        live += !ops[k].failed;
        anyJournaled = anyJournaled || journaled(k);
        journaledFailed = journaledFailed || (ops[k].failed && journaled(k));
    }
    if (live > 0 && !journaledFailed) {
        try {
            Use(wBegin_).run();
            for (std::size_t k = begin; k < end; ++k)
                if (!ops[k].failed) apply(ops[k], now);
            markJournalApplied(ops, begin, end);
            Use(wCommit_).run();
            commits_.fetch_add(1, std::memory_order_relaxed);
            writes_.fetch_add(live, std::memory_order_relaxed);
            for (std::size_t k = begin; k < end; ++k) noteApplied(k);
            return;
        } catch (const std::exception& e) {
            rollback();
            if (live == 1 && !anyJournaled) {
                for (std::size_t k = begin; k < end; ++k)
                    if (!ops[k].failed) {
                        ops[k].failed = true;
                        ops[k].error = e.what();
                    }
                return;
            }
        }
    }
    // The batch failed: replay one write per transaction so only the bad ones
    // fail. A journaled insert was acknowledged already and must not be lost:
    // it is retried (every second, the writes behind it waiting) until it is
    // written, or until the store closes, when it stays in the journal.
    for (std::size_t k = begin; k < end; ++k) {
        bool j = journaled(k);
        if (ops[k].failed && !j) continue;
        // What an acknowledged message became (processed, delivered) must land
        // too: on a disk that is full or failing it is retried like a journaled
        // insert (a dropped delivery result would leave a sent message QUEUED,
        // to be sent again). A store with a quota drops it instead: only a prune,
        // queued behind it, could make room.
        bool state = (std::holds_alternative<ProcessedOp>(ops[k].v) || std::holds_alternative<DeliveryOp>(ops[k].v)) &&
                     options_.maxDatabaseBytes == 0;
        bool troubled = false;
        for (int attempt = 0;; ++attempt) {
            try {
                if (ops[k].failed) {
                    ops[k].failed = false;
                    assignIds(ops, k, k + 1);
                    if (ops[k].failed) throw std::runtime_error(ops[k].error);
                }
                Use(wBegin_).run();
                apply(ops[k], now);
                markJournalApplied(ops, k, k + 1);
                Use(wCommit_).run();
                commits_.fetch_add(1, std::memory_order_relaxed);
                writes_.fetch_add(1, std::memory_order_relaxed);
                noteApplied(k);
                break;
            } catch (const std::exception& e) {
                rollback();
                ops[k].failed = true;
                ops[k].error = e.what();
                auto* se = dynamic_cast<const sqlite::Error*>(&e);
                int rc = se ? (se->code & 0xff) : 0;
                bool transient = rc == SQLITE_FULL || rc == SQLITE_IOERR || rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
                if (!j && !(state && transient)) break;
                if (attempt == 0) {
                    troubled = true;
                    setTrouble(&SqliteStore::writerTrouble_, std::string("the store cannot be written: ") + e.what());
                    if (j)
                        std::fprintf(stderr,
                                     "junction: message %lld is in the intake journal but cannot be written to the"
                                     " store (%s); retrying every second, new messages refused meanwhile\n",
                                     static_cast<long long>(std::get<InsertOp>(ops[k].v).id), e.what());
                    else
                        std::fprintf(stderr,
                                     "junction: the result of message %lld cannot be written to the store (%s);"
                                     " retrying every second, new messages refused meanwhile\n",
                                     static_cast<long long>(std::holds_alternative<ProcessedOp>(ops[k].v)
                                                                ? std::get<ProcessedOp>(ops[k].v).p.id
                                                                : std::get<DeliveryOp>(ops[k].v).u.id),
                                     e.what());
                }
                bool stopping;
                {
                    std::lock_guard<std::mutex> lock(mu_);
                    stopping = stop_;
                }
                if (stopping) {
                    if (j) journalBlocked_ = true;  // keep the journal; the next open applies it
                    break;
                }
                std::this_thread::sleep_for(std::chrono::seconds(1));
            }
        }
        if (troubled && !ops[k].failed) {
            setTrouble(&SqliteStore::writerTrouble_, {});
            std::fprintf(stderr, "junction: the store can be written again; new messages are accepted\n");
            // The rest of the batch in one transaction again: one per write would
            // cost a few pages of WAL each, on a disk that has just had room again.
            if (k + 1 < end) runSegment(ops, k + 1, end);
            return;
        }
    }
}

void SqliteStore::setTrouble(std::string SqliteStore::*which, const std::string& why) {
    std::lock_guard<std::mutex> lock(refuseMu_);
    this->*which = why;
    refusing_ = !writerTrouble_.empty() || !budgetTrouble_.empty();
}

std::string SqliteStore::refusal() const {
    std::lock_guard<std::mutex> lock(refuseMu_);
    return !writerTrouble_.empty() ? writerTrouble_ : budgetTrouble_;
}

// Every second: the store's files against maxStoreBytes, the filesystem's free
// space against minFreeBytes. Past either, new messages are refused until it
// is back under; at 80% of either, a warning (once, again after it fell to 70%).
void SqliteStore::watchBudget() {
    util::nameThisThread("store-budget");
    namespace fs = std::filesystem;
    fs::path file(path_);
    fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
    std::string prefix = file.filename().string();
    bool warned = false;
    std::string current;  // the refusal this watch has set
    std::unique_lock<std::mutex> lock(budgetMu_);
    while (!budgetStop_) {
        lock.unlock();
        std::uint64_t used = 0;
        std::error_code ec;
        for (fs::directory_iterator it(dir, ec), endIt; !ec && it != endIt; it.increment(ec)) {
            if (it->path().filename().string().rfind(prefix, 0) != 0) continue;
            std::error_code sec;
            auto n = it->file_size(sec);
            if (!sec) used += n;
        }
        auto space = fs::space(dir, ec);
        std::uint64_t free = ec ? UINT64_MAX : space.available;
        double share = 0;  // of the budget taken, the larger of the two
        std::string over;
        if (options_.maxStoreBytes) {
            share = std::max(share, static_cast<double>(used) / static_cast<double>(options_.maxStoreBytes));
            if (used >= options_.maxStoreBytes)
                over = "the store's disk budget is reached (its files take " + std::to_string(used >> 20) +
                       " MB, max_size " + std::to_string(options_.maxStoreBytes >> 20) + " MB)";
        }
        if (options_.minFreeBytes && free != UINT64_MAX) {
            // 80% of the budget: free space down to 1.25 x min_free.
            share = std::max(share, static_cast<double>(options_.minFreeBytes) /
                                        std::max(1.0, static_cast<double>(free)));
            if (free <= options_.minFreeBytes)
                over = "the disk of the store has " + std::to_string(free >> 20) + " MB free, min_free is " +
                       std::to_string(options_.minFreeBytes >> 20) + " MB";
        }
        if (!over.empty() && current != over) {
            if (current.empty()) std::fprintf(stderr, "junction: %s; new messages refused\n", over.c_str());
            setTrouble(&SqliteStore::budgetTrouble_, over);
            current = over;
        } else if (over.empty() && !current.empty()) {
            setTrouble(&SqliteStore::budgetTrouble_, {});
            current.clear();
            std::fprintf(stderr, "junction: the store is within its disk budget again; new messages accepted\n");
        }
        if (!warned && share >= 0.8 && over.empty()) {
            std::fprintf(stderr, "junction: the store is at %d%% of its disk budget\n", static_cast<int>(share * 100));
            warned = true;
        } else if (share < 0.7) {
            warned = false;
        }
        lock.lock();
        budgetCv_.wait_for(lock, std::chrono::seconds(1), [&] { return budgetStop_; });
    }
}

void SqliteStore::callbacks(std::vector<Op>& ops, std::size_t begin, std::size_t end) {
    static const std::string kNoError;
    for (std::size_t k = begin; k < end; ++k) {
        Op& op = ops[k];
        try {
            if (auto* ins = std::get_if<InsertOp>(&op.v)) {
                if (ins->done) ins->done(op.failed ? 0 : ins->id, op.failed ? op.error : kNoError);
            } else if (auto* p = std::get_if<ProcessedOp>(&op.v)) {
                if (p->done) p->done(!op.failed, op.failed ? op.error : kNoError);
            } else if (auto* d = std::get_if<DeliveryOp>(&op.v)) {
                const Op& applied = d->foldedInto == kNotFolded ? op : ops[d->foldedInto];
                if (d->done) d->done(!applied.failed, applied.failed ? applied.error : kNoError);
            }
        } catch (...) {
            // A throwing callback must not take the writer down.
        }
    }
}

void SqliteStore::apply(Op& op, std::int64_t now) {
    if (auto* ins = std::get_if<InsertOp>(&op.v)) return applyInsert(*ins, now);
    if (auto* p = std::get_if<ProcessedOp>(&op.v)) return applyProcessed(*p, now);
    if (auto* d = std::get_if<DeliveryOp>(&op.v)) {
        if (d->foldedInto == kNotFolded) applyDelivery(*d, now);
    }
    if (auto* r = std::get_if<RawRepairOp>(&op.v)) applyRawRepair(*r);
}

void SqliteStore::applyRawRepair(RawRepairOp& op) {
    Use u(wDropRawRef_);
    u.int64(1, op.id);
    u.run();
    if (u.changes() > 0) putContent(op.id, kRaw, {}, op.raw);
    else voidRefs_.insert(op.id);  // its insert comes later (or never: its append failed outright)
}

void SqliteStore::applyInsert(InsertOp& op, std::int64_t now) {
    if (!voidRefs_.empty()) {  // inserts come in id order: smaller ids will not come any more
        voidRefs_.erase(voidRefs_.begin(), voidRefs_.lower_bound(op.id));
        if (voidRefs_.erase(op.id)) op.rawRef = 0;  // its record was not written: raw into SQLite
    }
    const NewMessage& m = op.m;
    const ProcessedMessage* p = m.processed ? &*m.processed : nullptr;
    Status status = m.status;
    const Metadata* meta = &m.meta;
    const std::string* error = &m.error;
    if (p) {
        status = p->status;
        if (status == Status::Transformed && !p->deliveries.empty()) status = aggregate(p->deliveries);
        if (!p->meta.messageType.empty() || !p->meta.controlId.empty()) meta = &p->meta;
        error = &p->error;
    }
    {
        Use u(wInsertMsg_);
        u.int64(1, op.id)
            .text(2, m.channel)
            .int64(3, op.receivedMs)
            .text(4, dbStatus(status))
            .text(5, m.dataType)
            .text(6, m.source)
            .textOrNull(7, meta->messageType)
            .textOrNull(8, meta->controlId)
            .textOrNull(9, meta->patientId)
            .textOrNull(10, meta->accession)
            .text(11, *error)
            .int64(12, now);
        if (op.rawRef) u.int64(13, static_cast<std::int64_t>(op.rawRef));
        else u.null(13);
        u.run();
    }
    // Raw is needed until processed in every mode; kept afterwards in development/production
    // (in the journal's content file when the record is there: op.rawRef).
    if (!op.rawRef && ((status == Status::Received && !p) || keepsRaw(m.storage))) putContent(op.id, kRaw, {}, m.raw);
    if (p) writeOutcome(op.id, *p, now, &op);
}

// Records, in the transaction applying them, the last journaled id applied
// (one row update per transaction, not per message).
void SqliteStore::markJournalApplied(const std::vector<Op>& ops, std::size_t begin, std::size_t end) {
    if (journalBlocked_) return;
    MessageId last = 0;
    for (std::size_t k = begin; k < end; ++k) {
        auto* ins = std::get_if<InsertOp>(&ops[k].v);
        if (ins && ins->journaled && !ops[k].failed) last = std::max(last, ins->id);
    }
    if (last == 0) return;
    Use u(wJournalMark_);
    u.int64(1, last);
    u.run();
}

void SqliteStore::writeOutcome(MessageId id, const ProcessedMessage& p, std::int64_t now, const InsertOp* insert) {
    // The raw message is at hand (and kept) when the outcome comes with the insert.
    const std::string* raw = insert && keepsRaw(insert->m.storage) ? &insert->m.raw : nullptr;
    const bool keepTransformed = keepsAll(p.storage) && !p.transformed.empty();
    if (keepTransformed) putContent(id, kTransformed, {}, raw && p.transformed == *raw ? std::string_view() : p.transformed);
    for (std::size_t i = 0; i < p.deliveries.size(); ++i) {
        const auto& d = p.deliveries[i];
        const FoldedDelivery* f = nullptr;
        if (insert)
            for (const auto& x : insert->folded)
                if (x.index == i) f = &x;
        if (insert) {  // the channel is known: no lookup of the message row
            Use u(wDeliveryAt_);
            u.int64(1, id).text(2, d.destination).text(3, insert->m.channel).text(4, dbStatus(d.status));
            u.int64(5, f ? f->attempts : 0);
            if (f && f->nextMs) u.int64(6, *f->nextMs);
            else u.null(6);
            u.text(7, d.error).int64(8, now);
            u.run();
        } else {
            Use u(wDeliveryNew_);
            u.int64(1, id).text(2, d.destination).text(3, dbStatus(d.status)).text(4, d.error).int64(5, now);
            u.run();
        }
        if (f && f->response && keepsAll(f->storage)) putContent(id, kResponse, d.destination, *f->response);
        bool keep = keepEncoded(p.storage, d.status) && (!f || keepEncoded(f->storage, d.status));
        if (keep && !d.encoded.empty()) {
            bool copy = keepTransformed ? d.encoded == p.transformed : raw && d.encoded == *raw;
            putContent(id, kEncoded, d.destination, copy ? std::string_view() : std::string_view(d.encoded));
        }
    }
}

void SqliteStore::applyProcessed(ProcessedOp& op, std::int64_t now) {
    const ProcessedMessage& p = op.p;
    Status status = p.status;
    if (status == Status::Transformed && !p.deliveries.empty()) status = aggregate(p.deliveries);
    // Rewriting the search columns costs an index update each: only when they change.
    bool metaChanged = false;
    {
        Use u(wMeta_);
        u.int64(1, p.id);
        if (!u.step()) throw std::runtime_error("unknown message id " + std::to_string(p.id));
        auto differs = [&](const std::string& v, int col) {
            if (v.empty()) return false;
            if (u.isNull(col)) return true;
            auto* t = sqlite3_column_blob(wMeta_.get(), col);
            auto n = static_cast<std::size_t>(sqlite3_column_bytes(wMeta_.get(), col));
            return n != v.size() || std::memcmp(t, v.data(), n) != 0;
        };
        metaChanged = differs(p.meta.messageType, 0) || differs(p.meta.controlId, 1) ||
                      differs(p.meta.patientId, 2) || differs(p.meta.accession, 3);
    }
    if (!metaChanged) {
        Use u(wProcessedStatus_);
        u.int64(1, p.id).text(2, dbStatus(status)).text(3, p.error).int64(4, now).int64(5, keepsRaw(p.storage));
        u.run();
    } else {
        Use u(wProcessed_);
        u.int64(1, p.id)
            .text(2, dbStatus(status))
            .text(3, p.error)
            .textOrNull(4, p.meta.messageType)
            .textOrNull(5, p.meta.controlId)
            .textOrNull(6, p.meta.patientId)
            .textOrNull(7, p.meta.accession)
            .int64(8, now)
            .int64(9, keepsRaw(p.storage));
        u.run();
        if (u.changes() == 0) throw std::runtime_error("unknown message id " + std::to_string(p.id));
    }
    writeOutcome(p.id, p, now);
    if (!keepsRaw(p.storage)) delContent(p.id, kRaw, {});
}

void SqliteStore::applyDelivery(DeliveryOp& op, std::int64_t now) {
    const DeliveryUpdate& d = op.u;
    const char* status = dbStatus(d.status);
    bool hasNext = d.status == Status::Queued;
    std::int64_t next = toMs(d.nextAttempt);
    bool updated;
    {
        Use u(wDeliveryUpd_);
        u.int64(1, d.id).text(2, d.destination).text(3, status).int64(4, d.attempts);
        if (hasNext) u.int64(5, next);
        else u.null(5);
        u.text(6, d.error).int64(7, now);
        u.run();
        updated = u.changes() > 0;
    }
    if (!updated) {  // a destination not recorded by recordProcessed
        Use u(wDeliveryIns_);
        u.int64(1, d.id).text(2, d.destination).text(3, status).int64(4, d.attempts);
        if (hasNext) u.int64(5, next);
        else u.null(5);
        u.text(6, d.error).int64(7, now);
        u.run();
        if (u.changes() == 0) throw std::runtime_error("unknown message id " + std::to_string(d.id));
    }
    if (keepsAll(d.storage) && !d.response.empty()) putContent(d.id, kResponse, d.destination, d.response);
    if (!keepEncoded(d.storage, d.status)) delContent(d.id, kEncoded, d.destination);
    if (d.only) {  // the message's status is this delivery's: no need to look at the others
        Use u(wMessageStatus_);
        u.int64(1, d.id).text(2, status).int64(3, now);
        u.run();
        return;
    }
    Use u(wAggregate_);
    u.int64(1, d.id).int64(2, now);
    u.run();
}

// ================================================================== checkpoints

namespace {
constexpr int kCheckpointBytes = 16 << 20;      // ask the checkpointer every 16 MB of WAL
constexpr int kSyncCheckpointBytes = 128 << 20;  // the writer checkpoints itself past 128 MB
}  // namespace

// Called on the writer thread after each commit with the WAL size in pages.
// The background checkpointer copies frames while the writer goes on, but it can
// rarely finish the whole WAL under continuous writes, and the WAL only restarts
// from its beginning after a complete checkpoint: past kSyncCheckpointPages the
// writer completes one itself (cheap then: most frames are already copied).
int SqliteStore::walHook(void* self, sqlite3* db, const char*, int pages) {
    auto* st = static_cast<SqliteStore*>(self);
    if (pages >= kSyncCheckpointBytes / st->pageBytes_) {
        sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        st->ckRequestedAt_ = 0;
        return SQLITE_OK;
    }
    if (pages < st->ckRequestedAt_) st->ckRequestedAt_ = 0;  // the WAL restarted
    if (pages - st->ckRequestedAt_ >= kCheckpointBytes / st->pageBytes_) {
        st->ckRequestedAt_ = pages;
        {
            std::lock_guard<std::mutex> lock(st->ckMu_);
            st->ckRequested_ = true;
        }
        st->ckCv_.notify_one();
    }
    return SQLITE_OK;
}

void SqliteStore::checkpointLoop() {
    util::nameThisThread("store-ckpt");
    std::unique_lock<std::mutex> lock(ckMu_);
    for (;;) {
        ckCv_.wait(lock, [&] { return ckRequested_ || ckStop_; });
        if (ckStop_) return;
        ckRequested_ = false;
        lock.unlock();
        sqlite3_wal_checkpoint_v2(cdb_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        lock.lock();
    }
}

// ================================================================== partitions

void SqliteStore::ensurePartition(int day, MessageId firstId) {
    // Own transaction, before the batch: the batch's rollback cannot undo it.
    // Keyed (kind, message_id, ...): every kind is appended at the end of its own
    // key range (raw at insert, encoded at processing, ...), so pages fill up
    // sequentially instead of splitting in the middle. WITHOUT ROWID: one b-tree
    // per content row instead of table + index.
    std::string sql = "CREATE TABLE IF NOT EXISTS " + contentTable(day) +
                      " (message_id INTEGER NOT NULL, kind INTEGER NOT NULL, destination TEXT NOT NULL,"
                      " data BLOB NOT NULL, PRIMARY KEY (kind, message_id, destination)) WITHOUT ROWID";
    try {
        Use(wBegin_).run();
        sqlite::exec(wdb_, sql.c_str());
        {
            Use u(wPartition_);
            u.int64(1, day).int64(2, firstId);
            u.run();
        }
        Use(wCommit_).run();
    } catch (...) {
        rollback();
        throw;
    }
    std::lock_guard<std::mutex> lock(partsMu_);
    parts_.push_back({day, firstId, false});
}

SqliteStore::WriterPart* SqliteStore::writerPart(MessageId id) {
    int idx = partitionIndex(parts_, id);
    if (idx < 0 || parts_[idx].dropped) return nullptr;
    int day = parts_[idx].day;
    auto it = wparts_.find(day);
    if (it != wparts_.end()) return &it->second;
    WriterPart wp;
    std::string t = contentTable(day);
    wp.put = Stmt(wdb_, "INSERT OR REPLACE INTO " + t + " (message_id, kind, destination, data) VALUES (?1, ?2, ?3, ?4)");
    wp.del = Stmt(wdb_, "DELETE FROM " + t + " WHERE message_id = ?1 AND kind = ?2 AND destination = ?3");
    return &wparts_.emplace(day, std::move(wp)).first->second;
}

void SqliteStore::putContent(MessageId id, int kind, std::string_view dest, std::string_view data) {
    WriterPart* wp = writerPart(id);
    if (!wp) throw std::runtime_error("no content partition for message " + std::to_string(id));
    Use u(wp->put);
    u.int64(1, id).int64(2, kind).text(3, dest).blob(4, data);
    u.run();
}

void SqliteStore::delContent(MessageId id, int kind, std::string_view dest) {
    WriterPart* wp = writerPart(id);
    if (!wp) return;
    Use u(wp->del);
    u.int64(1, id).int64(2, kind).text(3, dest);
    u.run();
}

// ================================================================== prune

std::uint64_t SqliteStore::prune(const std::string& channel, Clock::time_point cutoff) {
    std::int64_t cutoffMs = toMs(cutoff);
    if (std::this_thread::get_id() == writerId_) return runPrune(channel, cutoffMs);
    std::promise<std::uint64_t> result;
    auto future = result.get_future();
    enqueue(Op(PruneOp{channel, cutoffMs, &result}));
    return future.get();
}

std::uint64_t SqliteStore::runPrune(const std::string& channel, std::int64_t cutoffMs) {
    if (parts_.empty()) return 0;
    // Ids are never reused: remember the high-water mark before deleting the newest rows.
    Use(wBegin_).run();
    try {
        Stmt hw(wdb_, "INSERT OR REPLACE INTO store_meta (key, value) VALUES ('last_id', ?1)");
        Use u(hw);
        u.int64(1, nextId_ - 1);
        u.run();
        Use(wCommit_).run();
    } catch (...) {
        rollback();
        throw;
    }

    Stmt delMsgs(wdb_,
                 "DELETE FROM messages WHERE id BETWEEN ?1 AND ?2 AND (?3 = '' OR channel = ?3)"
                 " AND received_at < ?4 AND status NOT IN ('Received', 'Queued')"
                 " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = messages.id"
                 " AND d.status = 'Queued')");
    Stmt delDels(wdb_,
                 "DELETE FROM deliveries WHERE message_id BETWEEN ?1 AND ?2"
                 " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = deliveries.message_id)");
    Stmt remaining(wdb_, "SELECT EXISTS (SELECT 1 FROM messages WHERE id BETWEEN ?1 AND ?2)");
    Stmt markDropped(wdb_, "UPDATE partitions SET dropped = 1 WHERE day = ?1");

    int cutoffDay = dayOf(cutoffMs);
    std::uint64_t total = 0;
    bool droppedAny = false;
    for (std::size_t k = 0; k < parts_.size(); ++k) {
        Partition part = parts_[k];
        if (part.dropped || part.day > cutoffDay) continue;
        MessageId lo = part.firstId;
        MessageId hi = k + 1 < parts_.size() ? parts_[k + 1].firstId - 1 : nextId_ - 1;
        std::uint64_t removed = 0;
        for (MessageId a = lo; a <= hi; a += kPruneChunk) {
            MessageId b = std::min(hi, a + kPruneChunk - 1);
            Use(wBegin_).run();
            try {
                {
                    Use u(delMsgs);
                    u.int64(1, a).int64(2, b).text(3, channel).int64(4, cutoffMs);
                    u.run();
                    removed += static_cast<std::uint64_t>(u.changes());
                }
                {
                    Use u(delDels);
                    u.int64(1, a).int64(2, b);
                    u.run();
                }
                Use(wCommit_).run();
            } catch (...) {
                rollback();
                throw;
            }
        }
        total += removed;
        if (removed == 0) continue;
        bool left;
        {
            Use u(remaining);
            u.int64(1, lo).int64(2, hi);
            left = u.step() && u.int64(0) != 0;
        }
        bool newest = k + 1 == parts_.size();
        if (!left && !newest) {
            // The whole day is gone: drop its table (pages go to the freelist,
            // incremental_vacuum below gives them back to the file system).
            wparts_.erase(part.day);  // finalize statements on the table first
            Use(wBegin_).run();
            try {
                sqlite::exec(wdb_, ("DROP TABLE IF EXISTS " + contentTable(part.day)).c_str());
                Use u(markDropped);
                u.int64(1, part.day);
                u.run();
                Use(wCommit_).run();
            } catch (...) {
                rollback();
                throw;
            }
            {
                std::lock_guard<std::mutex> lock(partsMu_);
                parts_[k].dropped = true;
            }
            droppedAny = true;
        } else {
            // Other channels (or the newest partition) still use the day: delete the
            // content rows of the removed messages.
            Stmt delContentRows(wdb_, "DELETE FROM " + contentTable(part.day) +
                                          " WHERE kind IN (0, 1, 2, 3) AND message_id BETWEEN ?1 AND ?2 AND NOT EXISTS"
                                          " (SELECT 1 FROM messages m WHERE m.id = message_id)");
            for (MessageId a = lo; a <= hi; a += kPruneChunk) {
                MessageId b = std::min(hi, a + kPruneChunk - 1);
                Use(wBegin_).run();
                try {
                    Use u(delContentRows);
                    u.int64(1, a).int64(2, b);
                    u.run();
                    Use(wCommit_).run();
                } catch (...) {
                    rollback();
                    throw;
                }
            }
        }
    }
    if (droppedAny) {
        sqlite::exec(wdb_, "PRAGMA incremental_vacuum");
        sqlite3_wal_checkpoint_v2(wdb_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    }
    // The journal's content files below the oldest message left hold only pruned content.
    if (total > 0) {
        MessageId oldest = sqlite::queryInt(wdb_, "SELECT coalesce(min(id), 0) FROM messages", 0);
        if (oldest == 0) oldest = nextId_.load();
        if (journal_) journal_->dropContentBelow(oldest);
        else dropContentFilesBelow(path_, oldest);
    }
    return total;
}

// ================================================================== readers

namespace {

// One read transaction on the reader connection (caller holds readMu_).
class ReadTxn {
public:
    ReadTxn(const Stmt& begin, const Stmt& commit, const Stmt& rollback) : commit_(commit), rollback_(rollback) {
        Use(begin).run();
    }
    ~ReadTxn() {
        if (!done_) {
            try {
                Use(rollback_).run();
            } catch (...) {
            }
        }
    }
    void commit() {
        Use(commit_).run();
        done_ = true;
    }

private:
    const Stmt& commit_;
    const Stmt& rollback_;
    bool done_ = false;
};

std::string orEmpty(const Use& u, int col) { return u.isNull(col) ? std::string() : u.str(col); }

}  // namespace

SqliteStore::ReaderPart* SqliteStore::readerPart(MessageId id) {
    int day;
    {
        std::lock_guard<std::mutex> lock(partsMu_);
        int idx = partitionIndex(parts_, id);
        if (idx < 0 || parts_[idx].dropped) return nullptr;
        day = parts_[idx].day;
    }
    auto it = rparts_.find(day);
    if (it != rparts_.end()) return &it->second;
    ReaderPart rp;
    std::string t = contentTable(day);
    try {
        rp.all = Stmt(rdb_, "SELECT kind, destination, data FROM " + t + " WHERE kind IN (0, 1, 2, 3) AND message_id = ?1");
        rp.one = Stmt(rdb_, "SELECT data FROM " + t + " WHERE message_id = ?1 AND kind = ?2 AND destination = ?3");
    } catch (const sqlite::Error&) {
        return nullptr;  // dropped meanwhile
    }
    return &rparts_.emplace(day, std::move(rp)).first->second;
}

std::optional<std::string> SqliteStore::contentRow(MessageId id, int kind, const std::string& dest) {
    ReaderPart* rp = readerPart(id);
    if (!rp) return std::nullopt;
    try {
        Use u(rp->one);
        u.int64(1, id).int64(2, kind).text(3, dest);
        if (!u.step()) return std::nullopt;
        return u.str(0);
    } catch (const sqlite::Error&) {
        return std::nullopt;  // the partition was dropped by prune (its messages are gone)
    }
}

std::string SqliteStore::readContent(MessageId id, int kind, const std::string& dest) {
    return contentRow(id, kind, dest).value_or(std::string());
}

std::string SqliteStore::rawOf(MessageId id) {
    Use u(rGetMsg_);
    u.int64(1, id);
    if (u.step() && !u.isNull(11)) return journalContent(static_cast<std::uint64_t>(u.int64(11)), id);
    return readContent(id, kRaw, {});
}

std::string SqliteStore::encodedOf(MessageId id, const std::string& dest) {
    auto encoded = contentRow(id, kEncoded, dest);
    if (!encoded || !encoded->empty()) return encoded.value_or(std::string());
    auto transformed = contentRow(id, kTransformed, {});
    if (transformed && !transformed->empty()) return std::move(*transformed);
    return rawOf(id);
}

// The shared shape of the recovery reads: rows of `st` for a channel (up to
// `limit`), each made by `row`, then given its content by `content`, all in one
// read transaction that sees every acknowledged write.
template <typename T, typename Row, typename Content>
std::vector<T> SqliteStore::readPending(Stmt& st, const std::string& channel, std::size_t limit, Row row,
                                        Content content, const std::function<void(Use&)>& bindMore, bool waitForWrites) {
    if (waitForWrites) catchUp();
    std::vector<T> out;
    std::lock_guard<std::mutex> lock(readMu_);
    ReadTxn txn(rBegin_, rCommit_, rRollback_);
    {
        Use u(st);
        u.text(1, channel).int64(2, static_cast<std::int64_t>(
                                        std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max())));
        if (bindMore) bindMore(u);
        while (u.step()) out.push_back(row(u));
    }
    for (auto& t : out) content(t);
    txn.commit();
    return out;
}

std::vector<PendingMessage> SqliteStore::pendingMessages(const std::string& channel, std::size_t limit) {
    static const std::string kNoDest;
    std::unordered_map<MessageId, std::uint64_t> refs;  // raw content in the journal
    return readPending<PendingMessage>(
        rPendingMsgs_, channel, limit,
        [&](const Use& u) {
            PendingMessage pm;
            pm.id = u.int64(0);
            pm.channel = u.str(1);
            pm.dataType = u.str(2);
            pm.source = u.str(3);
            pm.receivedAt = fromMs(u.int64(4));
            if (!u.isNull(5)) refs[pm.id] = static_cast<std::uint64_t>(u.int64(5));
            return pm;
        },
        [&](PendingMessage& pm) {
            auto it = refs.find(pm.id);
            pm.raw = it != refs.end() ? journalContent(it->second, pm.id) : readContent(pm.id, kRaw, kNoDest);
        });
}

std::string SqliteStore::journalContent(std::uint64_t ref, MessageId id) const {
    std::optional<std::string> raw = journal_ ? journal_->readContent(ref, id) : readContentFile(path_, ref, id);
    if (!raw) {
        std::fprintf(stderr, "junction: the raw content of message %lld is missing from the intake journal's files\n",
                     static_cast<long long>(id));
        return {};
    }
    return std::move(*raw);
}

std::vector<PendingDelivery> SqliteStore::pendingDeliveries(const std::string& channel, std::size_t limit) {
    return pendingDeliveries(channel, {}, 0, limit, true);
}

std::vector<PendingDelivery> SqliteStore::pendingDeliveries(const std::string& channel, const std::string& destination,
                                                            MessageId after, std::size_t limit, bool waitForWrites) {
    return readPending<PendingDelivery>(
        rPendingDels_, channel, limit,
        [](const Use& u) {
            PendingDelivery pd;
            pd.id = u.int64(0);
            pd.channel = u.str(1);
            pd.destination = u.str(2);
            pd.attempts = static_cast<int>(u.int64(3));
            pd.nextAttempt = u.isNull(4) ? Clock::time_point{} : fromMs(u.int64(4));
            return pd;
        },
        [&](PendingDelivery& pd) { pd.encoded = encodedOf(pd.id, pd.destination); },
        [&](Use& u) {
            u.int64(3, after);
            u.textOrNull(4, destination);
        },
        waitForWrites);
}

namespace {

MessageSummary summaryFrom(const Use& u) {
    MessageSummary s;
    s.id = u.int64(0);
    s.channel = u.str(1);
    s.receivedAt = fromMs(u.int64(2));
    s.status = statusOf(u.str(3));
    s.dataType = u.str(4);
    s.source = u.str(5);
    s.meta.messageType = orEmpty(u, 6);
    s.meta.controlId = orEmpty(u, 7);
    s.meta.patientId = orEmpty(u, 8);
    s.meta.accession = orEmpty(u, 9);
    s.error = u.str(10);
    return s;
}

}  // namespace

std::vector<MessageSummary> SqliteStore::search(const SearchQuery& q) {
    catchUp();
    std::string sql =
        "SELECT id, channel, received_at, status, data_type, source, message_type, control_id, patient_id,"
        " accession, error FROM messages WHERE 1";
    int n = 0;
    auto add = [&](bool on, const char* cond) {
        if (!on) return 0;
        sql += " AND ";
        sql += cond;
        sql += " ?" + std::to_string(++n);
        return n;
    };
    int pChannel = add(!q.channel.empty(), "channel =");
    if (q.status) {  // a literal, so that the partial status indexes apply
        sql += " AND status = '";
        sql += dbStatus(*q.status);
        sql += "'";
    }
    int pType = add(!q.messageType.empty(), "message_type =");
    int pControl = add(!q.controlId.empty(), "control_id =");
    int pPatient = add(!q.patientId.empty(), "patient_id =");
    int pAccession = add(!q.accession.empty(), "accession =");
    int pFrom = add(q.from.has_value(), "received_at >=");
    int pTo = add(q.to.has_value(), "received_at <");
    int pBefore = add(q.beforeId > 0, "id <");
    sql += " ORDER BY id DESC LIMIT ?" + std::to_string(++n);
    int pLimit = n;

    std::vector<MessageSummary> out;
    std::lock_guard<std::mutex> lock(readMu_);
    auto it = rSearch_.find(sql);
    if (it == rSearch_.end()) it = rSearch_.emplace(sql, Stmt(rdb_, sql)).first;
    Use u(it->second);
    if (pChannel) u.text(pChannel, q.channel);
    if (pType) u.text(pType, q.messageType);
    if (pControl) u.text(pControl, q.controlId);
    if (pPatient) u.text(pPatient, q.patientId);
    if (pAccession) u.text(pAccession, q.accession);
    if (pFrom) u.int64(pFrom, toMs(*q.from));
    if (pTo) u.int64(pTo, toMs(*q.to));
    if (pBefore) u.int64(pBefore, q.beforeId);
    u.int64(pLimit, q.limit > 0 ? q.limit : 100);
    while (u.step()) out.push_back(summaryFrom(u));
    return out;
}

std::optional<MessageDetail> SqliteStore::get(MessageId id) {
    catchUp();
    std::lock_guard<std::mutex> lock(readMu_);
    ReadTxn txn(rBegin_, rCommit_, rRollback_);
    MessageDetail d;
    {
        Use u(rGetMsg_);
        u.int64(1, id);
        if (!u.step()) {
            return std::nullopt;
        }
        d.summary = summaryFrom(u);
        if (!u.isNull(11)) d.raw = journalContent(static_cast<std::uint64_t>(u.int64(11)), id);
    }
    {
        Use u(rGetDels_);
        u.int64(1, id);
        while (u.step()) {
            DeliveryRecord r;
            r.destination = u.str(0);
            r.status = statusOf(u.str(1));
            r.attempts = static_cast<int>(u.int64(2));
            if (!u.isNull(3)) r.nextAttempt = fromMs(u.int64(3));
            r.error = u.str(4);
            r.updatedAt = fromMs(u.int64(5));
            d.deliveries.push_back(std::move(r));
        }
    }
    bool copied[4] = {};
    std::vector<bool> copiedEncoded(d.deliveries.size());
    if (ReaderPart* rp = readerPart(id)) {
        try {
            Use u(rp->all);
            u.int64(1, id);
            while (u.step()) {
                int kind = static_cast<int>(u.int64(0));
                std::string dest = u.str(1);
                std::string data = u.str(2);
                if (kind == kRaw) {
                    d.raw = std::move(data);
                } else if (kind == kTransformed) {
                    copied[kTransformed] = data.empty();
                    d.transformed = std::move(data);
                } else {
                    for (std::size_t i = 0; i < d.deliveries.size(); ++i) {
                        auto& r = d.deliveries[i];
                        if (r.destination != dest) continue;
                        if (kind == kEncoded) copiedEncoded[i] = data.empty();
                        (kind == kEncoded ? r.encoded : r.response) = data;
                    }
                }
            }
        } catch (const sqlite::Error&) {
            // partition dropped meanwhile: no content
        }
    }
    // Copy markers (empty rows) stand for the content they repeat.
    if (d.transformed.empty()) d.transformed = copied[kTransformed] ? d.raw : std::string();
    for (std::size_t i = 0; i < d.deliveries.size(); ++i)
        if (copiedEncoded[i]) d.deliveries[i].encoded = d.transformed.empty() ? d.raw : d.transformed;
    txn.commit();
    return d;
}

std::vector<std::pair<Status, std::uint64_t>> SqliteStore::countByStatus(const std::string& channel) {
    catchUp();
    std::vector<std::pair<Status, std::uint64_t>> out;
    std::lock_guard<std::mutex> lock(readMu_);
    Use u(channel.empty() ? rCountAll_ : rCount_);
    if (!channel.empty()) u.text(1, channel);
    while (u.step()) out.emplace_back(statusOf(u.str(0)), static_cast<std::uint64_t>(u.int64(1)));
    std::sort(out.begin(), out.end());
    return out;
}

std::uint64_t SqliteStore::countQueued(const std::string& channel, const std::string& destination) {
    catchUp();
    std::lock_guard<std::mutex> lock(readMu_);
    Stmt st(rdb_,
            "SELECT count(*) FROM deliveries WHERE channel = ?1 AND status = 'Queued' AND destination = ?2");
    Use u(st);
    u.text(1, channel).text(2, destination);
    return u.step() ? static_cast<std::uint64_t>(u.int64(0)) : 0;
}

MessageId SqliteStore::lastMessageId() {
    catchUp();
    std::lock_guard<std::mutex> lock(readMu_);
    Stmt st(rdb_, "SELECT coalesce(max(id), 0) FROM messages");
    Use u(st);
    return u.step() ? u.int64(0) : 0;
}

}  // namespace

std::unique_ptr<MessageStore> openSqliteStore(const std::string& path, const StoreOptions& options) {
    // Memory statistics cost a global mutex round trip per SQLite allocation. Only
    // possible before SQLite initializes (SQLITE_MISUSE afterwards: then ignored).
    static std::once_flag configured;
    std::call_once(configured, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
    return std::make_unique<SqliteStore>(path, options);
}

}  // namespace junction::store
