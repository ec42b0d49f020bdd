// An HTTP/1.1 server for the `http` source and the admin API: a pool of
// threads, each request read whole (up to a size bound) and handed to one
// handler that answers it. TLS optional. No POCO types here.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/http/client.h"

namespace junction::http {

struct ServerRequest {
    std::string method;
    std::string path;   // decoded path, without the query
    std::string query;  // the raw query string (after '?'), "" when none
    std::vector<Header> headers;
    std::string body;
    std::string peer;  // the client's address, ip:port
    std::string header(std::string_view name) const { return headerValue(headers, name); }
    // The value of a query parameter (decoded), "" when absent.
    std::string param(std::string_view name) const;
    // Every query parameter (decoded), in order.
    std::vector<std::pair<std::string, std::string>> params() const;
};

struct ServerResponse {
    int status = 200;
    std::string contentType = "application/json";
    std::vector<Header> headers;
    std::string body;
};

struct ServerOptions {
    std::string host = "0.0.0.0";
    int port = 0;  // 0: any free port (see Server::port())
    std::size_t maxBodyBytes = 16u << 20;
    int threads = 8;
    int maxQueued = 64;  // connections waiting for a thread
    std::chrono::milliseconds timeout{30000};  // reading a request, sending an answer
    struct Tls {
        bool enabled = false;
        std::string cert, key, ca;
        bool verifyClient = false;
    } tls;
    // Told of each connection (never blocks the server for long): type
    // connection.opened or connection.closed with "connection from IP:PORT"
    // (closed: and why, when it ended on an error such as a failed TLS
    // handshake), connection.refused when connections were turned away while
    // every thread was busy and `maxQueued` waited (reported with the next
    // connection event). Runs on the server's threads.
    std::function<void(const std::string& type, const std::string& text)> event;
};

class Server {
public:
    // `handler` runs on the server's threads, one call per request; an
    // exception it throws is answered 500 with its text.
    using Handler = std::function<ServerResponse(const ServerRequest&)>;
    Server(ServerOptions options, Handler handler);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Opens the port and serves; throws std::runtime_error ("cannot listen on HOST:PORT: ...").
    void start();
    // Stops accepting, lets requests in progress finish (bounded), closes the port.
    void stop();
    int port() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// A JSON error body: {"error": "..."}.
std::string jsonError(const std::string& text);

}  // namespace junction::http
