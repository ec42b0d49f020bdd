// The admin API's accounts: users with a role and a password hash, the
// bearer tokens made for them and the console's sessions (kept as hashes
// only). They live in the store's database beside the messages (tables
// admin_users, admin_tokens, admin_sessions), so that a
// backup of the store holds them too. The hashes are made and checked by the
// caller (engine/admin); this store keeps and finds them.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace junction::store {

struct UserRecord {
    std::string name;
    std::string role;          // "admin", "operator", "viewer"
    std::string passwordHash;  // "pbkdf2-sha256$iterations$salt$hash"
    std::chrono::system_clock::time_point createdAt{};
};

struct TokenRecord {
    std::int64_t id = 0;
    std::string user;
    std::string label;
    std::string hash;  // SHA-256 of the token, hex
    std::chrono::system_clock::time_point createdAt{};
    std::optional<std::chrono::system_clock::time_point> lastUsed;
};

// A console session (engine/admin/sessions.h), kept so that a restart does
// not log its user out: named by the SHA-256 of its token, never the token.
struct SessionRecord {
    std::string hash;  // SHA-256 of the session token, hex
    std::string user;
    std::string csrf;  // the session's CSRF token (useless without the cookie's token)
    std::chrono::system_clock::time_point lastUsed{};
};

class UserStore {
public:
    virtual ~UserStore() = default;
    // Adds a user; false when the name is taken.
    virtual bool addUser(const UserRecord& user) = 0;
    // Changes a user's role or password hash; false when there is no such user.
    virtual bool setRole(const std::string& name, const std::string& role) = 0;
    virtual bool setPasswordHash(const std::string& name, const std::string& hash) = 0;
    // Removes a user and every token of theirs; false when there is no such user.
    virtual bool removeUser(const std::string& name) = 0;
    virtual std::optional<UserRecord> user(const std::string& name) = 0;
    virtual std::vector<UserRecord> users() = 0;  // by name

    // Keeps a new token's hash; returns its id.
    virtual std::int64_t addToken(const std::string& user, const std::string& label, const std::string& hash) = 0;
    // The token with this hash; its last use becomes now (kept at most once a
    // minute, and not when the database is busy).
    virtual std::optional<TokenRecord> useToken(const std::string& hash) = 0;
    virtual std::optional<TokenRecord> token(std::int64_t id) = 0;
    // The tokens of `user` (empty: of every user), by id.
    virtual std::vector<TokenRecord> tokens(const std::string& user) = 0;
    // Deletes a token; false when there is none with that id.
    virtual bool removeToken(std::int64_t id) = 0;

    // Console sessions (removed with their user too).
    virtual void addSession(const SessionRecord& session) = 0;
    virtual std::optional<SessionRecord> session(const std::string& hash) = 0;
    // Its last use; not at the cost of the request: a busy database leaves it.
    virtual void touchSession(const std::string& hash, std::chrono::system_clock::time_point lastUsed) = 0;
    virtual void removeSession(const std::string& hash) = 0;
    // Removes the sessions last used before `before`.
    virtual void removeSessionsUnusedSince(std::chrono::system_clock::time_point before) = 0;
};

// The accounts in the SQLite database at `path` (created when missing, with
// its tables). Its own connection: safe beside a running engine, whose store
// uses the same file. Failures throw std::runtime_error.
std::unique_ptr<UserStore> openSqliteUsers(const std::string& path);

}  // namespace junction::store
