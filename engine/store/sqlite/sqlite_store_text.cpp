// SqliteStore's text index (see sqlite_store_impl.h): one FTS5 table per day
// partition, text_<yyyymmdd>, with the trigram tokenizer over the raw content
// kept (storage development and production), rowid = message id. The writer
// adds a message's row in the transaction that inserts the message (the raw
// content is at hand then, wherever it is kept afterwards) and takes it out
// when the content is not kept any more; prune deletes the rows of the
// messages it removed, or drops the table with its day's content table.
//
// A search for a substring S (SearchQuery::text) asks the index for the
// phrase "S": the trigram tokenizer makes a token of every three characters,
// so the phrase matches where the trigrams of S follow one another, which is
// where S is (case folded). The index covers the ids from store_meta's
// text_index_from on (the first message stored after it was turned on); the
// messages before it are found by reading their raw content.
#include "engine/store/sqlite/sqlite_store_impl.h"

#include <algorithm>
#include <limits>

namespace junction::store::detail {

namespace {

// Messages read per step when searching without the index.
constexpr std::int64_t kScanChunk = 512;

// FTS5 query of one phrase, the text taken literally: inside double quotes
// nothing is syntax but a double quote, which is doubled.
std::string phraseQuery(std::string_view text) {
    std::string q = "\"";
    for (char c : text) {
        if (c == '"') q += '"';
        q += c;
    }
    q += '"';
    return q;
}

std::size_t codepoints(std::string_view s) {
    return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [](char c) {
        return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    }));
}

char lowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// `lowered` (ASCII letters in lower case) in `hay`, ASCII letters in any case.
bool containsFolded(std::string_view hay, const std::string& lowered) {
    return std::search(hay.begin(), hay.end(), lowered.begin(), lowered.end(),
                       [](char a, char b) { return lowerAscii(a) == b; }) != hay.end();
}

}  // namespace

// ================================================================== writer side

