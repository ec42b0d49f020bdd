// The admin API server: the engine's REST API (/api/v1), /metrics, /health
// and /ready on the admin port, served by engine/http's server. Each request
// is matched to a route of the table, authenticated (HTTP basic, a bearer
// token or the console's session cookie), checked against the route's role and schemas, then handled.
// engine/app starts it beside the engine at `junction run`.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "engine/admin/accounts.h"
#include "engine/admin/router.h"
#include "engine/admin/sessions.h"
#include "engine/http/server.h"

namespace junction::core {
class Engine;
}

namespace junction::admin {

struct AdminOptions {
    std::string bind = "127.0.0.1";
    int port = 8080;  // 0: any free port (see AdminServer::port())
    std::string tlsCert, tlsKey;  // both set: HTTPS
    std::size_t maxBodyBytes = 1u << 20;
    int threads = 4;
    std::string version = "0";  // of the engine, in the OpenAPI document
    std::chrono::milliseconds sessionTimeout{std::chrono::hours(8)};  // a console session's idle time
};

// What the route tables work with.
struct AdminContext {
    core::Engine& engine;
    Accounts& accounts;
    const Router& router;
    std::string version;
    std::atomic<bool> ready{false};
};

// The route table of each area (routes_*.cpp).
std::vector<Route> channelRoutes(AdminContext& ctx);
std::vector<Route> messageRoutes(AdminContext& ctx);
std::vector<Route> messageOpRoutes(AdminContext& ctx);  // reprocess, resend, delete, export
std::vector<Route> statsRoutes(AdminContext& ctx);
std::vector<Route> worklistRoutes(AdminContext& ctx);
std::vector<Route> userRoutes(AdminContext& ctx);
std::vector<Route> eventRoutes(AdminContext& ctx);

// What the event log is told of one request (AdminServer::audit).
struct AuditFacts {
    const Route* route = nullptr;             // null: no route matched
    std::map<std::string, std::string> path;  // its {name} segments
    std::string user;                         // authenticated; "" when not
};

class AdminServer {
public:
    AdminServer(core::Engine& engine, Accounts& accounts, AdminOptions options);
    ~AdminServer();
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    // Opens the port; throws std::runtime_error when it cannot.
    void start();
    void stop();
    int port() const;
    // What /ready answers: true once the channels are deployed and running.
    void setReady(bool ready) { ctx_.ready = ready; }
    const Router& router() const { return router_; }
    // One request, as the HTTP server hands it over.
    http::ServerResponse handle(const http::ServerRequest& request);

private:
    // Who sent `request`: its Authorization header, else its console session
    // cookie (a mutating request needs the session's X-CSRF-Token: 403).
    Accounts::Outcome authenticate(const http::ServerRequest& request);
    // The request itself, once routed; `facts` gets what audit() needs.
    http::ServerResponse serve(const http::ServerRequest& request, AuditFacts& facts);
    // The event log's part of a request: logins (failed ones, and a user's
    // first from an address in a while), every mutating call, every view of a
    // message's content.
    void audit(const http::ServerRequest& request, const AuditFacts& facts, int status);

    AdminOptions options_;
    Router router_;
    AdminContext ctx_;
    Sessions sessions_;
    std::unique_ptr<http::Server> server_;
    std::mutex loginsMutex_;
    std::map<std::string, std::chrono::steady_clock::time_point> logins_;  // user@address → last login.ok
};

}  // namespace junction::admin
