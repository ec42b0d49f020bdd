// SqliteStore's writes (see sqlite_store_impl.h): the queue that public write
// calls feed, the journaled insert, the writer thread that applies the queue in
// batches (group commit), the content rows it writes, the refusals while the
// store cannot be written or its disk budget is reached, and the checkpoints.
// The per-message write path is all in this file.
#include "engine/store/sqlite/sqlite_store_impl.h"
#include "engine/util/round.h"
#include "engine/util/thread_name.h"

#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <unordered_map>

namespace junction::store::detail {

namespace {

std::int64_t nowMs() { return toMs(Clock::now()); }

// Called in a catch block: a completion callback threw. Said on stderr, as the
// store's other errors are; the store and its caller go on.
void logCallbackError(MessageId id) {
    std::string why = "not a std::exception";
    try {
        throw;
    } catch (const std::exception& e) {
        why = e.what();
    } catch (...) {
    }
    std::fprintf(stderr, "junction: a store completion callback threw (message %lld): %s; ignored\n",
                 static_cast<long long>(id), why.c_str());
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

}  // namespace

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
    // Refused: answered at once, a sender gets an error now rather than no answer.
    if (std::string why = refusedNow(); !why.empty()) {
        if (done) done(0, why);
        return;
    }
    if (journal_) return insertJournaled(std::move(message), std::move(done));
    std::int64_t received = message.receivedAt ? toMs(*message.receivedAt) : nowMs();
    if (message.mark) {  // committed with the message: its latest value once the callback runs
        done = [this, mark = *message.mark, done = std::move(done)](MessageId id, const std::string& error) {
            if (id > 0) noteMark(mark, id);
            if (done) done(id, error);
        };
    }
    enqueue(Op(InsertOp{std::move(message), std::move(done), received, 0, 0, false, {}}));
}

namespace {
// Journaled inserts the writer has not applied yet (queued or in the batch it
// is applying), past which new inserts wait: memory stays bounded when SQLite
// falls behind, whatever the message size or the backlog.
constexpr std::size_t kMaxUnapplied = 100000;
constexpr std::size_t kMaxUnappliedBytes = 48u << 20;
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
        logCallbackError(id);
    }
}
}  // namespace

template <class MakeOp, class Answer>
void SqliteStore::appendJournaled(std::string& record, std::uint64_t* contentRef, MakeOp&& op, Answer&& answer) {
    std::function<void(const std::string&)> then;
    std::uint64_t seq = 0;
    bool inRound = util::Round::active();
    {
        std::lock_guard<std::mutex> jl(journalMu_);
        MessageId id = nextId_.fetch_add(1);
        setRecordId(record, id);
        then = [answer = std::forward<Answer>(answer), id](const std::string& error) { answer(id, error); };
        try {
            // On an event loop's thread the record is written at the end of the
            // round, with the round's others, and `then` runs after that.
            if (inRound) journal_->appendInRound(id, record, std::move(then), contentRef);
            else seq = journal_->append(id, record, contentRef);
        } catch (const std::exception& e) {
            then(e.what());  // still ours: appendInRound takes it only once the record is in
            return;
        }
        enqueue(op(id));
    }
    if (!inRound) journal_->whenDurable(seq, std::move(then));
}

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
    std::uint64_t rawRef = 0;
    // Raw content kept after processing stays in the journal: SQLite gets its reference.
    std::uint64_t* contentRef = keepsRaw(message.storage) ? &rawRef : nullptr;
    std::optional<SourceMark> mark = message.mark;
    appendJournaled(
        record, contentRef,
        [&](MessageId id) { return Op(InsertOp{std::move(message), nullptr, received, id, 0, true, {}, rawRef}); },
        // Answers the insert once its record is durable. A failed write or sync:
        // not acknowledged, though the record may still be applied (a resend is
        // then a duplicate, not a loss).
        [this, done = std::move(done), mark = std::move(mark)](MessageId id, const std::string& error) {
            if (!error.empty()) return complete(done, 0, error);
            if (mark) noteMark(*mark, id);
            complete(done, id, error);
        });
}

