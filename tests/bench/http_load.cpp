// http_load: the peer of the http destination benchmark. It POSTs --count
// copies of an HL7 message (each with an MSH-10 of its own) over --conns
// keep-alive connections of the engine's HTTP client (engine/http), one
// request in flight on each, to the same sink Junction's http destination
// sends to: what a plain client costs, against which the engine's overhead shows.
//
//   http_load URL --msg FILE [--count N] [--conns N] [--prefix P]
//
// Prints: sent=N ok=N bad=N conns=N secs=X rate=N/s (ok: 2xx answers).
// Exits 0 when every request was answered 2xx.
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/http/client.h"
#include "tests/support/msh10.h"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: http_load URL --msg FILE [--count N] [--conns N] [--prefix P]\n");
        return 2;
    }
    std::string url = argv[1], file, prefix = "H";
    long count = 10000;
    int conns = 4;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--msg")) file = argv[i + 1];
        else if (!std::strcmp(argv[i], "--count")) count = std::atol(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--conns")) conns = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--prefix")) prefix = argv[i + 1];
    }
    std::ifstream in(file, std::ios::binary);
    std::stringstream raw;
    raw << in.rdbuf();
    // Segments end with CR, as an MLLP sender's do (and as Junction forwards them).
    std::string msg;
    for (char c : raw.str())
        if (c != '\n') msg += c;
        else if (msg.empty() || msg.back() != '\r') msg += '\r';
    auto id = junction::testing::msh10Span(msg);
    if (!in || id.pos == std::string::npos) {
        std::fprintf(stderr, "http_load: %s is no HL7 message with an MSH-10\n", file.c_str());
        return 2;
    }
    const std::string head = msg.substr(0, id.pos), tail = msg.substr(id.pos + id.len);
    std::atomic<long> next{0}, ok{0}, bad{0};
    auto began = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < conns; ++c)
        threads.emplace_back([&, c] {
            junction::http::Client client;
            junction::http::Request r;
            r.method = "POST";
            r.url = url;
            r.headers = {{"Content-Type", "x-application/hl7-v2+er7"}};
            for (long n; (n = next.fetch_add(1)) < count;) {
                r.body = head + prefix + std::to_string(c) + "-" + std::to_string(n) + tail;
                auto res = client.send(r);
                if (res.answered && res.response.status / 100 == 2) ok.fetch_add(1);
                else bad.fetch_add(1);
            }
        });
    for (auto& t : threads) t.join();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    std::printf("sent=%ld ok=%ld bad=%ld conns=%d secs=%.3f rate=%.0f/s\n", ok.load() + bad.load(), ok.load(), bad.load(),
                conns, secs, secs > 0 ? static_cast<double>(ok.load()) / secs : 0.0);
    return bad.load() == 0 ? 0 : 1;
}
