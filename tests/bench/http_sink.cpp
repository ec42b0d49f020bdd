// http_sink: an HTTP receiver for the http destination benchmark, on the
// engine's HTTP server (engine/http): answers every request 200 with a small
// JSON body and counts them by the MSH-10 of their body; once --count distinct
// messages have arrived it prints how long they took from the first one, the
// rate and the duplicates, then exits. Exits with 1 when nothing arrives for
// --idle seconds before that. The same sink serves Junction and the plain
// client (http_load) the benchmark compares it with.
//
//   http_sink PORT --count N [--idle SECONDS] [--threads N]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/http/server.h"
#include "tests/support/msh10.h"
#include "tests/support/sink_count.h"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: http_sink PORT --count N [--idle SECONDS] [--threads N]\n");
        return 2;
    }
    junction::http::ServerOptions o;
    o.host = "127.0.0.1";
    o.port = std::atoi(argv[1]);
    o.threads = 16;
    long count = 0;
    int idle = 30;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--count")) count = std::atol(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--idle")) idle = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--threads")) o.threads = std::atoi(argv[i + 1]);
    }
    junction::testing::SinkCount counted;
    junction::http::Server server(o, [&counted](const junction::http::ServerRequest& r) {
        counted.note(junction::testing::msh10(r.body));
        return junction::http::ServerResponse{200, "application/json", {}, "{\"ok\":true}"};
    });
    try {
        server.start();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "http_sink: %s\n", e.what());
        return 2;
    }
    int status = counted.waitFor(count, idle);
    // At once: a stop would wait for the sender's kept-alive connections to close.
    std::_Exit(status);
}
