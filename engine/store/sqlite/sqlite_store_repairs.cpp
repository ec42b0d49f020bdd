// SqliteStore's repairs for operators (see sqlite_store_impl.h): a finished
// delivery queued again, and a message deleted. Each runs alone on the writer thread in its own transaction
// (after every write submitted before it) while its caller waits: rare, small
// writes that must see the state the writer has made.
#include "engine/store/sqlite/sqlite_store_impl.h"

namespace junction::store::detail {

void SqliteStore::runRepair(const std::function<void()>& body) {
    if (options_.readOnly) throw std::runtime_error("message store: opened read-only");
    std::promise<void> result;
    auto done = result.get_future();
    enqueue(Op(RepairOp{body, &result}));
    flush();  // the writer does not let a batch linger for it
    done.get();
}

RepairOutcome SqliteStore::requeueDelivery(MessageId id, const std::string& destination) {
    RepairOutcome outcome = RepairOutcome::NotFound;
    runRepair([&] {
        std::string messageStatus, deliveryStatus;
        {
            Stmt st(wdb_,
                    "SELECT m.status, d.status FROM messages m JOIN deliveries d ON d.message_id = m.id"
                    " WHERE m.id = ?1 AND d.destination = ?2");
            Use u(st);
            u.int64(1, id).text(2, destination);
            if (!u.step()) return;
            messageStatus = u.str(0);
            deliveryStatus = u.str(1);
        }
        if (messageStatus == dbStatus(Status::Received) || deliveryStatus == dbStatus(Status::Queued)) {
            outcome = RepairOutcome::Busy;
            return;
        }
        std::int64_t now = toMs(Clock::now());
        {
            Stmt st(wdb_,
                    "UPDATE deliveries SET status = 'Queued', attempts = 0, next_attempt = NULL, error = '',"
                    " updated_at = ?3 WHERE message_id = ?1 AND destination = ?2");
            Use u(st);
            u.int64(1, id).text(2, destination).int64(3, now);
            u.run();
        }
        Use u(wAggregate_);
        u.int64(1, id).int64(2, now);
        u.run();
        outcome = RepairOutcome::Done;
    });
    return outcome;
}

RepairOutcome SqliteStore::deleteMessage(MessageId id) {
    RepairOutcome outcome = RepairOutcome::NotFound;
    runRepair([&] {
        {
            Stmt st(wdb_,
                    "SELECT status = 'Received' OR EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = ?1"
                    " AND d.status = 'Queued') FROM messages WHERE id = ?1");
            Use u(st);
            u.int64(1, id);
            if (!u.step()) return;
            if (u.int64(0) != 0) {
                outcome = RepairOutcome::Busy;
                return;
            }
        }
        for (const char* sql : {"DELETE FROM messages WHERE id = ?1", "DELETE FROM deliveries WHERE message_id = ?1",
                                "DELETE FROM message_copies WHERE copy = ?1"}) {
            Stmt st(wdb_, sql);
            Use u(st);
            u.int64(1, id);
            u.run();
        }
        // Its content rows, in the partition of its id (none when that day is dropped).
        // Raw content kept in a journal content file goes with that file.
        int at = partitionIndex(parts_, id);
        if (at >= 0 && !parts_[static_cast<std::size_t>(at)].dropped) {
            Stmt st(wdb_, "DELETE FROM " + contentTable(parts_[static_cast<std::size_t>(at)].day) +
                              " WHERE kind IN " JUNCTION_CONTENT_KINDS " AND message_id = ?1");
            Use u(st);
            u.int64(1, id);
            u.run();
        }
        outcome = RepairOutcome::Done;
    });
    return outcome;
}

// Under readMu_, in the caller's read transaction.
void SqliteStore::readLinks(MessageId id, MessageDetail& d) {
    {
        Stmt st(rdb_,
                "SELECT c.original FROM message_copies c JOIN messages m ON m.id = c.original WHERE c.copy = ?1");
        Use u(st);
        u.int64(1, id);
        if (u.step()) d.original = u.int64(0);
    }
    Stmt st(rdb_,
            "SELECT c.copy FROM message_copies c JOIN messages m ON m.id = c.copy WHERE c.original = ?1 ORDER BY c.copy");
    Use u(st);
    u.int64(1, id);
    while (u.step()) d.copies.push_back(u.int64(0));
}

}  // namespace junction::store::detail
