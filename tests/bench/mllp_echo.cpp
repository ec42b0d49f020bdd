// mllpecho: the floor an MLLP listener's throughput is compared with
// (scripts/bench.sh). It answers every framed message with a minimal AA ACK
// that echoes the message's MSH-10, and does nothing else: no parsing beyond
// MSH-10, no storage. Listens on 127.0.0.1, one thread per connection,
// TCP_NODELAY on, until it is killed.
//
//   mllpecho PORT
#include <string_view>

#include "tests/support/loopback_server.h"

namespace {

using namespace junction::testing;

void answer(int fd) {
    acknowledgeMessages(fd, "ECHO", [](std::string_view) {}, [] {});
}

}  // namespace

int main(int argc, char** argv) {
    int listener = listenOnPortArgument(argc, argv, 1, "mllpecho PORT");
    serveConnections(listener, answer);
}
