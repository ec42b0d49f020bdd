// An MLLP client: one persistent connection, send a message, wait for its
// framed response. No POCO types in this header.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace junction::mllp {

struct ClientOptions {
    std::string host = "127.0.0.1";
    int port = 2575;
    std::chrono::milliseconds connectTimeout{5000};
    std::chrono::milliseconds responseTimeout{30000};
    std::size_t maxResponseBytes = 16u << 20;
    bool tls = false;
    std::string caFile;       // TLS: CA certificates to verify the server (empty: no verification)
};

struct ClientResult {
    enum class Status { Ok, ConnectFailed, Timeout, Closed, FramingError } status = Status::Ok;
    std::string response;  // the payload of the response frame (Ok)
    std::string error;
    bool ok() const { return status == Status::Ok; }
};

class Client {
public:
    explicit Client(ClientOptions options);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Sends one message and waits for one response frame. Connects first when
    // not connected; after any failure the connection is dropped, so the next
    // send reconnects.
    ClientResult send(std::string_view payload);
    // Pipelining: sends every message, then reads their responses, in order
    // (one result per message). A failure (timeout, closed connection, broken
    // framing) is the result of the message whose response it left missing and
    // of every one after it; the connection is dropped.
    std::vector<ClientResult> sendAll(const std::vector<std::string_view>& payloads);
    void close();
    // From another thread: make a send() in progress return at once (Closed)
    // and every later send fail. For shutting down.
    void abort();
    bool connected() const;
    const ClientOptions& options() const { return options_; }

private:
    ClientResult sendOnce(std::string_view payload);
    std::vector<ClientResult> sendAllOnce(const std::vector<std::string_view>& payloads);
    ClientResult connect();  // Ok when connected (already or now)
    struct Impl;
    ClientOptions options_;
    std::unique_ptr<Impl> impl_;
};

}  // namespace junction::mllp
