// An MLLP listener: a few event-loop threads serve every connection (no
// thread per connection), with io_uring where the kernel allows, else epoll;
// with TLS too (OpenSSL over memory buffers, on the same loops). A connection
// has one message in processing at a time; its response is sent before the
// next of its messages is handed on, so a sender's order is kept. Responses
// may come from any thread.
//
// Connections cannot lock the listener: one that has begun a frame and not
// ended it within frameTimeout is closed, as is one silent for idleTimeout or
// one that has not finished its TLS handshake within tls.handshakeTimeout; at
// maxConnections a new connection takes the place of the longest-idle one
// that has no message unanswered (refused only when there is none).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace junction::mllp {

// TLS on the listener's own loops (no thread per connection).
struct ListenerTls {
    bool enabled = false;
    std::string cert, key;  // PEM: the server's certificate (chain) and private key
    std::string ca;         // PEM: the CAs a client certificate must come from
    bool verifyClient = false;  // a client certificate signed by `ca` is required
    // Not empty: the client certificate's CN or one of its DNS names must be
    // one of these (case-insensitive); else the connection is closed.
    std::vector<std::string> allowedNames;
    std::chrono::milliseconds handshakeTimeout{10000};  // from the connection's accept
};

struct ListenerOptions {
    std::string host = "0.0.0.0";
    int port = 0;  // 0: any free port (see Listener::port)
    std::size_t maxMessageBytes = 16u << 20;
    std::chrono::milliseconds idleTimeout{300000};  // no bytes at all this long: closed (0 = never)
    std::chrono::milliseconds frameTimeout{30000};  // a frame begun and not ended this long: closed (0 = never)
    // At the limit, the longest-idle connection with no message unanswered is
    // closed to make room; with none such, the new connection is refused.
    int maxConnections = 200;
    int maxConnectionsPerAddress = 0;  // from one peer address (0 = no limit); more are refused
    ListenerTls tls;
    int threads = 1;  // event loops; connections are spread over them
    // Serve with io_uring: a round's reads, its replies (all in one call) and
    // the wait for the next events cost two system calls (see uring.h). Where
    // the kernel refuses (before Linux 6.1, io_uring disabled), or when false,
    // epoll: a call to wait, one per read and one per reply.
    bool ioUring = true;
};

class Listener {
public:
    // Send `response` (unframed; empty = send nothing) for the message it was
    // given with. Call exactly once, from any thread.
    using Reply = std::function<void(std::string response)>;
    struct Handlers {
        // One complete message of a connection (`origin` is "mllp <peer>").
        std::function<void(std::string payload, const std::string& origin, Reply reply)> message;
        // Whether a message may be taken in now (asked before each; must not
        // block). Wait: the connection is held, and asked again shortly.
        enum class Admit { Yes, Wait, Stop };
        std::function<Admit()> admit;
        std::function<void(const std::string& level, const std::string& text)> log;
        // A connection opened, closed or refused (SourceContext::event's types).
        std::function<void(const std::string& type, const std::string& text)> event;
    };

    Listener(ListenerOptions options, Handlers handlers);
    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    // Binds and starts the loops; throws std::runtime_error when it cannot
    // listen (or read the TLS certificate, key or CAs).
    void start();
    // Closes the listening socket and every connection; returns when no loop
    // runs. A reply that comes later is dropped.
    void stop();
    int connections() const;
    int port() const;  // the bound port (useful with port 0)
    // Whether the loops served with io_uring when start() returned.
    bool usesIoUring() const;
    // Replies sent together (io_uring), and the system calls that sent them (stats).
    struct Batching {
        std::uint64_t replies = 0;
        std::uint64_t calls = 0;
    };
    Batching batching() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace junction::mllp
