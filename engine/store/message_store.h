// The message store: every message Junction receives, what became of it per
// destination, and the queue of deliveries still to make. SQL stays behind
// this interface (SQLite embedded by default; PostgreSQL later).
//
// Writes are asynchronous and batched (group commit): a writer thread gathers
// the writes of all channels into one transaction every few milliseconds or
// N rows, commits, then calls each write's completion callback. A source that
// must not acknowledge before its message is durable waits for its callback.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/store/message_log.h"

namespace junction::store {

using Clock = std::chrono::system_clock;
using MessageId = std::int64_t;

// Message states (per message) and delivery states (per destination).
enum class Status { Received, Filtered, Transformed, Queued, Sent, Error };
const char* toString(Status s);
std::optional<Status> parseStatus(std::string_view s);

// How much content is kept: a channel's `storage:` (docs/channels.md, whose
// "Data flow and states" tells where the kept raw content lives). development =
// all (raw, transformed, encoded, response); production = raw + errors, and the
// encoded content of a delivery only until it is Sent; metadata = no content
// except what recovery needs (raw until processed, encoded until sent);
// disabled = for now the same as metadata (recovery still needs the rows;
// pruning removes them).
enum class StorageMode { Development, Production, Metadata, Disabled };
const char* toString(StorageMode m);
std::optional<StorageMode> parseStorageMode(std::string_view s);

// Search columns filled from the parsed message (empty when unknown).
struct Metadata {
    std::string messageType;  // "ORM^O01"
    std::string controlId;    // MSH-10
    std::string patientId;    // PID-3.1
    std::string accession;    // OBR-18 / ORC-3 / IPC-1
};

// Outcome of processing (filter/transform/route) for one message.
struct ProcessedMessage {
    MessageId id = 0;
    std::string channel;
    Status status = Status::Transformed;  // Filtered, Transformed (then queued) or Error
    std::string transformed;              // kept in development mode
    std::string error;                    // script error "transforms/x.lua:12: ..."
    Metadata meta;                        // may be refined by the transformer
    StorageMode storage = StorageMode::Development;
    struct Delivery {
        std::string destination;
        Status status = Status::Queued;  // Queued or Filtered or Error
        std::string encoded;             // the content to send (always kept until sent)
        std::string error;
    };
    std::vector<Delivery> deliveries;
    // What processing said about the message (filter reason, script log lines,
    // errors); kept with it whatever the storage mode. Empty: nothing written.
    std::vector<LogEntry> log;
};

// A source's position in what it reads (the Orthanc source's change sequence
// number): written with the message it belongs to, in the same intake journal
// record and the same SQLite transaction, so that the position a source
// resumes from after a crash or a restart never runs ahead of the messages it
// stored, nor behind them. The store keeps the latest value per key.
struct SourceMark {
    std::string key;    // whose position, e.g. "studies/orthanc" (channel and source type)
    std::string value;  // opaque to the store
};

struct NewMessage {
    std::string channel;
    std::string dataType = "hl7v2";
    std::string source;       // where it came from, e.g. "mllp 127.0.0.1:53422"
    std::string raw;
    Metadata meta;
    Status status = Status::Received;  // Error for input that could not be parsed
    std::string error;                 // with Status::Error
    StorageMode storage = StorageMode::Development;
    std::optional<Clock::time_point> receivedAt;  // default: now (set for imports and tests)
    // Already processed (filter/transform/route ran before the insert): the
    // message and its deliveries are written in one go, in the same transaction.
    std::optional<ProcessedMessage> processed;
    // The source's position after this message, stored with it (see SourceMark).
    std::optional<SourceMark> mark;
    // A reprocess: the message this one copies, linked to it (MessageDetail::
    // original, copies) in the same journal record and transaction. 0: none.
    MessageId copyOf = 0;
};

// Outcome of one delivery attempt.
struct DeliveryUpdate {
    MessageId id = 0;
    std::string channel;
    std::string destination;
    Status status = Status::Sent;  // Sent, Error, or Queued (retry later)
    int attempts = 1;
    Clock::time_point nextAttempt{};  // with Queued
    std::string response;             // the peer's answer (kept in development mode)
    std::string error;
    StorageMode storage = StorageMode::Development;
    bool only = false;  // the message has no other delivery: its status becomes this one's
    // Log lines of this attempt (the response script's), added to the message's log.
    std::vector<LogEntry> log;
};

// A message that was received but not processed yet (crash recovery).
struct PendingMessage {
    MessageId id = 0;
    std::string channel;
    std::string dataType;
    std::string source;
    std::string raw;
    Clock::time_point receivedAt;
};

// A delivery still to make (crash recovery and retries).
struct PendingDelivery {
    MessageId id = 0;
    std::string channel;
    std::string destination;
    std::string encoded;
    int attempts = 0;
    Clock::time_point nextAttempt;
};

struct MessageSummary {
    MessageId id = 0;
    std::string channel;
    Clock::time_point receivedAt;
    Status status = Status::Received;
    std::string dataType;
    std::string source;
    Metadata meta;
    std::string error;
};

struct DeliveryRecord {
    std::string destination;
    Status status = Status::Queued;
    int attempts = 0;
    std::optional<Clock::time_point> nextAttempt;
    std::string encoded, response, error;
    std::optional<Clock::time_point> updatedAt;
    // One entry per attempt, oldest first (failed attempts are kept, at most
    // kAttemptsKept; a successful one is the delivery's own state and time).
    std::vector<DeliveryAttempt> history;
};

struct MessageDetail {
    MessageSummary summary;
    std::string raw;          // empty when not kept
    std::string transformed;  // empty when not kept
    std::vector<DeliveryRecord> deliveries;
    std::vector<LogEntry> log;  // by time
    std::optional<MessageId> original;  // the message this one reprocesses (NewMessage::copyOf)
    std::vector<MessageId> copies;      // the messages that reprocess this one, oldest first
};

// What an operator's repair (MessageStore::requeueDelivery, deleteMessage) did.
enum class RepairOutcome {
    Done,
    NotFound,  // no such message (or delivery)
    Busy,      // not now: the delivery is queued already; the message is unprocessed or has a queued delivery
};

struct SearchQuery {
    std::string channel;                    // empty = all
    std::optional<Status> status;
    std::string messageType, controlId, patientId, accession;  // exact match when set
    std::optional<Clock::time_point> from, to;  // received_at in [from, to)
    // Messages with a delivery to `destination` (any when empty) in
    // `destinationStatus` (Queued, Sent, Error, Filtered; any when unset).
    std::string destination;
    std::optional<Status> destinationStatus;
    // Substring of the raw content, case-insensitive for ASCII letters, taken
    // literally (no wildcards, no query syntax). Messages whose raw content is
    // not kept (storage: metadata, disabled) never match. Answered by the text
    // index (StoreOptions::textIndex) for the messages it covers, by reading
    // the raw content of the others.
    std::string text;
    MessageId beforeId = 0;  // paging: only ids lower than this (0 = newest)
    int limit = 100;
};

struct StoreOptions {
    // How long the SQLite writer lets a batch of journaled (already acknowledged)
    // inserts grow before it applies them in one transaction; other writes are
    // committed as soon as the writer is free. Larger transactions write fewer
    // WAL pages per message; the cost is that the store's tables show a message
    // up to this much later than its ACK (flush() cuts the wait short).
    std::chrono::milliseconds maxBatchDelay{25};
    std::size_t maxBatchRows = 2000;             // or when this many writes wait
    bool synchronousFull = true;                 // fsync every commit (durability); off only in tests
    std::uint64_t maxDatabaseBytes = 0;          // quota (PRAGMA max_page_count); 0 = unlimited
    // Intake journal: an insert is durable (and acknowledged) once appended to an
    // append-only journal beside the database; SQLite gets it moments later in
    // a large transaction. Off = every insert waits for its SQLite commit. A
    // quota (maxDatabaseBytes) turns it off: "full" must be known at insert time.
    bool journal = true;
    std::uint64_t journalSegmentBytes = 32u << 20;  // one journal file; zero-filled ahead when syncing
    // One engine per store: the store is locked (`<db>.lock`) while open. An open
    // waits this long for a holder to let go, then fails naming the holder's pid.
    std::chrono::milliseconds lockWait{2000};
    // Disk budget: new messages are refused (a source answers with an error at
    // once) while the store's files take more than maxStoreBytes, or the
    // filesystem has less than minFreeBytes free; a warning is logged at 80%
    // of either. 0 = no such bound. Checked every second.
    std::uint64_t maxStoreBytes = 0;
    std::uint64_t minFreeBytes = 0;
    // For reading beside a running engine (`junction messages`): no lock, no
    // intake journal (the engine's is left alone; content is read from its files),
    // no schema change; the store must exist. Writes are not allowed.
    bool readOnly = false;
    // Text index of the raw content kept (SearchQuery::text): a trigram index
    // (SQLite FTS5) in a database beside the store (<path>-text), one table per
    // day partition, written by a background thread at idle CPU priority that
    // follows the committed messages (so that it never slows intake down), and
    // dropped with its partition. Turning it off deletes it; turned on, it
    // indexes the whole store again in the background.
    bool textIndex = true;
};

struct StoreStats {
    std::uint64_t commits = 0, writes = 0;  // writes committed in `commits` transactions
    std::uint64_t folded = 0;               // delivery results applied with their message's insert
};

using Completion = std::function<void(bool ok, const std::string& error)>;
using InsertCompletion = std::function<void(MessageId id, const std::string& error)>;

class MessageStore {
public:
    virtual ~MessageStore() = default;

