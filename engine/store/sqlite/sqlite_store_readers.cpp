// SqliteStore's reads (see sqlite_store_impl.h), on the reader connection, each
// in one read transaction that sees every acknowledged write: what recovery
// needs (messages not processed, deliveries queued), searches, a message's
// detail with its content, counts.
#include "engine/store/sqlite/sqlite_store_impl.h"

#include <cstdio>
#include <limits>
#include <unordered_map>

namespace junction::store::detail {

namespace {

Clock::time_point fromMs(std::int64_t ms) {
    return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(ms)));
}

Status statusOf(const std::string& s) {
    for (Status st : {Status::Received, Status::Filtered, Status::Transformed, Status::Queued, Status::Sent,
                      Status::Error})
        if (s == dbStatus(st)) return st;
    return Status::Error;
}

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
        rp.all = Stmt(rdb_, "SELECT kind, destination, data FROM " + t + " WHERE kind IN " JUNCTION_CONTENT_KINDS " AND message_id = ?1");
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
    return pendingDeliveries(channel, {}, 0, std::numeric_limits<MessageId>::max(), limit, true);
}

std::vector<PendingDelivery> SqliteStore::pendingDeliveries(const std::string& channel, const std::string& destination,
                                                            MessageId after, MessageId through, std::size_t limit,
                                                            bool waitForWrites) {
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
            u.int64(5, through);
        },
        waitForWrites);
}

// A MessageSummary from the columns of kSummaryColumns.
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

// The conditions of a search on messages m (" AND m.channel = ?1 ..."), their
// parameters numbered from ?1, and the binding of their values; `add` appends one.
struct SqliteStore::SearchSql {
    const SearchQuery& q;
    std::string where;
    int n = 0;
    int pChannel = 0, pType = 0, pControl = 0, pPatient = 0, pAccession = 0, pFrom = 0, pTo = 0, pDestination = 0;

    SearchSql(const SearchQuery& query, Few few) : q(query) {
        pChannel = add(!q.channel.empty(), "channel =");
        if (q.status) statusIs("m", *q.status);
        // Without a channel the partial status indexes, (channel, id), give no
        // order by id: a few such messages are listed from them (then sorted).
        if (few.messages) {
            where += " AND m.id IN (SELECT id FROM messages WHERE status = '";
            where += dbStatus(*rareStatus(q));
            where += "')";
        }
        pType = add(!q.messageType.empty(), "message_type =");
        pControl = add(!q.controlId.empty(), "control_id =");
        pPatient = add(!q.patientId.empty(), "patient_id =");
        pAccession = add(!q.accession.empty(), "accession =");
        pFrom = add(q.from.has_value(), "received_at >=");
        pTo = add(q.to.has_value(), "received_at <");
        if (q.destinationStatus || !q.destination.empty()) addDelivery(few.queuedDeliveries);
    }
    // The message status a search asks for (or implies: an Error delivery) that
    // has a partial index: Error or Received.
    static std::optional<Status> rareStatus(const SearchQuery& q) {
        auto st = q.status ? q.status : q.destinationStatus == Status::Error ? q.destinationStatus : std::nullopt;
        if (st == Status::Error || st == Status::Received) return st;
        return std::nullopt;
    }
    // A delivery of the message matches. A message's status is its deliveries'
    // worst (sqlite_store_writer.cpp: aggregate): one with an Error delivery is
    // Error, one with a Queued delivery Queued or Error, which narrows the
    // messages to look at (an Error message is found from its partial index).
    // Few Queued deliveries (`listQueued`) are listed from their own partial index
    // instead; many are the newest messages, found soonest from the newest down.
    void addDelivery(bool listQueued) {
        const auto st = q.destinationStatus;
        const bool listed = listQueued && st == Status::Queued;
        if (st == Status::Error) where += " AND m.status = 'Error'";
        if (st == Status::Queued && !listed) where += " AND m.status IN ('Queued', 'Error')";
        where += listed ? " AND m.id IN (SELECT d.message_id FROM deliveries d WHERE d.status = 'Queued'"
                        : " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id";
        if (listed && pChannel) where += " AND d.channel = ?" + std::to_string(pChannel);
        if (st && !listed) statusIs("d", *st);
        if (!q.destination.empty()) {
            pDestination = ++n;
            where += " AND d.destination = ?" + std::to_string(pDestination);
        }
        where += ")";
    }
    // " AND t.status = 'Error'": a literal, so that the partial status indexes apply.
    void statusIs(const char* table, Status s) {
        where += " AND ";
        where += table;
        where += ".status = '";
        where += dbStatus(s);
        where += "'";
    }
    int add(bool on, const char* cond) {
        if (!on) return 0;
        where += " AND m.";
        where += cond;
        where += " ?" + std::to_string(++n);
        return n;
    }
    void bind(Use& u) const {
        if (pChannel) u.text(pChannel, q.channel);
        if (pType) u.text(pType, q.messageType);
        if (pControl) u.text(pControl, q.controlId);
        if (pPatient) u.text(pPatient, q.patientId);
        if (pAccession) u.text(pAccession, q.accession);
        if (pFrom) u.int64(pFrom, toMs(*q.from));
        if (pTo) u.int64(pTo, toMs(*q.to));
        if (pDestination) u.text(pDestination, q.destination);
    }
};

