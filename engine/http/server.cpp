// The HTTP server (server.h) on POCO's HTTPServer: requests read whole up to
// a bound, answered by one handler.
#include "engine/http/server.h"

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerConnection.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/Net/TCPServerConnectionFactory.h>
#include <Poco/ThreadPool.h>
#include <Poco/URI.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <istream>
#include <stdexcept>
#include <thread>

#include "engine/util/json_text.h"

namespace junction::http {

std::string jsonError(const std::string& text) { return "{\"error\": " + util::jsonString(text) + "}"; }

std::string ServerRequest::param(std::string_view name) const {
    Poco::URI uri("/?" + query);
    for (const auto& [k, v] : uri.getQueryParameters())
        if (k == name) return v;
    return {};
}

std::vector<std::pair<std::string, std::string>> ServerRequest::params() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (auto& [k, v] : Poco::URI("/?" + query).getQueryParameters()) out.emplace_back(std::move(k), std::move(v));
    return out;
}

namespace {

Poco::Timespan span(std::chrono::milliseconds ms) { return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(ms.count()) * 1000); }

void send(Poco::Net::HTTPServerResponse& res, const ServerResponse& r) {
    res.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(r.status));  // "404 Not Found", not "404 OK"
    if (!r.contentType.empty()) res.setContentType(r.contentType);
    for (const auto& h : r.headers) res.set(h.name, h.value);
    res.setContentLength(static_cast<std::streamsize>(r.body.size()));
    res.send().write(r.body.data(), static_cast<std::streamsize>(r.body.size()));
}

}  // namespace

struct Server::Impl {
    ServerOptions o;
    Handler handler;
    std::unique_ptr<Poco::Net::ServerSocket> socket;
    std::unique_ptr<Poco::ThreadPool> pool;
    std::unique_ptr<Poco::Net::TCPServer> server;
    Poco::Net::HTTPRequestHandlerFactory::Ptr handlers;
    Poco::Net::HTTPServerParams::Ptr params;
    int port = 0;
    std::atomic<int> refusedReported{0};
    std::atomic<int> inFlight{0};  // requests being read or answered

    // An event of a connection, after the refusals not reported yet.
    void connectionEvent(const std::string& type, const std::string& text) {
        if (!o.event) return;
        if (server) {
            int refused = server->refusedConnections(), seen = refusedReported.load();
            if (refused > seen && refusedReported.compare_exchange_strong(seen, refused))
                o.event("connection.refused", std::to_string(refused - seen) + " connection(s) turned away: all " +
                                                  std::to_string(o.threads) + " threads busy and " +
                                                  std::to_string(o.maxQueued) + " waiting");
        }
        o.event(type, text);
    }

    struct RequestHandler : Poco::Net::HTTPRequestHandler {
        Impl& s;
        explicit RequestHandler(Impl& s) : s(s) {}
        void handleRequest(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& res) override {
            ++s.inFlight;
            struct Done {
                std::atomic<int>& n;
                ~Done() { --n; }
            } done{s.inFlight};
            ServerRequest in;
            in.method = req.getMethod();
            try {
                Poco::URI uri(req.getURI());
                in.path = uri.getPath();
                in.query = uri.getRawQuery();
            } catch (const Poco::Exception&) {
                send(res, {400, "application/json", {}, jsonError("bad request target")});
                return;
            }
            for (const auto& [k, v] : req) in.headers.push_back({k, v});
            in.peer = req.clientAddress().toString();
            if (req.hasContentLength() && static_cast<std::size_t>(req.getContentLength64()) > s.o.maxBodyBytes) {
                res.setKeepAlive(false);  // the body is not read: the connection cannot be reused
                send(res, {413, "application/json", {}, jsonError("body larger than " + std::to_string(s.o.maxBodyBytes) + " bytes")});
                return;
            }
            std::istream& body = req.stream();
            char buf[16384];
            while (body) {
                body.read(buf, sizeof buf);
                auto n = static_cast<std::size_t>(body.gcount());
                if (n == 0) break;
                if (in.body.size() + n > s.o.maxBodyBytes) {
                    res.setKeepAlive(false);
                    send(res, {413, "application/json", {}, jsonError("body larger than " + std::to_string(s.o.maxBodyBytes) + " bytes")});
                    return;
                }
                in.body.append(buf, n);
            }
            ServerResponse out;
            try {
                out = s.handler(in);
            } catch (const std::exception& e) {
                out = {500, "application/json", {}, jsonError(e.what())};
            }
            send(res, out);
        }
    };
    struct Factory : Poco::Net::HTTPRequestHandlerFactory {
        Impl& s;
        explicit Factory(Impl& s) : s(s) {}
        Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
            return new RequestHandler(s);
        }
        // What Poco's HTTPServer::stopAll tells its connections.
        void stopped(bool abortCurrent) { serverStopped(this, abortCurrent); }
    };
    // POCO's HTTP connection (its request loop), its opening and closing told.
    struct Connection : Poco::Net::HTTPServerConnection {
        Impl& s;
        std::string peer;
        Connection(const Poco::Net::StreamSocket& socket, Impl& s)
            : HTTPServerConnection(socket, s.params, s.handlers), s(s) {
            try {
                peer = socket.peerAddress().toString();
            } catch (const Poco::Exception&) {
                peer = "(gone)";
            }
        }
        void run() override {
            s.connectionEvent("connection.opened", "connection from " + peer);
            std::string why;
            try {
                HTTPServerConnection::run();
            } catch (const Poco::Exception& e) {
                why = e.displayText();
            } catch (const std::exception& e) {
                why = e.what();
            }
            s.connectionEvent("connection.closed", "connection from " + peer + (why.empty() ? "" : " (" + why + ")"));
        }
    };
    struct ConnectionFactory : Poco::Net::TCPServerConnectionFactory {
        Impl& s;
        explicit ConnectionFactory(Impl& s) : s(s) {}
        Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override {
            return new Connection(socket, s);
        }
    };
};

