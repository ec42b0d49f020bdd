// The SQLite key-value table behind the Lua `store` module: one connection of
// its own to the store's database, a write committed (and, with sync full,
// flushed) before it returns.
#include <mutex>

#include "engine/store/key_value_store.h"
#include "engine/store/sqlite/sqlite_db.h"

namespace junction::store {

namespace {

using sqlite::Stmt;
using sqlite::Use;

class SqliteKeyValues final : public KeyValueStore {
public:
    SqliteKeyValues(const std::string& path, bool synchronousFull, int busyTimeoutMs) {
        db_ = sqlite::openBeside(path, "key-value store", synchronousFull, busyTimeoutMs);
        try {
            sqlite::exec(db_,
                         "CREATE TABLE IF NOT EXISTS key_values (key TEXT PRIMARY KEY, value BLOB NOT NULL, "
                         "updated_at INTEGER NOT NULL) WITHOUT ROWID");
            get_ = Stmt(db_, "SELECT value FROM key_values WHERE key = ?");
            put_ = Stmt(db_,
                        "INSERT INTO key_values (key, value, updated_at) VALUES (?, ?, "
                        "CAST(strftime('%s','now') AS INTEGER) * 1000) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at");
            remove_ = Stmt(db_, "DELETE FROM key_values WHERE key = ?");
            keys_ = Stmt(db_, "SELECT key FROM key_values WHERE key >= ? ORDER BY key LIMIT ?");
        } catch (const std::exception& e) {
            close();
            throw std::runtime_error(std::string("key-value store ") + path + ": " + e.what());
        }
    }
    ~SqliteKeyValues() override { close(); }

    std::optional<std::string> get(const std::string& key) override {
        std::lock_guard<std::mutex> lock(m_);
        Use u(get_);
        u.text(1, key);
        if (!u.step()) return std::nullopt;
        return u.str(0);
    }

    void put(const std::string& key, const std::string& value) override {
        std::lock_guard<std::mutex> lock(m_);
        Use u(put_);
        u.text(1, key).blob(2, value).run();
    }

    bool remove(const std::string& key) override {
        std::lock_guard<std::mutex> lock(m_);
        Use u(remove_);
        u.text(1, key).run();
        return u.changes() > 0;
    }

    std::vector<std::string> keys(const std::string& prefix, std::size_t limit) override {
        std::lock_guard<std::mutex> lock(m_);
        Use u(keys_);
        u.text(1, prefix).int64(2, static_cast<std::int64_t>(limit));
        std::vector<std::string> out;
        while (u.step()) {
            std::string k = u.str(0);
            if (k.compare(0, prefix.size(), prefix) != 0) break;  // past the prefix's range
            out.push_back(std::move(k));
        }
        return out;
    }

private:
    void close() {
        get_.reset();
        put_.reset();
        remove_.reset();
        keys_.reset();
        if (db_) sqlite3_close_v2(db_);
        db_ = nullptr;
    }

    std::mutex m_;
    sqlite3* db_ = nullptr;
    Stmt get_, put_, remove_, keys_;
};

}  // namespace

std::unique_ptr<KeyValueStore> openSqliteKeyValues(const std::string& path, bool synchronousFull, int busyTimeoutMs) {
    return std::make_unique<SqliteKeyValues>(path, synchronousFull, busyTimeoutMs);
}

}  // namespace junction::store