// Which rows in a rare state a search asks for are few enough to list from
// their partial index (then sorted) rather than found by walking the messages
// from the newest (many: the walk meets them soon). Under readMu_.
SqliteStore::Few SqliteStore::fewOf(const SearchQuery& q) {
    constexpr int kFew = 5000;
    auto fewer = [&](std::string sql, bool channel) {
        if (channel) sql += " AND channel = ?1";
        sql += " LIMIT 1 OFFSET " + std::to_string(kFew);
        Use u(searchStatement(sql));
        if (channel) u.text(1, q.channel);
        return !u.step();
    };
    Few few;
    if (q.destinationStatus == Status::Queued)
        few.queuedDeliveries = fewer("SELECT 1 FROM deliveries WHERE status = 'Queued'", !q.channel.empty());
    if (q.channel.empty())
        if (auto st = SearchSql::rareStatus(q))
            few.messages = fewer(std::string("SELECT 1 FROM messages WHERE status = '") + dbStatus(*st) + "'", false);
    return few;
}

std::vector<MessageSummary> SqliteStore::search(const SearchQuery& q) {
    catchUp();
    std::lock_guard<std::mutex> lock(readMu_);
    ReadTxn txn(rBegin_, rCommit_, rRollback_);
    SearchSql c(q, fewOf(q));
    auto bind = [&c](Use& u) { c.bind(u); };
    if (!q.text.empty()) {
        auto out = searchText(q, c.where, c.n, bind);
        txn.commit();
        return out;
    }
    int pBefore = c.add(q.beforeId > 0, "id <");
    std::string sql = std::string(kSummaryColumns) + " FROM messages m WHERE 1" + c.where +
                      " ORDER BY m.id DESC LIMIT ?" + std::to_string(++c.n);
    int pLimit = c.n;

    std::vector<MessageSummary> out;
    {
        Use u(searchStatement(sql));
        bind(u);
        if (pBefore) u.int64(pBefore, q.beforeId);
        u.int64(pLimit, q.limit > 0 ? q.limit : 100);
        while (u.step()) out.push_back(summaryFrom(u));
    }
    txn.commit();
    return out;
}

std::uint64_t SqliteStore::countMatching(const SearchQuery& q, std::uint64_t upTo) {
    if (!q.text.empty()) {  // the text index answers searches, not counts: the search's answer, counted
        SearchQuery all = q;
        all.limit = static_cast<int>(std::min<std::uint64_t>(upTo, std::numeric_limits<int>::max()));
        return search(all).size();
    }
    catchUp();
    std::lock_guard<std::mutex> lock(readMu_);
    ReadTxn txn(rBegin_, rCommit_, rRollback_);
    SearchSql c(q, fewOf(q));
    int pBefore = c.add(q.beforeId > 0, "id <");
    std::string sql = "SELECT count(*) FROM messages m WHERE 1" + c.where;
    std::uint64_t count = 0;
    {
        Use u(searchStatement(sql));
        c.bind(u);
        if (pBefore) u.int64(pBefore, q.beforeId);
        if (u.step()) count = static_cast<std::uint64_t>(u.int64(0));
    }
    txn.commit();
    return std::min(count, upTo);
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
                } else if (kind == kLog) {
                    for (auto& e : decodeLog(data)) d.log.push_back(std::move(e));
                } else {
                    for (std::size_t i = 0; i < d.deliveries.size(); ++i) {
                        auto& r = d.deliveries[i];
                        if (r.destination != dest) continue;
                        if (kind == kAttempts) {
                            r.history = decodeAttempts(data);
                            continue;
                        }
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
    // The last attempt of a delivered message is the delivery itself.
    for (auto& r : d.deliveries)
        if (r.status == Status::Sent && r.attempts > 0 && r.updatedAt) r.history.push_back({*r.updatedAt, Status::Sent, {}});
    std::stable_sort(d.log.begin(), d.log.end(), [](const LogEntry& a, const LogEntry& b) { return a.time < b.time; });
    readLinks(id, d);
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

}  // namespace junction::store::detail
