// SqliteStore's day partitions (see sqlite_store_impl.h): a day's content
// table made when its first message comes, and prune, which deletes old
// messages by id range and drops a day's table once nothing of it is left.
#include "engine/store/sqlite/sqlite_store_impl.h"

namespace junction::store::detail {

namespace {

constexpr std::int64_t kPruneChunk = 20000;  // ids per prune transaction

}  // namespace

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
    inTransaction([&] {
        sqlite::exec(wdb_, sql.c_str());
        Use u(wPartition_);
        u.int64(1, day).int64(2, firstId);
        u.run();
    });
    std::lock_guard<std::mutex> lock(partsMu_);
    parts_.push_back({day, firstId, false});
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
    inTransaction([&] {
        Stmt hw(wdb_, "INSERT OR REPLACE INTO store_meta (key, value) VALUES ('last_id', ?1)");
        Use u(hw);
        u.int64(1, nextId_ - 1);
        u.run();
    });

    Stmt delMsgs(wdb_,
                 "DELETE FROM messages WHERE id BETWEEN ?1 AND ?2 AND (?3 = '' OR channel = ?3)"
                 " AND received_at < ?4 AND status NOT IN ('Received', 'Queued')"
                 " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = messages.id"
                 " AND d.status = 'Queued')");
    Stmt delDels(wdb_,
                 "DELETE FROM deliveries WHERE message_id BETWEEN ?1 AND ?2"
                 " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = deliveries.message_id)");
    Stmt delCopies(wdb_,
                   "DELETE FROM message_copies WHERE copy BETWEEN ?1 AND ?2"
                   " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = message_copies.copy)");
    Stmt remaining(wdb_, "SELECT EXISTS (SELECT 1 FROM messages WHERE id BETWEEN ?1 AND ?2)");
    Stmt markDropped(wdb_, "UPDATE partitions SET dropped = 1 WHERE day = ?1");

    int cutoffDay = dayOf(cutoffMs);
    std::uint64_t total = 0;
    bool droppedAny = false;
    std::vector<TextPrune> textPrunes;  // for the text index, once the messages are gone
    for (std::size_t k = 0; k < parts_.size(); ++k) {
        Partition part = parts_[k];
        if (part.dropped || part.day > cutoffDay) continue;
        MessageId lo = part.firstId;
        MessageId hi = k + 1 < parts_.size() ? parts_[k + 1].firstId - 1 : nextId_ - 1;
        std::uint64_t removed = 0;
        for (MessageId a = lo; a <= hi; a += kPruneChunk) {
            MessageId b = std::min(hi, a + kPruneChunk - 1);
            inTransaction([&] {
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
                {
                    Use u(delCopies);
                    u.int64(1, a).int64(2, b);
                    u.run();
                }
            });
        }
        total += removed;
        if (removed == 0) continue;
        textPrunes.push_back({part.day, lo, hi, false});
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
            inTransaction([&] {
                sqlite::exec(wdb_, ("DROP TABLE IF EXISTS " + contentTable(part.day)).c_str());
                Use u(markDropped);
                u.int64(1, part.day);
                u.run();
            });
            {
                std::lock_guard<std::mutex> lock(partsMu_);
                parts_[k].dropped = true;
            }
            droppedAny = true;
            textPrunes.back().drop = true;
        } else {
            // Other channels (or the newest partition) still use the day: delete the
            // content rows of the removed messages.
            Stmt delContentRows(wdb_, "DELETE FROM " + contentTable(part.day) +
                                          " WHERE kind IN " JUNCTION_CONTENT_KINDS " AND message_id BETWEEN ?1 AND ?2 AND NOT EXISTS"
                                          " (SELECT 1 FROM messages m WHERE m.id = message_id)");
            for (MessageId a = lo; a <= hi; a += kPruneChunk) {
                MessageId b = std::min(hi, a + kPruneChunk - 1);
                inTransaction([&] {
                    Use u(delContentRows);
                    u.int64(1, a).int64(2, b);
                    u.run();
                });
            }
        }
    }
    if (!textPrunes.empty()) pruneText(std::move(textPrunes));
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

}  // namespace junction::store::detail
