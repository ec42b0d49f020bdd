// The console's logins: a session per login, named by a random token that the
// browser keeps in the cookie junction_session (HttpOnly, SameSite=Strict),
// with a CSRF token that the console sends back in X-CSRF-Token on every
// mutating request. Sessions are kept by the SHA-256 of their token, in
// memory and in the store (store::UserStore, when given) so that a restart
// does not end them; one unused for the idle timeout ends (its last use is
// written at most once a minute: after a restart it may end that much sooner).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/admin/api.h"

namespace junction::store {
class UserStore;
}

namespace junction::admin {

struct AdminContext;

class Sessions {
public:
    using Clock = std::chrono::system_clock;
    // `store`: where sessions outlive the process (none: in memory only).
    explicit Sessions(std::chrono::milliseconds idle, store::UserStore* store = nullptr) : idle_(idle), store_(store) {}

    struct Session {
        std::string user;
        std::string csrf;
    };
    // A new session of `user`: its token (for the cookie) and CSRF token.
    std::pair<std::string, std::string> create(const std::string& user, Clock::time_point now = Clock::now());
    // The session of `token`, its idle time started anew; none when unknown or
    // idle for longer than the timeout (then it ends).
    std::optional<Session> use(const std::string& token, Clock::time_point now = Clock::now());
    void end(const std::string& token);

private:
    struct Entry {
        Session session;
        Clock::time_point lastUsed;
        Clock::time_point lastWritten;  // the last use the store has
    };
    std::chrono::milliseconds idle_;
    store::UserStore* store_;
    std::mutex mu_;
    std::map<std::string, Entry> byHash_;  // SHA-256 of the token → session
    std::size_t sinceSweep_ = 0;
};

inline constexpr std::string_view kSessionCookie = "junction_session";

// The value of cookie `name` in a Cookie header ("" when absent).
std::string cookieValue(std::string_view header, std::string_view name);

// POST, GET and DELETE /api/v1/session; `secure`: the cookie is marked Secure (HTTPS).
std::vector<Route> sessionRoutes(AdminContext& ctx, Sessions& sessions, bool secure);

}  // namespace junction::admin
