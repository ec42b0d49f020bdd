// The admin API server (admin_server.h): the route tables in one router, and
// each request authenticated, authorised, checked and handed to its route.
#include "engine/admin/admin_server.h"
#include "engine/admin/console_assets.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include "engine/core/engine.h"
#include "engine/util/log.h"

namespace junction::admin {

AdminServer::AdminServer(core::Engine& engine, Accounts& accounts, AdminOptions options)
    : options_(std::move(options)), ctx_{engine, accounts, router_, options_.version}, sessions_(options_.sessionTimeout, &accounts.userStore()) {
    router_.add(channelRoutes(ctx_));
    router_.add(messageRoutes(ctx_));
    router_.add(messageOpRoutes(ctx_));
    router_.add(statsRoutes(ctx_));
    router_.add(worklistRoutes(ctx_));
    router_.add(userRoutes(ctx_));
    router_.add(sessionRoutes(ctx_, sessions_, !options_.tlsCert.empty()));
    router_.add(eventRoutes(ctx_));
}

AdminServer::~AdminServer() { stop(); }

void AdminServer::start() {
    http::ServerOptions o;
    o.host = options_.bind;
    o.port = options_.port;
    o.maxBodyBytes = options_.maxBodyBytes;
    o.threads = options_.threads;
    o.maxQueued = 32;
    if (!options_.tlsCert.empty()) {
        o.tls.enabled = true;
        o.tls.cert = options_.tlsCert;
        o.tls.key = options_.tlsKey;
    }
    server_ = std::make_unique<http::Server>(o, [this](const http::ServerRequest& r) { return handle(r); });
    server_->start();
}

void AdminServer::stop() {
    if (server_) server_->stop();
    server_.reset();
}

int AdminServer::port() const { return server_ ? server_->port() : 0; }

namespace {

http::ServerResponse error(int status, const std::string& text, std::vector<http::Header> headers = {}) {
    return {status, "application/json", std::move(headers), http::jsonError(text)};
}

bool isJson(const std::string& contentType) {
    std::string t = contentType.substr(0, contentType.find(';'));
    while (!t.empty() && t.back() == ' ') t.pop_back();
    for (auto& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return t == "application/json";
}

}  // namespace

Accounts::Outcome AdminServer::authenticate(const http::ServerRequest& req) {
    std::string authorization = req.header("Authorization");
    if (!authorization.empty()) return ctx_.accounts.authenticate(authorization, req.peer);
    std::string token = cookieValue(req.header("Cookie"), kSessionCookie);
    if (token.empty()) return {};
    auto session = sessions_.use(token);
    auto user = session ? ctx_.accounts.user(session->user) : std::nullopt;
    auto role = user ? parseRole(user->role) : std::nullopt;
    if (!role) return {Accounts::Outcome::Kind::Invalid, {}, {}};
    if (req.method != "GET" && req.method != "HEAD" && !sameSecret(req.header("X-CSRF-Token"), session->csrf))
        throw ApiError(403, "a request made with the session cookie needs the header X-CSRF-Token of the session");
    return {Accounts::Outcome::Kind::Ok, {user->name, *role, 0}, {}};
}

http::ServerResponse AdminServer::handle(const http::ServerRequest& req) {
    if (auto console = consoleResponse(req)) return std::move(*console);
    AuditFacts facts;
    http::ServerResponse out = serve(req, facts);
    audit(req, facts, out.status);
    return out;
}

http::ServerResponse AdminServer::serve(const http::ServerRequest& req, AuditFacts& facts) {
    try {
        Router::Match m = router_.match(req.method, req.path);
        if (!m.route) {
            if (m.otherMethod) throw ApiError(405, req.method + " is not a method of " + req.path);
            throw ApiError(404, "no route " + req.method + " " + req.path);
        }
        const Route& route = *m.route;
        facts.route = &route;
        facts.path = m.path;
        ApiRequest in{req, {}, std::move(m.path), {}, {}};
        if (route.role != Role::Public) {
            auto o = authenticate(req);
            using Kind = Accounts::Outcome::Kind;
            // Bearer, not Basic: a browser would offer its own login prompt and keep the password.
            const http::Header challenge{"WWW-Authenticate", "Bearer realm=\"junction\""};
            if (o.kind == Kind::Missing) return error(401, "credentials required (HTTP basic, a bearer token or a console login)", {challenge});
            if (o.kind == Kind::Invalid) return error(401, "wrong user name, password or token, or the login has ended", {challenge});
            if (o.kind == Kind::Limited)
                return error(429, "too many failed logins; try again in " + std::to_string(o.retryAfter.count()) + " s",
                             {{"Retry-After", std::to_string(o.retryAfter.count())}});
            in.principal = o.principal;
            if (in.principal.role < route.role)
                throw ApiError(403, std::string("this needs the role ") + toString(route.role) + "; user '" +
                                        in.principal.user + "' is " + toString(in.principal.role));
        }
        facts.user = in.principal.user;
        in.query = checkQuery(route.query, req.params());
        if (route.request && route.bodyOptional && req.body.empty()) {
            // no fields
        } else if (route.request) {
            if (!isJson(req.header("Content-Type"))) throw ApiError(415, "the body must be application/json");
            in.body = checkBody(*route.request, req.body);
        } else if (!req.body.empty()) {
            throw ApiError(400, req.method + " " + route.pattern + " takes no body");
        }
        ApiResponse out = route.handler(in);
        return {out.status, out.contentType, std::move(out.headers), std::move(out.body)};
    } catch (const ApiError& e) {
        return error(e.status(), e.what());
    } catch (const std::exception& e) {
        util::logLine(util::LogLevel::Error, "admin API: " + req.method + " " + req.path + ": " + e.what());
        return error(500, e.what());
    }
}

namespace {

// The address of a peer without its port ("127.0.0.1:53422" → "127.0.0.1").
std::string hostOf(const std::string& peer) {
    auto colon = peer.rfind(':');
    if (colon == std::string::npos || peer.find(':') != colon) return peer;  // no port, or IPv6 as it is
    return peer.substr(0, colon);
}

// The user name an HTTP basic header offers ("" for a token or none).
std::string offeredUser(const std::string& authorization) {
    auto space = authorization.find(' ');
    if (space == std::string::npos) return {};
    std::string scheme = authorization.substr(0, space);
    for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string decoded;
    if (scheme != "basic" || !decodeBase64(authorization.substr(space + 1), decoded)) return {};
    return decoded.substr(0, decoded.find(':'));
}

// The "user" of a JSON body ({"user", "password"}: a console's login), "" when none.
std::string bodyUser(const std::string& body) {
    try {
        Poco::JSON::Parser parser;
        auto o = parser.parse(body).extract<Poco::JSON::Object::Ptr>();
        return o && o->has("user") ? o->getValue<std::string>("user") : std::string();
    } catch (const std::exception&) {
        return {};
    }
}

constexpr auto kLoginEventEvery = std::chrono::minutes(10);
constexpr const char* kSessionRoute = "/api/v1/session";

}  // namespace

void AdminServer::audit(const http::ServerRequest& req, const AuditFacts& facts, int status) {
    const std::string address = hostOf(req.peer);
    core::Engine& engine = ctx_.engine;
    const std::string authorization = req.header("Authorization");
    const std::string user = facts.user.empty() ? offeredUser(authorization) : facts.user;
    if ((status == 401 || status == 429) && !authorization.empty()) {
        engine.recordEvent("login.failed", "", req.method + " " + req.path + ": " + std::to_string(status), user, address);
        return;
    }
    if (!facts.route) return;
    const Route& route = *facts.route;
    if (route.method == "POST" && route.pattern == kSessionRoute) {  // a console's login with a password
        if (status == 200 || status == 201 || status == 401 || status == 429)
            engine.recordEvent(status / 100 == 2 ? "login.ok" : "login.failed", "", "console session", bodyUser(req.body),
                               address);
        return;
    }
    if (!facts.user.empty() && status != 401) {
        // A login is a user's first request from an address in a while (HTTP
        // basic and tokens authenticate every request).
        auto now = std::chrono::steady_clock::now();
        bool fresh;
        {
            std::lock_guard<std::mutex> lock(loginsMutex_);
            if (logins_.size() > 10000) logins_.clear();
            auto& last = logins_[facts.user + "@" + address];
            fresh = last == std::chrono::steady_clock::time_point{} || now - last >= kLoginEventEvery;
            last = now;
        }
        if (fresh) engine.recordEvent("login.ok", "", authorization.rfind("Bearer", 0) == 0 ? "bearer token" : "password",
                                      facts.user, address);
    }
    auto param = facts.path.find("name");
    std::string channel = param != facts.path.end() && route.area == "channels" ? param->second : std::string();
    if (route.method != "GET" && route.method != "HEAD") {
        std::string method = route.method;
        for (auto& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        engine.recordEvent("api." + method, channel, route.method + " " + req.path + ": " + std::to_string(status),
                           user, address);
    } else if (status == 200 && route.area == "messages" &&
               (route.pattern == "/api/v1/messages/{id}" || route.pattern == "/api/v1/messages/export")) {
        auto id = facts.path.find("id");
        engine.recordEvent("message.viewed", "",
                           id != facts.path.end() ? "message " + id->second : "export " + req.query, user, address);
    }
}

}  // namespace junction::admin
