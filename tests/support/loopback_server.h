// The socket side of the MLLP test peers (mllpecho, mllpdurable, mllp_sink):
// a listener on 127.0.0.1, one detached thread per accepted connection, a
// send that writes all of its buffer, and the loop that answers each message
// of a connection with an AA ACK.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <thread>

#include "tests/support/mllp_frame.h"
#include "tests/support/msh10.h"

namespace junction::testing {

inline void setNoDelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Writes all of data; false when the connection failed.
inline bool sendAll(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n <= 0) return false;
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

// A TCP port number 1-65535 from text, or 0 when it is not one.
inline int parsePort(std::string_view text) {
    int port = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    return ec == std::errc{} && end == text.data() + text.size() && port > 0 && port < 65536 ? port : 0;
}

// A socket listening on 127.0.0.1:port, or -1 (errno set).
inline int listenLoopback(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 128) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

// The listener of a peer whose first argument is its port and which takes
// `args` arguments in all; prints `usage` or what failed and exits with 2 when
// it cannot listen.
inline int listenOnPortArgument(int argc, char** argv, int args, const char* usage) {
    int port = argc == args + 1 ? parsePort(argv[1]) : 0;
    if (port == 0) {
        std::fprintf(stderr, "usage: %s\n", usage);
        std::exit(2);
    }
    int fd = listenLoopback(port);
    if (fd < 0) {
        std::fprintf(stderr, "%s: cannot listen on 127.0.0.1:%d: %s\n", argv[0], port, std::strerror(errno));
        std::exit(2);
    }
    return fd;
}

// Accepts connections for ever, each served by serve(fd) on a thread of its
// own (serve closes the socket).
template <class Serve>
[[noreturn]] void serveConnections(int listener, Serve serve) {
    for (;;) {
        int fd = accept(listener, nullptr, nullptr);
        if (fd < 0) continue;
        setNoDelay(fd);
        std::thread(serve, fd).detach();
    }
}

// Answers the messages of one connection with AA ACKs (MSH-3 and MSH-4 `app`,
// MSA-2 the message's MSH-10) until the peer closes it, then closes fd. Each
// message is first handed to onMessage(msg). The ACKs of the messages that
// arrived together go out in one send, once beforeAcks() has returned.
template <class OnMessage, class BeforeAcks>
void acknowledgeMessages(int fd, std::string_view app, OnMessage onMessage, BeforeAcks beforeAcks) {
    FrameReader reader;
    std::string acks;
    while (reader.receive(fd)) {
        acks.clear();
        while (auto msg = reader.next()) {
            onMessage(*msg);
            appendAck(acks, app, msh10View(*msg));
        }
        if (acks.empty()) continue;
        beforeAcks();
        if (!sendAll(fd, acks)) break;
    }
    close(fd);
}

}  // namespace junction::testing
