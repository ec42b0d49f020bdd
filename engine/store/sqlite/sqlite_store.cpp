// SqliteStore (see sqlite_store_impl.h for its layout): opening a store (its
// connections, schema and statements, the intake journal and what it holds
// from the last run), closing it, and openSqliteStore, the public entry.
#include "engine/store/sqlite/sqlite_store_impl.h"
#include "engine/store/sqlite/paced_vfs.h"

#include <cstdio>
#include <filesystem>

namespace junction::store {

namespace detail {

namespace {

constexpr int kSchemaVersion = 4;

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

sqlite3* openConnection(const std::string& path) { return sqlite::open(path, "message store", 10000); }

}  // namespace

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
                   " coalesce((SELECT max(id) FROM source_marks), 0),"
                   " coalesce((SELECT max(first_id) - 1 FROM partitions), 0))");
            Use u(s);
            if (u.step()) last = u.int64(0);
        }
        nextId_ = last + 1;
        {
            Stmt s(wdb_, "SELECT key, id, value FROM source_marks");
            Use u(s);
            while (u.step()) marks_[u.str(0)] = {u.int64(1), u.str(2)};
        }

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
        if (!options_.readOnly)
            wSourceMark_ = Stmt(wdb_,
                                "INSERT INTO source_marks (key, value, id) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO"
                                " UPDATE SET value = excluded.value, id = excluded.id WHERE excluded.id >= source_marks.id");

        openTextIndex();

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
                             " WHERE channel = ?1 AND status = 'Queued' AND message_id > ?3 AND message_id <= ?5"
                             " AND (?4 IS NULL OR destination = ?4) ORDER BY message_id LIMIT ?2");
        rGetMsg_ = Stmt(rdb_,
                        "SELECT id, channel, received_at, status, data_type, source, message_type, control_id,"
                        " patient_id, accession, error, raw_ref FROM messages WHERE id = ?1");
        rGetDels_ = Stmt(rdb_,
                         "SELECT destination, status, attempts, next_attempt, error, updated_at FROM deliveries"
                         " WHERE message_id = ?1 ORDER BY destination");
        rCountAll_ = Stmt(rdb_, "SELECT status, count(*) FROM messages GROUP BY status");
        rCount_ = Stmt(rdb_, "SELECT status, count(*) FROM messages WHERE channel = ?1 GROUP BY status");
        attachTextIndex();

        // Checkpoints run on their own connection and thread so that copying the WAL
        // into the database (and its fsync) does not stall the writer.
        cdb_ = sqlite::open(path, "message store", 10000, sqlite::pacedVfs());
        sqlite::exec(cdb_, options_.synchronousFull ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
        sqlite3_wal_hook(wdb_, &SqliteStore::walHook, this);  // replaces wal_autocheckpoint
    } catch (const std::exception& e) {
        // Stmt members are finalized by their destructors; close_v2 defers until then.
        if (cdb_) sqlite3_close_v2(cdb_);
        if (xdb_) sqlite3_close_v2(xdb_);
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
                    if (!rec.markOnly && keepsRaw(rec.message.storage)) enqueue(Op(RawRepairOp{rec.id, std::move(rec.message.raw)}));
            });
            recoverJournal();
        } catch (const std::exception& e) {
            finalizeStatements();
            if (xdb_) sqlite3_close_v2(xdb_);
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
    if (xdb_) textIndexer_ = std::thread([this] { textIndexLoop(); });
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
        if (version == 2) {  // source marks
            sqlite::exec(wdb_, "CREATE TABLE source_marks (key TEXT PRIMARY KEY, value TEXT NOT NULL, id INTEGER NOT NULL)");
            version = 3;
        }
        if (version == 3) {  // reprocessed messages linked to their originals
            sqlite::exec(wdb_, "CREATE TABLE message_copies (copy INTEGER PRIMARY KEY, original INTEGER NOT NULL)");
            sqlite::exec(wdb_, "CREATE INDEX message_copies_original ON message_copies(original)");
            version = 4;
        }
        sqlite::exec(wdb_, ("PRAGMA user_version = " + std::to_string(version)).c_str());
        sqlite::exec(wdb_, "COMMIT");
    } catch (...) {
        sqlite3_exec(wdb_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

SqliteStore::~SqliteStore() {
    closeTextIndex();  // first: it reads what the others write
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
    for (Stmt* s : {&wJournalMark_, &wDropRawRef_, &wSourceMark_, &wBegin_, &wCommit_, &wInsertMsg_, &wProcessed_, &wProcessedStatus_, &wMeta_,
                    &wDeliveryNew_, &wDeliveryAt_, &wDeliveryUpd_, &wDeliveryIns_, &wAggregate_, &wMessageStatus_,
                    &wPartition_, &rBegin_, &rCommit_, &rRollback_, &rPendingMsgs_, &rPendingDels_, &rGetMsg_, &rGetDels_,
                    &rCountAll_, &rCount_})
        s->reset();
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
        // Durable, applied or not: the latest value of its source mark.
        if (rec.message.mark) noteMark(*rec.message.mark, rec.id);
        if (rec.markOnly) {
            if (rec.id <= applied) continue;
            queue_.push_back(Op(MarkOp{std::move(*rec.message.mark), nullptr, rec.id, true}));
            ++submitted_;
            ++replayed;
            continue;
        }
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

}  // namespace detail

std::unique_ptr<MessageStore> openSqliteStore(const std::string& path, const StoreOptions& options) {
    // Memory statistics cost a global mutex round trip per SQLite allocation. Only
    // possible before SQLite initializes (SQLITE_MISUSE afterwards: then ignored).
    static std::once_flag configured;
    std::call_once(configured, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
    return std::make_unique<detail::SqliteStore>(path, options);
}

}  // namespace junction::store