    // Durable insert. `done` runs once the message is durable (id > 0), or with
    // id 0 and an error when the write failed: on the writer thread after the
    // commit, or - with the intake journal - on the calling thread before
    // insert returns (synchronous NORMAL) or on the journal's sync thread after
    // the fdatasync covering it (FULL). Must not block. Searches see the message once it is
    // committed to the database (flush() waits for that).
    virtual void insert(NewMessage message, InsertCompletion done) = 0;
    // Record processing: message status, transformed content, one delivery row
    // per destination (Queued ones join the delivery queue).
    virtual void recordProcessed(ProcessedMessage processed, Completion done = {}) = 0;
    // Record a delivery attempt.
    virtual void recordDelivery(DeliveryUpdate update, Completion done = {}) = 0;
    // Wait until everything submitted so far is committed.
    virtual void flush() = 0;

    // Stores a source mark without a message (a source that read past input it
    // made no message of). Durable and ordered with the inserts submitted
    // before it as an insert is; `done` runs as an insert's completion does.
    virtual void saveMark(SourceMark mark, Completion done) = 0;
    // The latest durable value of a source mark, whether it came with a message
    // or alone (nullopt: never written). It counts the records of the intake
    // journal not yet applied to SQLite.
    virtual std::optional<std::string> sourceMark(const std::string& key) = 0;

