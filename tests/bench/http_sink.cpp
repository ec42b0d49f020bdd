// http_sink: an HTTP receiver for the http destination benchmark, on the
// engine's HTTP server (engine/http): answers every request 200 with a small
// JSON body and counts them by the MSH-10 of their body; once --count distinct
// messages have arrived it prints how long they took from the first one, the
// rate and the duplicates, then exits. Exits with 1 when nothing arrives for
// --idle seconds before that. The same sink serves Junction and the plain
// client (http_load) the benchmark compares it with.
//
//   http_sink PORT --count N [--idle SECONDS] [--threads N]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>

#include "engine/http/server.h"
#include "tests/support/msh10.h"

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<long> unique{0}, duplicates{0};
std::atomic<long long> firstNs{0}, lastNs{0};
std::mutex idsMutex;
std::unordered_set<std::string> ids;

long long nowNs() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

}  // namespace

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
    junction::http::Server server(o, [](const junction::http::ServerRequest& r) {
        std::string id = junction::testing::msh10(r.body);
        {
            std::lock_guard<std::mutex> lock(idsMutex);
            if (ids.insert(id).second) unique.fetch_add(1);
            else duplicates.fetch_add(1);
        }
        long long t = nowNs(), zero = 0;
        firstNs.compare_exchange_strong(zero, t);
        lastNs = t;
        return junction::http::ServerResponse{200, "application/json", {}, "{\"ok\":true}"};
    });
    try {
        server.start();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "http_sink: %s\n", e.what());
        return 2;
    }
    long seen = -1;
    auto lastChange = Clock::now();
    while (unique.load() < count) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        long r = unique.load();
        if (r != seen) {
            seen = r;
            lastChange = Clock::now();
        } else if (Clock::now() - lastChange > std::chrono::seconds(idle)) {
            std::printf("received=%ld of %ld duplicates=%ld: nothing for %d s\n", r, count, duplicates.load(), idle);
            return 1;
        }
    }
    double secs = static_cast<double>(lastNs.load() - firstNs.load()) / 1e9;
    std::printf("received=%ld duplicates=%ld secs=%g rate=%.0f/s\n", unique.load(), duplicates.load(), secs,
                secs > 0 ? static_cast<double>(unique.load()) / secs : 0.0);
    std::fflush(stdout);
    // At once: a stop would wait for the sender's kept-alive connections to close.
    std::_Exit(0);
}
