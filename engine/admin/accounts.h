// The admin API's users and who sends a request: accounts with roles and
// PBKDF2 password hashes, bearer tokens (shown once, kept as SHA-256),
// authentication of a request's Authorization header, and failed logins
// limited per user and per address. The accounts live in a store::UserStore
// (the store's database); the CLI's `junction user` uses this class too.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/admin/api.h"
#include "engine/admin/password.h"
#include "engine/store/user_store.h"

namespace junction::admin {

// How many failed logins lock a user name or an address out, and for how
// long: a failure counts for `window`; with `perUser` (`perAddress`) of them
// inside the window, logins of that user (from that address) are refused with
// 429 until the oldest one is older than the window.
struct LoginLimits {
    int perUser = 5;
    int perAddress = 20;
    std::chrono::seconds window{900};
};

// Failures per key inside a sliding window (the clock is passed in, so that
// tests move it).
class FailureLimiter {
public:
    using Clock = std::chrono::steady_clock;
    // How long `key` stays refused (zero: not refused), with at most `limit`
    // failures allowed inside `window`.
    std::chrono::seconds refusedFor(const std::string& key, int limit, std::chrono::seconds window, Clock::time_point now);
    void fail(const std::string& key, Clock::time_point now);
    void clear(const std::string& key);

private:
    std::mutex mu_;
    std::map<std::string, std::deque<Clock::time_point>> failures_;
    std::size_t sinceSweep_ = 0;
};

class Accounts {
public:
    explicit Accounts(store::UserStore& store, int iterations = kPasswordIterations, LoginLimits limits = {});

    // User management. Names are 1-64 of A-Z a-z 0-9 . _ @ -; passwords at
    // least 8 characters. Throw ApiError: 400 for a bad name, role or
    // password, 404 for an unknown user, 409 for a name taken or for leaving
    // no admin.
    void addUser(const std::string& name, const std::string& role, const std::string& password);
    void setPassword(const std::string& name, const std::string& password);
    void setRole(const std::string& name, const std::string& role);
    void removeUser(const std::string& name);
    std::vector<store::UserRecord> users() { return store_.users(); }
    std::optional<store::UserRecord> user(const std::string& name) { return store_.user(name); }

    // The first start: when there is no user at all, makes `admin` with
    // `password`, or with a generated one when `password` is empty. Returns
    // the generated password (to print once), else nothing.
    std::optional<std::string> ensureAdmin(const std::string& password);

    // A new token of `user`: its id and the token (shown only now).
    std::pair<std::int64_t, std::string> createToken(const std::string& user, const std::string& label);
    std::vector<store::TokenRecord> tokens(const std::string& user) { return store_.tokens(user); }
    std::optional<store::TokenRecord> token(std::int64_t id) { return store_.token(id); }
    bool revokeToken(std::int64_t id) { return store_.removeToken(id); }
    store::UserStore& userStore() { return store_; }

    struct Outcome {
        enum class Kind { Ok, Missing, Invalid, Limited } kind = Kind::Missing;
        Principal principal;
        std::chrono::seconds retryAfter{0};  // Limited
    };
    // Who sent a request with this Authorization header ("Basic ...",
    // "Bearer ...") from `address` (ip:port or ip).
    Outcome authenticate(const std::string& authorization, const std::string& address,
                         FailureLimiter::Clock::time_point now = FailureLimiter::Clock::now());
    // A user name and password from `address` (the console's login), limited
    // as HTTP basic is: Ok, Invalid or Limited.
    Outcome login(const std::string& name, const std::string& password, const std::string& address,
                  FailureLimiter::Clock::time_point now = FailureLimiter::Clock::now());

private:
    Outcome checkLogin(const std::string& name, const std::string& password, const std::string& addrKey,
                       FailureLimiter::Clock::time_point now);
    void checkPassword(const std::string& password) const;
    bool passwordMatches(const store::UserRecord& user, const std::string& password);
    std::size_t admins();

    store::UserStore& store_;
    int iterations_;
    LoginLimits limits_;
    FailureLimiter limiter_;
    // Passwords verified lately, by user: the hash they matched and a keyed
    // digest of the password, so that HTTP basic does not cost a PBKDF2 run
    // per request. A changed hash (new password) makes the entry stale.
    std::mutex cacheMu_;
    std::string cacheKey_;
    std::map<std::string, std::pair<std::string, std::string>> verified_;
    std::string unknownUserHash_;  // checked against for names that are no user
};

}  // namespace junction::admin
