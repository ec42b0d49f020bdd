// The console's sessions and their routes (sessions.h).
#include "engine/admin/sessions.h"

#include "engine/admin/admin_server.h"
#include "engine/admin/password.h"
#include "engine/admin/route_support.h"
#include "engine/store/user_store.h"

namespace junction::admin {

std::pair<std::string, std::string> Sessions::create(const std::string& user, Clock::time_point now) {
    std::string token = newToken();
    std::string csrf = newToken();
    std::string hash = sha256Hex(token);
    if (store_) {
        store_->addSession({hash, user, csrf, now});
    }
    std::lock_guard<std::mutex> lock(mu_);
    // Sessions that were left without a logout: dropped now and then.
    if (++sinceSweep_ >= 100) {
        sinceSweep_ = 0;
        for (auto i = byHash_.begin(); i != byHash_.end();)
            i = now - i->second.lastUsed > idle_ ? byHash_.erase(i) : std::next(i);
        if (store_) {
            try {
                store_->removeSessionsUnusedSince(now - idle_);
            } catch (const std::exception&) {  // again at the next sweep
            }
        }
    }
    byHash_[hash] = {{user, csrf}, now, now};
    return {token, csrf};
}

std::optional<Sessions::Session> Sessions::use(const std::string& token, Clock::time_point now) {
    if (token.empty()) return std::nullopt;
    const std::string hash = sha256Hex(token);
    std::unique_lock<std::mutex> lock(mu_);
    auto it = byHash_.find(hash);
    if (it == byHash_.end()) {
        if (!store_) return std::nullopt;
        // Made before a restart: read back from the store.
        lock.unlock();
        auto r = store_->session(hash);
        lock.lock();
        if (!r) return std::nullopt;
        it = byHash_.emplace(hash, Entry{{r->user, r->csrf}, r->lastUsed, r->lastUsed}).first;
    }
    if (now - it->second.lastUsed > idle_) {
        byHash_.erase(it);
        lock.unlock();
        if (store_) {
            try {
                store_->removeSession(hash);
            } catch (const std::exception&) {  // the sweep removes it later
            }
        }
        return std::nullopt;
    }
    it->second.lastUsed = now;
    Session out = it->second.session;
    if (store_ && now - it->second.lastWritten >= std::chrono::minutes(1)) {
        it->second.lastWritten = now;
        lock.unlock();
        store_->touchSession(hash, now);
    }
    return out;
}

void Sessions::end(const std::string& token) {
    const std::string hash = sha256Hex(token);
    {
        std::lock_guard<std::mutex> lock(mu_);
        byHash_.erase(hash);
    }
    if (store_) store_->removeSession(hash);
}

std::string cookieValue(std::string_view header, std::string_view name) {
    while (!header.empty()) {
        auto semi = header.find(';');
        std::string_view pair = header.substr(0, semi);
        header = semi == std::string_view::npos ? std::string_view{} : header.substr(semi + 1);
        while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
        auto eq = pair.find('=');
        if (eq != std::string_view::npos && pair.substr(0, eq) == name) return std::string(pair.substr(eq + 1));
    }
    return {};
}

namespace {

Schema sessionSchema() {
    return object({{"user", string(), true},
                   {"role", words({"admin", "operator", "viewer"}), true},
                   {"csrf", string("the X-CSRF-Token of mutating requests made with the cookie (\"\" without one)"), true}});
}

ApiResponse sessionAnswer(const std::string& user, Role role, const std::string& csrf) {
    JsonWriter w;
    w.beginObject().field("user", user).field("role", toString(role)).field("csrf", csrf).endObject();
    return jsonAnswer(w);
}

}  // namespace

std::vector<Route> sessionRoutes(AdminContext& ctx, Sessions& sessions, bool secure) {
    std::vector<Route> routes;
    const std::string attributes = std::string("; HttpOnly; SameSite=Strict; Path=/") + (secure ? "; Secure" : "");

    Route login{"POST", "/api/v1/session", Role::Public, "session",
                "Log in (the console): sets the cookie junction_session and answers the CSRF token"};
    login.request = object({{"user", string(), true}, {"password", string(), true}});
    login.response = sessionSchema();
    login.errors = {401, 429};
    login.handler = [&ctx, &sessions, attributes](const ApiRequest& req) {
        auto o = ctx.accounts.login(req.body.str("user"), req.body.str("password"), req.http.peer);
        using Kind = Accounts::Outcome::Kind;
        if (o.kind == Kind::Limited) {
            const std::string after = std::to_string(o.retryAfter.count());
            return ApiResponse{429, http::jsonError("too many failed logins; try again in " + after + " s"),
                               "application/json", {{"Retry-After", after}}};
        }
        if (o.kind != Kind::Ok) throw ApiError(401, "wrong user name or password");
        auto [token, csrf] = sessions.create(o.principal.user);
        ApiResponse out = sessionAnswer(o.principal.user, o.principal.role, csrf);
        out.headers.push_back({"Set-Cookie", std::string(kSessionCookie) + "=" + token + attributes});
        out.headers.push_back({"Cache-Control", "no-store"});
        return out;
    };
    routes.push_back(std::move(login));

    Route current{"GET", "/api/v1/session", Role::Viewer, "session",
                  "Who is logged in, with the session's CSRF token (the console after a reload)"};
    current.response = sessionSchema();
    current.handler = [&sessions](const ApiRequest& req) {
        auto s = sessions.use(cookieValue(req.http.header("Cookie"), kSessionCookie));
        ApiResponse out = sessionAnswer(req.principal.user, req.principal.role, s ? s->csrf : "");
        out.headers.push_back({"Cache-Control", "no-store"});
        return out;
    };
    routes.push_back(std::move(current));

    Route logout{"DELETE", "/api/v1/session", Role::Viewer, "session", "Log out: the session ends, the cookie is cleared"};
    logout.status = 204;
    logout.handler = [&sessions, attributes](const ApiRequest& req) {
        sessions.end(cookieValue(req.http.header("Cookie"), kSessionCookie));
        return ApiResponse{204, "", "", {{"Set-Cookie", std::string(kSessionCookie) + "=" + attributes + "; Max-Age=0"}}};
    };
    routes.push_back(std::move(logout));
    return routes;
}

}  // namespace junction::admin
