// mllp_sink: an MLLP receiver for forwarding benchmarks. Answers every framed
// message with AA (echoing MSH-10, as mllpecho does) and counts them; once
// --count distinct messages have arrived it prints how long they took from the first
// one, the rate, and how many were duplicates (the same MSH-10 twice), then
// exits. Exits with 1 when nothing arrives for --idle seconds before that.
//
//   mllp_sink PORT --count N [--idle SECONDS]
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>

#include "tests/support/loopback_server.h"
#include "tests/support/msh10.h"
#include "tests/support/sink_count.h"

namespace {

junction::testing::SinkCount counted;

void serve(int c) {
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::string buf;
    char rb[65536];
    for (;;) {
        ssize_t n = recv(c, rb, sizeof rb, 0);
        if (n <= 0) break;
        buf.append(rb, static_cast<std::size_t>(n));
        std::size_t e;
        while ((e = buf.find("\x1c\r")) != std::string::npos) {
            std::size_t b = buf.find('\x0b');
            std::string m = buf.substr(b + 1, e - b - 1);
            buf.erase(0, e + 2);
            std::string id = junction::testing::msh10(m);
            counted.note(id);
            std::string ack = "\x0bMSH|^~\\&|SINK|SINK|||20260101000000||ACK|A" + id + "|P|2.5.1\rMSA|AA|" + id +
                              "\r\x1c\r";
            send(c, ack.data(), ack.size(), MSG_NOSIGNAL);
        }
    }
    close(c);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: mllp_sink PORT --count N [--idle SECONDS]\n");
        return 2;
    }
    int port = std::atoi(argv[1]);
    long count = 0;
    int idle = 30;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--count")) count = std::atol(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--idle")) idle = std::atoi(argv[i + 1]);
    }
    int fd = junction::testing::listenLoopback(port);
    if (fd < 0) {
        std::perror("mllp_sink: listen");
        return 2;
    }
    std::thread([fd] {
        for (;;) {
            int c = accept(fd, nullptr, nullptr);
            if (c >= 0) std::thread(serve, c).detach();
        }
    }).detach();
    return counted.waitFor(count, idle);
}
