// SqliteStore's text index (see sqlite_store_impl.h): the raw content kept
// (storage development and production) in a trigram index, SQLite FTS5, so
// that a search for a substring (SearchQuery::text) does not read every
// message.
//
// Where: a database of its own beside the store, <db>-text, with one FTS5
// table per day partition, t_<yyyymmdd> (rowid = message id; a day's table is
// dropped with the day), the messages it has passed (meta 'through') and the
// ones it passed while they were still Received (deferred: whether their raw
// content stays depends on their channel's storage mode, known once they are
// processed).
//
// When: indexing a 600-byte HL7 message costs several times what storing it
// does (a trigram per character), so it is not done in the writer's
// transaction: a thread of its own follows the committed messages in batches
// by id, behind the writer, at idle CPU priority (SCHED_IDLE), on its own
// database (no lock shared with the writer). Under a load that keeps every
// core busy the index falls behind and catches up afterwards; intake does not
// slow down; its disk writes have the idle I/O class, and while messages come
// in it waits, unless it is kBusyLag messages behind. A search reads the index
// up to 'through' and the raw content of the messages past it (and of the
// deferred ones).
//
// How: a search for S asks the index for raw LIKE '%S%' (the trigram tokenizer
// answers LIKE from its trigrams, then SQLite checks the pattern on the
// candidates); '%' and '_' in S become '_' (any character) and every row is
// checked against S itself, so S is taken literally. Case-insensitive for
// ASCII letters, as LIKE and the reading path are.
#include "engine/store/sqlite/sqlite_store_impl.h"
#include "engine/util/thread_name.h"

#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>

