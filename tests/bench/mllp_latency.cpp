// Paced MLLP latency probe: sends one message every 1/RATE seconds on one
// connection for SECONDS and reports ACK latency percentiles.
// Usage: bench_mllp_latency HOST PORT FILE [--rate N] [--seconds S]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "connectors/mllp/client.h"
#include "engine/hl7/message.h"

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: bench_mllp_latency HOST PORT FILE [--rate N] [--seconds S]\n");
        return 2;
    }
    double rate = 1000, seconds = 5;
    for (int i = 4; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--rate") rate = std::atof(argv[i + 1]);
        else if (a == "--seconds") seconds = std::atof(argv[i + 1]);
    }
    std::ifstream in(argv[3], std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    auto msg = junction::hl7::Message::parseOrThrow(buf.str());
    junction::mllp::ClientOptions o;
    o.host = argv[1];
    o.port = std::atoi(argv[2]);
    junction::mllp::Client client(o);
    std::vector<double> lat;
    long n = static_cast<long>(rate * seconds);
    auto interval = std::chrono::duration<double>(1.0 / rate);
    auto start = Clock::now();
    long failures = 0;
    for (long i = 0; i < n; ++i) {
        auto due = start + std::chrono::duration_cast<Clock::duration>(interval * i);
        std::this_thread::sleep_until(due);
        msg.set("MSH-10", "LAT" + std::to_string(i));
        std::string text = msg.serialize();
        auto t0 = Clock::now();
        auto r = client.send(text);
        auto us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
        if (!r.ok() || r.response.find("MSA|AA|LAT" + std::to_string(i)) == std::string::npos) ++failures;
        lat.push_back(us);
    }
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double p) { return lat[std::min(lat.size() - 1, static_cast<size_t>(p * lat.size()))] / 1000.0; };
    std::printf("sent=%ld failed=%ld rate=%.0f/s p50=%.3fms p99=%.3fms max=%.3fms\n", n, failures, n / secs, pct(0.5),
                pct(0.99), lat.back() / 1000.0);
    return failures ? 1 : 0;
}