void SqliteStore::setUpTextIndex() {
    textIndex_ = options_.textIndex;
    sqlite::exec(wdb_, "BEGIN IMMEDIATE");
    try {
        if (textIndex_) {
            for (const auto& p : parts_)
                if (!p.dropped) createTextTable(p.day);
            Stmt from(wdb_, "INSERT OR IGNORE INTO store_meta (key, value) VALUES ('text_index_from', ?1)");
            Use u(from);
            u.int64(1, nextId_.load());
            u.run();
        } else {
            // Off: the index would fall behind; it is dropped (its disk space freed
            // by the next prune's vacuum) and starts afresh when turned on again.
            std::vector<std::string> tables;
            {
                Stmt s(wdb_,
                       "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'text_[0-9]*'"
                       " AND sql LIKE 'CREATE VIRTUAL TABLE%'");
                Use u(s);
                while (u.step()) tables.push_back(u.str(0));
            }
            for (const auto& t : tables) sqlite::exec(wdb_, ("DROP TABLE " + t).c_str());
            sqlite::exec(wdb_, "DELETE FROM store_meta WHERE key = 'text_index_from'");
        }
        sqlite::exec(wdb_, "COMMIT");
    } catch (...) {
        sqlite3_exec(wdb_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

void SqliteStore::createTextTable(int day) {
    // columnsize=0: no per-row token counts (they serve only ranking, which a
    // substring search does not use): one b-tree insert less per message.
    sqlite::exec(wdb_, ("CREATE VIRTUAL TABLE IF NOT EXISTS " + textTable(day) +
                        " USING fts5(raw, tokenize = 'trigram', columnsize = 0)")
                           .c_str());
}

void SqliteStore::indexText(MessageId id, std::string_view raw) {
    if (raw.empty()) return;
    WriterPart* wp = writerPart(id);
    if (!wp || !wp->textPut) return;
    Use u(wp->textPut);
    u.int64(1, id).text(2, raw);
    u.run();
}

void SqliteStore::unindexText(MessageId id) {
    WriterPart* wp = writerPart(id);
    if (!wp || !wp->textDel) return;
    Use u(wp->textDel);
    u.int64(1, id);
    u.run();
}

void SqliteStore::pruneText(int day, MessageId lo, MessageId hi, bool drop) {
    std::string t = textTable(day);
    if (drop) {  // in prune's transaction dropping the day's content
        sqlite::exec(wdb_, ("DROP TABLE IF EXISTS " + t).c_str());
        return;
    }
    if (sqlite::queryInt(wdb_, ("SELECT count(*) FROM sqlite_master WHERE name = '" + t + "'").c_str(), 0) == 0)
        return;  // no index of that day
    constexpr MessageId kChunk = 20000;
    Stmt del(wdb_, "DELETE FROM " + t +
                       " WHERE rowid BETWEEN ?1 AND ?2 AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = " + t +
                       ".rowid)");
    for (MessageId a = lo; a <= hi; a += kChunk) {
        MessageId b = std::min(hi, a + kChunk - 1);
        inTransaction([&] {
            Use u(del);
            u.int64(1, a).int64(2, b);
            u.run();
        });
    }
}

// ================================================================== search

std::vector<MessageSummary> SqliteStore::searchText(const SearchQuery& q, const std::string& where, int params,
                                                    const std::function<void(Use&)>& bind) {
    const std::size_t limit = static_cast<std::size_t>(q.limit > 0 ? q.limit : 100);
    const MessageId before = q.beforeId > 0 ? q.beforeId : std::numeric_limits<MessageId>::max();
    // Read here (not kept): a read-only store reads beside an engine that may turn it on or off.
    MessageId from = sqlite::queryInt(rdb_, "SELECT value FROM store_meta WHERE key = 'text_index_from'", 0);
    // Fewer than three characters make no trigram: those are only found by reading.
    bool useIndex = from > 0 && codepoints(q.text) >= 3;
    std::vector<Partition> parts;
    {
        std::lock_guard<std::mutex> lock(partsMu_);
        parts = parts_;
    }
    std::vector<MessageSummary> out;
    const std::string p1 = "?" + std::to_string(params + 1), p2 = "?" + std::to_string(params + 2),
                      p3 = "?" + std::to_string(params + 3), p4 = "?" + std::to_string(params + 4);
    auto statement = [&](const std::string& sql) -> Stmt& {
        auto it = rSearch_.find(sql);
        if (it == rSearch_.end()) it = rSearch_.emplace(sql, Stmt(rdb_, sql)).first;
        return it->second;
    };

    const std::string phrase = phraseQuery(q.text);  // bound as is (not copied) while the statement runs
    // Ids a..b through the day's index, newest first; false when the day has no index.
    auto byIndex = [&](int day, MessageId a, MessageId b) {
        std::string t = textTable(day);
        std::string sql = std::string(kSummaryColumns) + " FROM " + t + " t CROSS JOIN messages m ON m.id = t.rowid" +
                          " WHERE t.raw MATCH " + p1 + " AND t.rowid BETWEEN " + p2 + " AND " + p3 + where +
                          " ORDER BY t.rowid DESC LIMIT " + p4;
        try {
            Use u(statement(sql));
            bind(u);
            u.text(params + 1, phrase).int64(params + 2, a).int64(params + 3, b);
            u.int64(params + 4, static_cast<std::int64_t>(limit - out.size()));
            while (u.step()) out.push_back(summaryFrom(u));
            return true;
        } catch (const sqlite::Error&) {
            rSearch_.erase(sql);  // no such table (turned on later, or dropped meanwhile)
            return false;
        }
    };
    // Ids a..b by reading each candidate's raw content, newest first.
    std::string lowered(q.text);
    std::transform(lowered.begin(), lowered.end(), lowered.begin(), lowerAscii);
    auto byReading = [&](MessageId a, MessageId b) {
        std::string sql = std::string(kSummaryColumns) + ", m.raw_ref FROM messages m WHERE m.id BETWEEN " + p1 +
                          " AND " + p2 + where + " ORDER BY m.id DESC LIMIT " + p3;
        while (b >= a && out.size() < limit) {
            std::vector<std::pair<MessageSummary, std::int64_t>> rows;  // raw_ref, -1 = none
            {
                Use u(statement(sql));
                bind(u);
                u.int64(params + 1, a).int64(params + 2, b).int64(params + 3, kScanChunk);
                while (u.step()) rows.emplace_back(summaryFrom(u), u.isNull(11) ? -1 : u.int64(11));
            }
            for (auto& [summary, ref] : rows) {
                std::string raw = ref >= 0 ? journalContent(static_cast<std::uint64_t>(ref), summary.id)
                                           : readContent(summary.id, kRaw, {});
                if (containsFolded(raw, lowered)) {
                    out.push_back(std::move(summary));
                    if (out.size() >= limit) return;
                }
            }
            if (static_cast<std::int64_t>(rows.size()) < kScanChunk) return;
            b = rows.back().first.id - 1;
        }
    };

    for (std::size_t k = parts.size(); k-- > 0 && out.size() < limit;) {
        if (parts[k].dropped) continue;
        MessageId lo = parts[k].firstId;
        MessageId hi = k + 1 < parts.size() ? parts[k + 1].firstId - 1 : std::numeric_limits<MessageId>::max();
        hi = std::min(hi, before - 1);
        if (hi < lo) continue;
        if (useIndex && hi >= from) {
            MessageId a = std::max(lo, from);
            if (!byIndex(parts[k].day, a, hi)) byReading(a, hi);
            hi = a - 1;
        }
        if (hi >= lo && out.size() < limit) byReading(lo, hi);
    }
    return out;
}

}  // namespace junction::store::detail