namespace junction::store::detail {

namespace {

constexpr std::int64_t kIndexBatch = 1000;  // messages per indexer transaction
// While messages arrive, the indexer waits (its disk writes would compete with
// intake's), unless it is this far behind: searches read what it has not reached.
constexpr MessageId kBusyLag = 100000;
constexpr auto kBusyLook = std::chrono::milliseconds(200);  // busy: a message came in the last ...
constexpr std::int64_t kScanChunk = 512;    // messages read per step when searching without the index

std::string tTable(int day) { return "t_" + std::to_string(day); }

char lowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// `lowered` (ASCII letters in lower case) in `hay`, ASCII letters in any case.
bool containsFolded(std::string_view hay, const std::string& lowered) {
    return std::search(hay.begin(), hay.end(), lowered.begin(), lowered.end(),
                       [](char a, char b) { return lowerAscii(a) == b; }) != hay.end();
}

// The LIKE pattern whose matches include every text holding `text`.
std::string likePattern(std::string_view text) {
    std::string p = "%";
    for (char c : text) p += c == '%' || c == '_' ? '_' : c;
    p += '%';
    return p;
}

std::string sqlQuoted(const std::string& s) {
    std::string q = "'";
    for (char c : s) {
        if (c == '\'') q += '\'';
        q += c;
    }
    return q + "'";
}

}  // namespace

// ================================================================== the indexer

void SqliteStore::openTextIndex() {
    textPath_ = path_ + "-text";
    if (options_.readOnly) return;
    namespace fs = std::filesystem;
    if (!options_.textIndex) {  // off: it would fall behind for good; indexed afresh when turned on again
        std::error_code ec;
        for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(textPath_ + suffix, ec);
        return;
    }
    // A text index that cannot be opened (damaged, say) is made anew; the store opens without one
    // rather than not at all.
    for (int attempt = 0;; ++attempt) {
        try {
            openTextDatabase();
            textOn_ = true;
            return;
        } catch (const std::exception& e) {
            std::error_code ec;
            for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(textPath_ + suffix, ec);
            std::fprintf(stderr, "junction: the text index %s cannot be used (%s); %s\n", textPath_.c_str(), e.what(),
                         attempt == 0 ? "made anew" : "searches by text read the messages");
            if (attempt > 0) return;
        }
    }
}

void SqliteStore::openTextDatabase() {
    xdb_ = sqlite::open(textPath_, "text index", 10000);
    try {
        sqlite::useWal(xdb_, textPath_);
        sqlite::exec(xdb_, "PRAGMA synchronous = NORMAL");  // lost on power loss: indexed again
        sqlite::exec(xdb_, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)");
        sqlite::exec(xdb_, "CREATE TABLE IF NOT EXISTS deferred (id INTEGER PRIMARY KEY)");
        sqlite::exec(xdb_, ("ATTACH " + sqlQuoted(path_) + " AS store").c_str());
        // An index of another store (this one was made anew beside it): start over.
        MessageId through = sqlite::queryInt(xdb_, "SELECT value FROM meta WHERE key = 'through'", 0);
        if (through >= nextId_.load()) {
            std::vector<std::string> tables;
            {
                Stmt s(xdb_, "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name GLOB 't_[0-9]*'"
                             " AND sql LIKE 'CREATE VIRTUAL TABLE%'");
                Use u(s);
                while (u.step()) tables.push_back(u.str(0));
            }
            for (const auto& t : tables) sqlite::exec(xdb_, ("DROP TABLE main." + t).c_str());
            sqlite::exec(xdb_, "DELETE FROM meta");
            sqlite::exec(xdb_, "DELETE FROM deferred");
        }
    } catch (...) {
        sqlite3_close_v2(xdb_);
        xdb_ = nullptr;
        throw;
    }
}

void SqliteStore::attachTextIndex() {
    if (options_.readOnly ? !std::filesystem::exists(textPath_) : !textOn_) return;
    sqlite::exec(rdb_, ("ATTACH " + sqlQuoted(textPath_) + " AS text").c_str());
    textAttached_ = true;
}

void SqliteStore::closeTextIndex() {
    {
        std::lock_guard<std::mutex> lock(textMu_);
        textStop_ = true;
    }
    textCv_.notify_all();
    if (textIndexer_.joinable()) textIndexer_.join();
    if (xdb_) sqlite3_close_v2(xdb_);
    xdb_ = nullptr;
}

void SqliteStore::pruneText(std::vector<TextPrune> prunes) {
    if (!xdb_) return;
    {
        std::lock_guard<std::mutex> lock(textMu_);
        for (auto& p : prunes) textPrunes_.push_back(p);
    }
    textCv_.notify_all();
}

void SqliteStore::catchUpTextIndex() {
    if (!xdb_) return;
    flush();
    std::unique_lock<std::mutex> lock(textMu_);
    std::uint64_t target = ++textRequested_;
    textCv_.notify_all();
    textCv_.wait(lock, [&] { return textDone_ >= target || textStop_; });
}

void SqliteStore::textIndexLoop() {
    util::nameThisThread("store-text");
    // Only the CPU time and disk time nobody else wants.
    sched_param idle{};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);
    syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS: this thread */, 0, 3 << 13 /* IOPRIO_CLASS_IDLE */);
    bool troubled = false;
    MessageId through = -1, seen = nextId_.load();
    for (;;) {
        std::uint64_t requested;
        {
            std::unique_lock<std::mutex> lock(textMu_);
            if (textStop_) return;
            requested = textRequested_;
            // Messages are coming in (and the index is not far behind): later.
            MessageId now = nextId_.load();
            bool busy = now != seen;
            seen = now;
            if (busy && through >= 0 && now - through < kBusyLag && requested == textDone_ && textPrunes_.empty()) {
                textCv_.wait_for(lock, kBusyLook, [&] { return textStop_ || textRequested_ != textDone_; });
                continue;
            }
        }
        bool more;
        try {
            more = indexTextBatch(&through);
            if (troubled) std::fprintf(stderr, "junction: the text index is written again\n");
            troubled = false;
        } catch (const std::exception& e) {
            sqlite3_exec(xdb_, "ROLLBACK", nullptr, nullptr, nullptr);
            if (!troubled) std::fprintf(stderr, "junction: the text index cannot be written (%s); retrying\n", e.what());
            troubled = true;
            more = false;
        }
        std::unique_lock<std::mutex> lock(textMu_);
        if (!more && !troubled && textPrunes_.empty()) {
            textDone_ = requested;
            textCv_.notify_all();
        }
        if (!more || troubled)
            textCv_.wait_for(lock, std::chrono::milliseconds(troubled ? 1000 : 200),
                             [&] { return textStop_ || textRequested_ != textDone_ || !textPrunes_.empty(); });
    }
}