    // Crash recovery: messages of `channel` still Received, oldest first.
    virtual std::vector<PendingMessage> pendingMessages(const std::string& channel, std::size_t limit) = 0;
    // Deliveries of `channel` still Queued, oldest first.
    virtual std::vector<PendingDelivery> pendingDeliveries(const std::string& channel, std::size_t limit) = 0;
    // One page of a destination's queue: its queued deliveries of messages after
    // `after` up to `through`, in message order (empty `destination`: every
    // destination of the channel). `waitForWrites`: first wait until everything
    // submitted is committed (as flush()); without it, what is committed now
    // (never blocks on the writer). Inserted messages are committed in id
    // order: a page never shows a message while one with a lower id, inserted
    // before it, is still to be committed.
    virtual std::vector<PendingDelivery> pendingDeliveries(const std::string& channel, const std::string& destination,
                                                           MessageId after, MessageId through, std::size_t limit,
                                                           bool waitForWrites) = 0;
    // How many deliveries of a destination are queued (a scan of its queue).
    virtual std::uint64_t countQueued(const std::string& channel, const std::string& destination) = 0;
    // The highest message id stored so far (0 when none).
    virtual MessageId lastMessageId() = 0;
    // The highest id given to a message so far, committed or not (0 when none):
    // a message inserted after this call returns gets a higher one. Never waits.
    virtual MessageId lastAssignedId() const = 0;

    virtual std::vector<MessageSummary> search(const SearchQuery& query) = 0;
    // How many messages match `query` (its beforeId too; its limit aside), up
    // to `upTo`: a search by text is counted by running it, and stops there.
    virtual std::uint64_t countMatching(const SearchQuery& query,
                                        std::uint64_t upTo = std::numeric_limits<std::uint64_t>::max()) = 0;
    virtual std::optional<MessageDetail> get(MessageId id) = 0;
    // Counts per status for a channel (console, tests).
    virtual std::vector<std::pair<Status, std::uint64_t>> countByStatus(const std::string& channel) = 0;

    // Drop messages of `channel` (empty = all channels) received before `cutoff`
    // that are processed and whose deliveries are all finished (Sent, Filtered,
    // Error). Runs on the writer thread (writes wait meanwhile). Returns the
    // number removed.
    virtual std::uint64_t prune(const std::string& channel, Clock::time_point cutoff) = 0;

    virtual StoreStats stats() const = 0;

    // Waits until the text index (StoreOptions::textIndex), which follows the
    // committed messages in the background, covers every message committed
    // before the call and every prune done before it. Searches do not need
    // it (they read the content of what the index does not cover yet); for
    // tests and benchmarks.
    virtual void catchUpTextIndex() {}

    // Operators' repairs (the admin API). Each runs on the writer thread in its
    // own transaction, after every write submitted before it, and returns once
    // it is committed.
    // Queues a finished delivery (Sent, Error, Filtered) again: status Queued,
    // attempts 0, due now, its kept encoded content unchanged; the message's
    // status follows. Busy when it is queued already or its message is still Received.
    virtual RepairOutcome requeueDelivery(MessageId id, const std::string& destination) = 0;
    // Deletes a message with its content, deliveries and links. Busy while it is
    // Received or has a Queued delivery (the engine still works on it).
    virtual RepairOutcome deleteMessage(MessageId id) = 0;
};

// Opens (creating if needed) the SQLite store at `path` (WAL mode).
// Throws std::runtime_error when the database cannot be opened.
std::unique_ptr<MessageStore> openSqliteStore(const std::string& path, const StoreOptions& options = {});

}  // namespace junction::store
