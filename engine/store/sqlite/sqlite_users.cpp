// The admin accounts (user_store.h) in SQLite: tables admin_users and
// admin_tokens in the store's database, one connection guarded by a mutex.
#include <chrono>
#include <mutex>

#include "engine/store/sqlite/sqlite_db.h"
#include "engine/store/user_store.h"

namespace junction::store {

namespace {

using sqlite::Stmt;
using sqlite::Use;
using Clock = std::chrono::system_clock;

const char* const kSchema[] = {
    "CREATE TABLE IF NOT EXISTS admin_users ("
    " name TEXT PRIMARY KEY,"
    " role TEXT NOT NULL,"
    " password_hash TEXT NOT NULL,"
    " created_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS admin_tokens ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " user TEXT NOT NULL REFERENCES admin_users(name),"
    " label TEXT NOT NULL DEFAULT '',"
    " hash TEXT NOT NULL UNIQUE,"
    " created_at INTEGER NOT NULL,"
    " last_used INTEGER)",
    "CREATE INDEX IF NOT EXISTS admin_tokens_user ON admin_tokens(user)",
    "CREATE TABLE IF NOT EXISTS admin_sessions ("
    " hash TEXT PRIMARY KEY,"
    " user TEXT NOT NULL,"
    " csrf TEXT NOT NULL,"
    " last_used INTEGER NOT NULL)",
};

std::int64_t toMs(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
Clock::time_point fromMs(std::int64_t ms) { return Clock::time_point(std::chrono::milliseconds(ms)); }

constexpr const char* kTokenColumns = "id, user, label, hash, created_at, last_used";

TokenRecord readToken(const Use& u) {
    TokenRecord t;
    t.id = u.int64(0);
    t.user = u.str(1);
    t.label = u.str(2);
    t.hash = u.str(3);
    t.createdAt = fromMs(u.int64(4));
    if (!u.isNull(5)) t.lastUsed = fromMs(u.int64(5));
    return t;
}

class SqliteUsers : public UserStore {
public:
    explicit SqliteUsers(const std::string& path) : path_(path) {
        sqlite::createParentDirectory(path);
        // A short wait for locks: the engine's commits are shorter, and a request
        // does not hang on a database another program holds locked.
        db_ = sqlite::open(path, "user store", 2000);
        try {
            sqlite::useWal(db_, path);
            for (const char* sql : kSchema) sqlite::exec(db_, sql);
        } catch (...) {
            sqlite3_close_v2(db_);
            throw;
        }
    }
    ~SqliteUsers() override { sqlite3_close_v2(db_); }

    bool addUser(const UserRecord& user) override {
        return guarded("add user", [&] {
            Stmt s(db_, "INSERT OR IGNORE INTO admin_users(name, role, password_hash, created_at) VALUES (?, ?, ?, ?)");
            Use u(s);
            u.text(1, user.name).text(2, user.role).text(3, user.passwordHash).int64(4, toMs(Clock::now()));
            u.run();
            return u.changes() > 0;
        });
    }
    bool setRole(const std::string& name, const std::string& role) override {
        return change("set role", "UPDATE admin_users SET role = ? WHERE name = ?", role, name);
    }
    bool setPasswordHash(const std::string& name, const std::string& hash) override {
        return change("set password", "UPDATE admin_users SET password_hash = ? WHERE name = ?", hash, name);
    }
    bool removeUser(const std::string& name) override {
        return guarded("remove user", [&] {
            sqlite::exec(db_, "BEGIN IMMEDIATE");
            try {
                for (const char* sql : {"DELETE FROM admin_tokens WHERE user = ?", "DELETE FROM admin_sessions WHERE user = ?"}) {
                    Stmt s(db_, sql);
                    Use(s).text(1, name).run();
                }
                Stmt s(db_, "DELETE FROM admin_users WHERE name = ?");
                Use u(s);
                u.text(1, name).run();
                bool removed = u.changes() > 0;
                sqlite::exec(db_, "COMMIT");
                return removed;
            } catch (...) {
                sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
                throw;
            }
        });
    }
    std::optional<UserRecord> user(const std::string& name) override {
        return guarded("find user", [&]() -> std::optional<UserRecord> {
            Stmt s(db_, "SELECT name, role, password_hash, created_at FROM admin_users WHERE name = ?");
            Use u(s);
            u.text(1, name);
            if (!u.step()) return std::nullopt;
            return UserRecord{u.str(0), u.str(1), u.str(2), fromMs(u.int64(3))};
        });
    }
    std::vector<UserRecord> users() override {
        return guarded("list users", [&] {
            std::vector<UserRecord> out;
            Stmt s(db_, "SELECT name, role, password_hash, created_at FROM admin_users ORDER BY name");
            Use u(s);
            while (u.step()) out.push_back({u.str(0), u.str(1), u.str(2), fromMs(u.int64(3))});
            return out;
        });
    }

    std::int64_t addToken(const std::string& user, const std::string& label, const std::string& hash) override {
        return guarded("add token", [&] {
            Stmt s(db_, "INSERT INTO admin_tokens(user, label, hash, created_at) VALUES (?, ?, ?, ?)");
            Use(s).text(1, user).text(2, label).text(3, hash).int64(4, toMs(Clock::now())).run();
            return static_cast<std::int64_t>(sqlite3_last_insert_rowid(db_));
        });
    }
    std::optional<TokenRecord> useToken(const std::string& hash) override {
        return guarded("find token", [&]() -> std::optional<TokenRecord> {
            std::optional<TokenRecord> t;
            {
                Stmt s(db_, std::string("SELECT ") + kTokenColumns + " FROM admin_tokens WHERE hash = ?");
                Use u(s);
                u.text(1, hash);
                if (!u.step()) return std::nullopt;
                t = readToken(u);
            }
            // At most once a minute, and not at the cost of the request: a busy
            // database leaves last_used as it was.
            auto now = Clock::now();
            if (!t->lastUsed || now - *t->lastUsed >= std::chrono::minutes(1)) {
                try {
                    Stmt s(db_, "UPDATE admin_tokens SET last_used = ? WHERE id = ?");
                    Use(s).int64(1, toMs(now)).int64(2, t->id).run();
                    t->lastUsed = now;
                } catch (const sqlite::Error&) {
                }
            }
            return t;
        });
    }
    std::optional<TokenRecord> token(std::int64_t id) override {
        return guarded("find token", [&]() -> std::optional<TokenRecord> {
            Stmt s(db_, std::string("SELECT ") + kTokenColumns + " FROM admin_tokens WHERE id = ?");
            Use u(s);
            u.int64(1, id);
            if (!u.step()) return std::nullopt;
            return readToken(u);
        });
    }
    std::vector<TokenRecord> tokens(const std::string& user) override {
        return guarded("list tokens", [&] {
            std::vector<TokenRecord> out;
            Stmt s(db_, std::string("SELECT ") + kTokenColumns + " FROM admin_tokens WHERE ?1 = '' OR user = ?1 ORDER BY id");
            Use u(s);
            u.text(1, user);
            while (u.step()) out.push_back(readToken(u));
            return out;
        });
    }
    bool removeToken(std::int64_t id) override {
        return guarded("remove token", [&] {
            Stmt s(db_, "DELETE FROM admin_tokens WHERE id = ?");
            Use u(s);
            u.int64(1, id).run();
            return u.changes() > 0;
        });
    }

    void addSession(const SessionRecord& r) override {
        guarded("add session", [&] {
            Stmt s(db_, "INSERT OR REPLACE INTO admin_sessions(hash, user, csrf, last_used) VALUES (?, ?, ?, ?)");
            Use(s).text(1, r.hash).text(2, r.user).text(3, r.csrf).int64(4, toMs(r.lastUsed)).run();
            return 0;
        });
    }
    std::optional<SessionRecord> session(const std::string& hash) override {
        return guarded("find session", [&]() -> std::optional<SessionRecord> {
            Stmt s(db_, "SELECT hash, user, csrf, last_used FROM admin_sessions WHERE hash = ?");
            Use u(s);
            u.text(1, hash);
            if (!u.step()) return std::nullopt;
            return SessionRecord{u.str(0), u.str(1), u.str(2), fromMs(u.int64(3))};
        });
    }
    void touchSession(const std::string& hash, Clock::time_point lastUsed) override {
        std::lock_guard<std::mutex> lock(mu_);
        try {
            Stmt s(db_, "UPDATE admin_sessions SET last_used = ? WHERE hash = ?");
            Use(s).int64(1, toMs(lastUsed)).text(2, hash).run();
        } catch (const sqlite::Error&) {
        }
    }
    void removeSession(const std::string& hash) override {
        guarded("remove session", [&] {
            Stmt s(db_, "DELETE FROM admin_sessions WHERE hash = ?");
            Use(s).text(1, hash).run();
            return 0;
        });
    }
    void removeSessionsUnusedSince(Clock::time_point before) override {
        guarded("remove sessions", [&] {
            Stmt s(db_, "DELETE FROM admin_sessions WHERE last_used < ?");
            Use(s).int64(1, toMs(before)).run();
            return 0;
        });
    }

private:
    template <class F>
    auto guarded(const char* what, F&& f) -> decltype(f()) {
        std::lock_guard<std::mutex> lock(mu_);
        try {
            return f();
        } catch (const sqlite::Error& e) {
            throw std::runtime_error(std::string("user store ") + path_ + ": " + what + ": " + e.what());
        }
    }
    bool change(const char* what, const char* sql, const std::string& value, const std::string& name) {
        return guarded(what, [&] {
            Stmt s(db_, sql);
            Use u(s);
            u.text(1, value).text(2, name).run();
            return u.changes() > 0;
        });
    }

    std::string path_;
    std::mutex mu_;
    sqlite3* db_ = nullptr;
};

}  // namespace

std::unique_ptr<UserStore> openSqliteUsers(const std::string& path) { return std::make_unique<SqliteUsers>(path); }

}  // namespace junction::store