bool SqliteStore::indexTextBatch(MessageId* throughOut) {
    std::vector<TextPrune> prunes;
    {
        std::lock_guard<std::mutex> lock(textMu_);
        prunes.swap(textPrunes_);
    }
    std::vector<Partition> parts;
    {
        std::lock_guard<std::mutex> lock(partsMu_);
        parts = parts_;
    }
    // What becomes of a message the indexer looks at.
    enum class Step { Index, Defer, Undefer, Keep };
    struct Item {
        MessageId id = 0;
        Step step = Step::Keep;
        int day = 0;
        std::string raw;  // with Index
    };
    std::vector<Item> items;
    MessageId through = 0;
    bool full = false;

    // 1. Read, in a read transaction of the store kept short: a reader holding
    // its snapshot keeps the store's WAL from starting over.
    sqlite::exec(xdb_, "BEGIN");
    try {
        through = sqlite::queryInt(xdb_, "SELECT value FROM meta WHERE key = 'through'", 0);
        std::map<int, Stmt> rawOfDay;  // the raw content row, by day
        auto rawOf = [&](MessageId id, std::optional<std::int64_t> ref, int day) -> std::string {
            if (ref) return journalContent(static_cast<std::uint64_t>(*ref), id);
            auto it = rawOfDay.find(day);
            if (it == rawOfDay.end()) {
                Stmt st;
                try {
                    st = Stmt(xdb_, "SELECT data FROM store." + contentTable(day) +
                                        " WHERE kind = 0 AND message_id = ?1 AND destination = ''");
                } catch (const sqlite::Error&) {
                    // the day's content was dropped meanwhile: its messages are gone
                }
                it = rawOfDay.emplace(day, std::move(st)).first;
            }
            if (!it->second) return {};
            Use u(it->second);
            u.int64(1, id);
            return u.step() ? u.str(0) : std::string();
        };
        // A processed message: indexed when its raw content is kept.
        auto look = [&](MessageId id, std::optional<std::int64_t> ref, Step otherwise) {
            int k = partitionIndex(parts, id);
            if (k < 0 || parts[k].dropped) return items.push_back({id, otherwise, 0, {}});
            std::string raw = rawOf(id, ref, parts[k].day);
            if (raw.empty()) return items.push_back({id, otherwise, 0, {}});
            items.push_back({id, Step::Index, parts[k].day, std::move(raw)});
        };
        // The deferred ones that are processed (or gone) now.
        {
            std::vector<std::pair<MessageId, std::optional<std::int64_t>>> processed;
            {
                Stmt s(xdb_,
                       "SELECT d.id, m.raw_ref, m.status FROM deferred d LEFT JOIN store.messages m ON m.id = d.id");
                Use u(s);
                while (u.step()) {
                    if (!u.isNull(2) && u.str(2) == "Received") continue;
                    if (u.isNull(2)) items.push_back({u.int64(0), Step::Undefer, 0, {}});  // gone
                    else processed.emplace_back(u.int64(0), u.isNull(1) ? std::nullopt : std::optional(u.int64(1)));
                }
            }
            for (auto& [id, ref] : processed) look(id, ref, Step::Undefer);
        }
        // The next messages.
        {
            Stmt s(xdb_, "SELECT id, raw_ref, status FROM store.messages WHERE id > ?1 ORDER BY id LIMIT ?2");
            std::vector<std::tuple<MessageId, std::optional<std::int64_t>, bool>> next;  // received?
            {
                Use u(s);
                u.int64(1, through).int64(2, kIndexBatch);
                while (u.step())
                    next.emplace_back(u.int64(0), u.isNull(1) ? std::nullopt : std::optional(u.int64(1)),
                                      u.str(2) == "Received");
            }
            full = static_cast<std::int64_t>(next.size()) == kIndexBatch;
            for (auto& [id, ref, received] : next) {
                if (received) items.push_back({id, Step::Defer, 0, {}});
                else look(id, ref, Step::Keep);
                through = id;
            }
        }
        sqlite::exec(xdb_, "COMMIT");
    } catch (...) {
        sqlite3_exec(xdb_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }

    // 2. Write the index.
    auto tableExists = [&](const std::string& t) {
        Stmt s(xdb_, "SELECT 1 FROM main.sqlite_master WHERE name = ?1");
        Use u(s);
        u.text(1, t);
        return u.step();
    };
    // BEGIN, not BEGIN IMMEDIATE: that would take the write lock of the store too.
    sqlite::exec(xdb_, "BEGIN");
    // Prunes first: the messages are gone from the store already.
    for (const auto& p : prunes) {
        std::string t = "main." + tTable(p.day);
        if (p.drop) {
            sqlite::exec(xdb_, ("DROP TABLE IF EXISTS " + t).c_str());
        } else if (tableExists(tTable(p.day))) {
            Stmt del(xdb_, "DELETE FROM " + t + " WHERE rowid BETWEEN ?1 AND ?2 AND rowid NOT IN"
                                                " (SELECT id FROM store.messages WHERE id BETWEEN ?1 AND ?2)");
            Use u(del);
            u.int64(1, p.lo).int64(2, p.hi);
            u.run();
        }
        Stmt del(xdb_, "DELETE FROM deferred WHERE id BETWEEN ?1 AND ?2 AND id NOT IN"
                       " (SELECT id FROM store.messages WHERE id BETWEEN ?1 AND ?2)");
        Use u(del);
        u.int64(1, p.lo).int64(2, p.hi);
        u.run();
    }
    std::map<int, Stmt> putOfDay;
    Stmt defer(xdb_, "INSERT OR IGNORE INTO deferred (id) VALUES (?1)");
    Stmt undefer(xdb_, "DELETE FROM deferred WHERE id = ?1");
    for (const auto& item : items) {
        if (item.step == Step::Defer || item.step == Step::Undefer) {
            Use u(item.step == Step::Defer ? defer : undefer);
            u.int64(1, item.id);
            u.run();
            continue;
        }
        if (item.step != Step::Index) continue;
        auto it = putOfDay.find(item.day);
        if (it == putOfDay.end()) {
            std::string t = "main." + tTable(item.day);
            sqlite::exec(xdb_, ("CREATE VIRTUAL TABLE IF NOT EXISTS " + t +
                                " USING fts5(raw, tokenize = 'trigram', detail = none)")
                                   .c_str());
            it = putOfDay.emplace(item.day, Stmt(xdb_, "INSERT OR REPLACE INTO " + t + " (rowid, raw) VALUES (?1, ?2)"))
                     .first;
        }
        {
            Use u(it->second);
            u.int64(1, item.id).text(2, item.raw);
            u.run();
        }
        Use u(undefer);  // when it was deferred
        u.int64(1, item.id);
        u.run();
    }
    Stmt mark(xdb_, "INSERT OR REPLACE INTO meta (key, value) VALUES ('through', ?1)");
    {
        Use u(mark);
        u.int64(1, through);
        u.run();
    }
    putOfDay.clear();
    sqlite::exec(xdb_, "COMMIT");
    *throughOut = through;
    return full;
}

// ================================================================== search

std::vector<MessageSummary> SqliteStore::searchText(const SearchQuery& q, const std::string& where, int params,
                                                    const std::function<void(Use&)>& bind) {
    const std::size_t limit = static_cast<std::size_t>(q.limit > 0 ? q.limit : 100);
    const MessageId before = q.beforeId > 0 ? q.beforeId : std::numeric_limits<MessageId>::max();
    std::string lowered(q.text);
    std::transform(lowered.begin(), lowered.end(), lowered.begin(), lowerAscii);
    const std::string pattern = likePattern(q.text);  // bound as is (not copied) while a statement runs
    const std::string p1 = "?" + std::to_string(params + 1), p2 = "?" + std::to_string(params + 2),
                      p3 = "?" + std::to_string(params + 3);
    std::vector<MessageSummary> out;

    // Ids a..b by reading each candidate's raw content, newest first, into `into` (up to `want`).
    auto byReading = [&](MessageId a, MessageId b, std::vector<MessageSummary>& into, std::size_t want) {
        std::string sql = std::string(kSummaryColumns) + ", m.raw_ref FROM messages m WHERE m.id BETWEEN " + p1 +
                          " AND " + p2 + where + " ORDER BY m.id DESC LIMIT " + p3;
        while (b >= a && into.size() < want) {
            std::vector<std::pair<MessageSummary, std::int64_t>> rows;  // raw_ref, -1 = none
            {
                Use u(searchStatement(sql));
                bind(u);
                u.int64(params + 1, a).int64(params + 2, b).int64(params + 3, kScanChunk);
                while (u.step()) rows.emplace_back(summaryFrom(u), u.isNull(11) ? -1 : u.int64(11));
            }
            for (auto& [summary, ref] : rows) {
                std::string raw = ref >= 0 ? journalContent(static_cast<std::uint64_t>(ref), summary.id)
                                           : readContent(summary.id, kRaw, {});
                if (containsFolded(raw, lowered)) {
                    into.push_back(std::move(summary));
                    if (into.size() >= want) return;
                }
            }
            if (static_cast<std::int64_t>(rows.size()) < kScanChunk) return;
            b = rows.back().first.id - 1;
        }
    };

    MessageId through = 0;
    std::vector<MessageId> deferred;  // newest first
    if (textAttached_) {
        through = sqlite::queryInt(rdb_, "SELECT value FROM text.meta WHERE key = 'through'", 0);
        Stmt s(rdb_, "SELECT id FROM text.deferred WHERE id < ?1 ORDER BY id DESC");
        Use u(s);
        u.int64(1, before);
        while (u.step()) deferred.push_back(u.int64(0));
    }
    // What the index has not reached yet: read.
    byReading(through + 1, before - 1, out, limit);
    if (out.size() >= limit || through == 0) return out;

    std::vector<Partition> parts;
    {
        std::lock_guard<std::mutex> lock(partsMu_);
        parts = parts_;
    }
    for (std::size_t k = parts.size(); k-- > 0 && out.size() < limit;) {
        if (parts[k].dropped) continue;
        MessageId lo = parts[k].firstId;
        MessageId hi = k + 1 < parts.size() ? parts[k + 1].firstId - 1 : std::numeric_limits<MessageId>::max();
        hi = std::min({hi, before - 1, through});
        if (hi < lo) continue;
        const std::size_t want = limit - out.size();
        std::vector<MessageSummary> found;
        // The day's index (no table: nothing of that day indexed).
        std::string sql = std::string(kSummaryColumns) + ", t.raw FROM text." + tTable(parts[k].day) +
                          " t CROSS JOIN messages m ON m.id = t.rowid WHERE t.raw LIKE " + p1 + " AND t.rowid BETWEEN " +
                          p2 + " AND " + p3 + where + " ORDER BY t.rowid DESC";
        try {
            Stmt& st = searchStatement(sql);
            Use u(st);
            bind(u);
            u.text(params + 1, pattern).int64(params + 2, lo).int64(params + 3, hi);
            while (found.size() < want && u.step()) {
                const void* raw = sqlite3_column_blob(st.get(), 11);
                auto n = static_cast<std::size_t>(sqlite3_column_bytes(st.get(), 11));
                if (containsFolded(std::string_view(static_cast<const char*>(raw), n), lowered))
                    found.push_back(summaryFrom(u));
            }
        } catch (const sqlite::Error&) {
            rSearch_.erase(sql);
        }
        // The day's deferred messages (processed after the index passed them): read.
        std::vector<MessageSummary> later;
        for (MessageId id : deferred) {
            if (id < lo || id > hi) continue;
            byReading(id, id, later, std::numeric_limits<std::size_t>::max());
        }
        if (!later.empty()) {
            for (auto& m : later)
                if (std::none_of(found.begin(), found.end(), [&](const MessageSummary& f) { return f.id == m.id; }))
                    found.push_back(std::move(m));
            std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.id > b.id; });
            if (found.size() > want) found.resize(want);
        }
        for (auto& m : found) out.push_back(std::move(m));
    }
    return out;
}

}  // namespace junction::store::detail