void SqliteStore::saveMark(SourceMark mark, Completion done) {
    if (std::string why = refusedNow(); !why.empty()) {
        if (done) done(false, why);
        return;
    }
    if (!journal_) {
        enqueue(Op(MarkOp{std::move(mark), std::move(done), 0, false}));
        return;
    }
    std::string record = encodeMarkRecord(0, nowMs(), mark);
    SourceMark kept = mark;
    appendJournaled(
        record, nullptr, [&](MessageId id) { return Op(MarkOp{std::move(mark), nullptr, id, true}); },
        [this, done = std::move(done), kept = std::move(kept)](MessageId id, const std::string& error) {
            if (error.empty()) noteMark(kept, id);
            if (!done) return;
            try {
                done(error.empty(), error);
            } catch (...) {
                logCallbackError(id);
            }
        });
}

std::optional<std::string> SqliteStore::sourceMark(const std::string& key) {
    std::lock_guard<std::mutex> lock(marksMu_);
    auto it = marks_.find(key);
    if (it == marks_.end()) return std::nullopt;
    return it->second.second;
}

void SqliteStore::noteMark(const SourceMark& mark, MessageId id) {
    std::lock_guard<std::mutex> lock(marksMu_);
    auto [it, added] = marks_.try_emplace(mark.key, id, mark.value);
    if (!added && id >= it->second.first) it->second = {id, mark.value};
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
            if (auto* rep = std::get_if<RepairOp>(&batch[i].v)) {
                try {
                    inTransaction(rep->body);
                    rep->result->set_value();
                } catch (...) {
                    rep->result->set_exception(std::current_exception());
                }
                ++i;
                continue;
            }
            std::size_t j = i;
            while (j < batch.size() && j - i < options_.maxBatchRows && !std::holds_alternative<PruneOp>(batch[j].v) &&
                   !std::holds_alternative<RepairOp>(batch[j].v))
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
        if (auto* mark = std::get_if<MarkOp>(&ops[k].v); mark && mark->id == 0) {
            mark->id = nextId_++;  // orders it with the messages (an id no message will have)
            continue;
        }
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
    auto journaled = [&](std::size_t k) { return journaledId(ops[k]) != 0; };
    auto noteApplied = [&](std::size_t k) {
        if (!journalBlocked_) journalApplied_ = std::max(journalApplied_, journaledId(ops[k]));
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
                                     "junction: %s %lld is in the intake journal but cannot be written to the"
                                     " store (%s); retrying every second, new messages refused meanwhile\n",
                                     std::holds_alternative<MarkOp>(ops[k].v) ? "source mark" : "message",
                                     static_cast<long long>(journaledId(ops[k])), e.what());
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

std::string SqliteStore::refusedNow() const {
    return refusing_.load(std::memory_order_relaxed) ? refusal() : std::string();
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
            } else if (auto* m = std::get_if<MarkOp>(&op.v)) {
                if (!m->journaled && !op.failed) noteMark(m->mark, m->id);  // committed now
                if (m->done) m->done(!op.failed, op.failed ? op.error : kNoError);
            }
        } catch (...) {
            // A throwing callback must not take the writer down.
            MessageId id = 0;
            if (auto* ins = std::get_if<InsertOp>(&op.v)) id = ins->id;
            else if (auto* p = std::get_if<ProcessedOp>(&op.v)) id = p->p.id;
            else if (auto* d = std::get_if<DeliveryOp>(&op.v)) id = d->u.id;
            else if (auto* m = std::get_if<MarkOp>(&op.v)) id = m->id;
            logCallbackError(id);
        }
    }
}

void SqliteStore::apply(Op& op, std::int64_t now) {
    if (auto* ins = std::get_if<InsertOp>(&op.v)) return applyInsert(*ins, now);
    if (auto* p = std::get_if<ProcessedOp>(&op.v)) return applyProcessed(*p, now);
    if (auto* d = std::get_if<DeliveryOp>(&op.v)) {
        if (d->foldedInto == kNotFolded) applyDelivery(*d, now);
        else writeAttempt(d->u, now);
    }
    if (auto* r = std::get_if<RawRepairOp>(&op.v)) applyRawRepair(*r);
    if (auto* m = std::get_if<MarkOp>(&op.v)) applyMark(m->mark, m->id);
}