Server::Server(ServerOptions options, Handler handler) : impl_(std::make_unique<Impl>()) {
    impl_->o = std::move(options);
    impl_->handler = std::move(handler);
}

Server::~Server() { stop(); }

void Server::start() {
    Impl& s = *impl_;
    if (s.server) return;
    const std::string where = s.o.host + ":" + std::to_string(s.o.port);
    try {
        Poco::Net::SocketAddress addr(s.o.host, static_cast<Poco::UInt16>(s.o.port));
        if (s.o.tls.enabled) {
            Poco::Net::Context::Params p;
            p.certificateFile = s.o.tls.cert;
            p.privateKeyFile = s.o.tls.key;
            p.caLocation = s.o.tls.ca;
            p.verificationMode = s.o.tls.verifyClient ? Poco::Net::Context::VERIFY_STRICT : Poco::Net::Context::VERIFY_NONE;
            Poco::Net::Context::Ptr ctx = new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, p);
            s.socket = std::make_unique<Poco::Net::SecureServerSocket>(ctx);
        } else {
            s.socket = std::make_unique<Poco::Net::ServerSocket>();
        }
        // Not POCO's default, which also sets SO_REUSEPORT: a port another
        // process listens on must be an error, not shared with it.
        s.socket->bind(addr, true, false);
        s.socket->listen(64);
    } catch (const Poco::Exception& e) {
        s.socket.reset();
        throw std::runtime_error("cannot listen on " + where + ": " + e.displayText());
    }
    s.port = s.socket->address().port();
    Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
    params->setKeepAlive(true);
    params->setMaxThreads(s.o.threads);
    params->setMaxQueued(s.o.maxQueued);
    params->setTimeout(span(s.o.timeout));
    params->setKeepAliveTimeout(span(std::chrono::milliseconds(15000)));
    s.pool = std::make_unique<Poco::ThreadPool>(1, std::max(1, s.o.threads));
    s.handlers = new Impl::Factory(s);
    s.params = params;
    s.refusedReported = 0;
    s.server = std::make_unique<Poco::Net::TCPServer>(new Impl::ConnectionFactory(s), *s.pool, *s.socket, params);
    s.server->start();
}

void Server::stop() {
    Impl& s = *impl_;
    if (!s.server) return;
    // No new connections; requests being handled get up to 5 s, then every
    // connection is closed (an idle kept-alive one at once).
    s.server->stop();
    for (int i = 0; i < 500 && s.inFlight.load() > 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    static_cast<Impl::Factory&>(*s.handlers).stopped(true);
    s.pool->joinAll();  // the connections' threads are done with the server before it goes
    s.server.reset();
    s.pool.reset();
    s.socket.reset();
    s.handlers = nullptr;
    s.params = nullptr;
}

int Server::port() const { return impl_->port; }

}  // namespace junction::http
