// Thin RAII helpers over the sqlite3 C API used by the SQLite message store
// and worklist. Private to engine/store.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace junction::store::sqlite {

struct Error : std::runtime_error {
    int code;
    Error(int c, const std::string& what) : std::runtime_error(what), code(c) {}
};

[[noreturn]] inline void fail(sqlite3* db, int rc, std::string_view context) {
    std::string msg(context);
    msg += ": ";
    msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    throw Error(rc, msg);
}

// An owned prepared statement.
class Stmt {
public:
    Stmt() = default;
    Stmt(sqlite3* db, std::string_view sql) : db_(db) {
        int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &h_,
                                    nullptr);
        if (rc != SQLITE_OK) {
            std::string ctx = "prepare ";
            ctx += sql.substr(0, 80);
            fail(db, rc, ctx);
        }
    }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;
    Stmt(Stmt&& o) noexcept : db_(o.db_), h_(o.h_) { o.h_ = nullptr; }
    Stmt& operator=(Stmt&& o) noexcept {
        if (this != &o) {
            reset();
            db_ = o.db_;
            h_ = o.h_;
            o.h_ = nullptr;
        }
        return *this;
    }
    ~Stmt() { reset(); }
    void reset() {
        if (h_) sqlite3_finalize(h_);
        h_ = nullptr;
    }
    explicit operator bool() const { return h_ != nullptr; }
    sqlite3_stmt* get() const { return h_; }
    sqlite3* db() const { return db_; }

private:
    sqlite3* db_ = nullptr;
    sqlite3_stmt* h_ = nullptr;
};

// One use of a cached statement: bind, step, read columns; resets on scope exit.
// Bound text/blob values are SQLITE_STATIC: they must outlive the use.
class Use {
public:
    explicit Use(const Stmt& s) : db_(s.db()), s_(s.get()) {}
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;
    ~Use() { sqlite3_reset(s_); }

    Use& text(int i, std::string_view v) {
        check(sqlite3_bind_text(s_, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
        return *this;
    }
    // NULL for an empty value.
    Use& textOrNull(int i, std::string_view v) { return v.empty() ? null(i) : text(i, v); }
    Use& blob(int i, std::string_view v) {
        check(sqlite3_bind_blob(s_, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
        return *this;
    }
    Use& int64(int i, std::int64_t v) {
        check(sqlite3_bind_int64(s_, i, v));
        return *this;
    }
    Use& null(int i) {
        check(sqlite3_bind_null(s_, i));
        return *this;
    }
    // true while a row is available.
    bool step() {
        int rc = sqlite3_step(s_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        fail(db_, rc, "step");
    }
    void run() {
        while (step()) {
        }
    }
    int changes() const { return sqlite3_changes(db_); }

    std::int64_t int64(int col) const { return sqlite3_column_int64(s_, col); }
    bool isNull(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
    std::string str(int col) const {
        const void* p = sqlite3_column_blob(s_, col);
        int n = sqlite3_column_bytes(s_, col);
        return p ? std::string(static_cast<const char*>(p), static_cast<std::size_t>(n)) : std::string();
    }

private:
    void check(int rc) {
        if (rc != SQLITE_OK) fail(db_, rc, "bind");
    }
    sqlite3* db_;
    sqlite3_stmt* s_;
};

inline void exec(sqlite3* db, const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        std::string msg = std::string(sql).substr(0, 80) + ": " + (err ? err : sqlite3_errstr(rc));
        sqlite3_free(err);
        throw Error(rc, msg);
    }
}

// The first column of the first row of `sql` (such as "PRAGMA user_version"),
// or `fallback` when it returns no row.
inline std::int64_t queryInt(sqlite3* db, const char* sql, std::int64_t fallback) {
    Stmt s(db, sql);
    Use u(s);
    return u.step() ? u.int64(0) : fallback;
}

// Opens (creating if needed) `path` for use by one thread at a time, with
// extended result codes and a busy timeout. Throws std::runtime_error
// "cannot open <what> <path>: ...".
// `vfs`: the name of a registered VFS, or nullptr for the default one.
inline sqlite3* open(const std::string& path, const std::string& what, int busyTimeoutMs, const char* vfs = nullptr) {
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             vfs);
    if (rc != SQLITE_OK) {
        std::string msg = "cannot open " + what + " " + path + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        throw std::runtime_error(msg);
    }
    sqlite3_busy_timeout(db, busyTimeoutMs);
    sqlite3_extended_result_codes(db, 1);
    return db;
}

// Creates the folder a database file goes in (and its parents); throws when it cannot.
inline void createParentDirectory(const std::string& path) {
    std::filesystem::path p(path);
    if (!p.has_parent_path()) return;
    std::error_code ec;
    std::filesystem::create_directories(p.parent_path(), ec);
    if (ec) throw std::runtime_error("cannot create directory " + p.parent_path().string() + ": " + ec.message());
}

// Switches the database to WAL mode; throws when it stays in another mode.
inline void useWal(sqlite3* db, const std::string& path) {
    Stmt jm(db, "PRAGMA journal_mode = WAL");
    std::string mode;
    if (sqlite3_step(jm.get()) == SQLITE_ROW) {
        const unsigned char* t = sqlite3_column_text(jm.get(), 0);
        if (t) mode = reinterpret_cast<const char*>(t);
    }
    if (mode != "wal") throw std::runtime_error("cannot switch " + path + " to WAL mode (got '" + mode + "')");
}

// A connection of its own to the store's database, for a table beside the
// messages (key values, events): its folder made, WAL, flushed as the store's
// sync mode says. Throws std::runtime_error ("<what> <path>: ...").
inline sqlite3* openBeside(const std::string& path, const std::string& what, bool synchronousFull, int busyTimeoutMs) {
    createParentDirectory(path);
    sqlite3* db = open(path, what, busyTimeoutMs);
    try {
        useWal(db, path);
        exec(db, synchronousFull ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    } catch (const std::exception& e) {
        sqlite3_close_v2(db);
        throw std::runtime_error(what + " " + path + ": " + e.what());
    }
    return db;
}

}  // namespace junction::store::sqlite