void SqliteStore::applyMark(const SourceMark& mark, MessageId id) {
    Use u(wSourceMark_);
    u.text(1, mark.key).text(2, mark.value).int64(3, id);
    u.run();
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
    if (m.mark) applyMark(*m.mark, op.id);
    if (m.copyOf) {  // a reprocess (rare): linked to its original in the same transaction
        Stmt st(wdb_, "INSERT OR REPLACE INTO message_copies (copy, original) VALUES (?1, ?2)");
        Use u(st);
        u.int64(1, op.id).int64(2, m.copyOf);
        u.run();
    }
}

// Records, in the transaction applying them, the last journaled id applied
// (one row update per transaction, not per message).
void SqliteStore::markJournalApplied(const std::vector<Op>& ops, std::size_t begin, std::size_t end) {
    if (journalBlocked_) return;
    MessageId last = 0;
    for (std::size_t k = begin; k < end; ++k)
        if (!ops[k].failed) last = std::max(last, journaledId(ops[k]));
    if (last == 0) return;
    Use u(wJournalMark_);
    u.int64(1, last);
    u.run();
}

MessageId SqliteStore::journaledId(const Op& op) {
    if (auto* ins = std::get_if<InsertOp>(&op.v)) return ins->journaled ? ins->id : 0;
    if (auto* m = std::get_if<MarkOp>(&op.v)) return m->journaled ? m->id : 0;
    return 0;
}

void SqliteStore::writeOutcome(MessageId id, const ProcessedMessage& p, std::int64_t now, const InsertOp* insert) {
    // The raw message is at hand (and kept) when the outcome comes with the insert.
    const std::string* raw = insert && keepsRaw(insert->m.storage) ? &insert->m.raw : nullptr;
    const bool keepTransformed = keepsAll(p.storage) && !p.transformed.empty();
    if (!p.log.empty()) putContent(id, kLog, {}, encodeLog(p.log));
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
    writeAttempt(d, now);
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

// ================================================================== content rows

// A message's content rows, in the content table of its day partition: written
// with every message, so here beside their callers (partitions are created in
// sqlite_store_partitions.cpp).

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
    // || appends (as text: the log's line format is text).
    wp.append = Stmt(wdb_, "INSERT INTO " + t + " (message_id, kind, destination, data) VALUES (?1, ?2, ?3, ?4)"
                           " ON CONFLICT (kind, message_id, destination) DO UPDATE SET data = data || excluded.data");
    return &wparts_.emplace(day, std::move(wp)).first->second;
}

void SqliteStore::putContent(MessageId id, int kind, std::string_view dest, std::string_view data) {
    writeContent(&WriterPart::put, id, kind, dest, data);
}

void SqliteStore::appendContent(MessageId id, int kind, std::string_view dest, std::string_view data) {
    writeContent(&WriterPart::append, id, kind, dest, data);
}

void SqliteStore::writeContent(Stmt WriterPart::*stmt, MessageId id, int kind, std::string_view dest,
                               std::string_view data) {
    WriterPart* wp = writerPart(id);
    if (!wp) throw std::runtime_error("no content partition for message " + std::to_string(id));
    Use u(wp->*stmt);
    u.int64(1, id).int64(2, kind).text(3, dest).blob(4, data);
    u.run();
}

// A successful attempt is the delivery row itself (status Sent, its time): only
// failures add a line, so that a message delivered at once costs no row here.
void SqliteStore::writeAttempt(const DeliveryUpdate& d, std::int64_t now) {
    if (d.status != Status::Sent && (d.attempts < kAttemptsKept || d.status == Status::Error)) {
        DeliveryAttempt a{Clock::time_point(std::chrono::milliseconds(now)), d.status, d.error};
        appendContent(d.id, kAttempts, d.destination, encodeAttempt(a));
    }
    if (!d.log.empty()) appendContent(d.id, kLog, d.destination, encodeLog(d.log));
}

void SqliteStore::delContent(MessageId id, int kind, std::string_view dest) {
    WriterPart* wp = writerPart(id);
    if (!wp) return;
    Use u(wp->del);
    u.int64(1, id).int64(2, kind).text(3, dest);
    u.run();
}

}  // namespace junction::store::detail
