// Benchmark: HL7 v2 parse + serialize throughput on one core, per sample
// message and overall. Usage: bench_hl7_parse SAMPLES_DIR [--seconds S]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/hl7/message.h"

using namespace junction::hl7;
using Clock = std::chrono::steady_clock;

namespace {
std::string readFile(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}
}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: bench_hl7_parse SAMPLES_DIR [--seconds S]\n";
        return 2;
    }
    double seconds = 2.0;
    if (argc >= 4 && std::string(argv[2]) == "--seconds") seconds = std::atof(argv[3]);
    std::string dir = argv[1];
    const char* names[] = {"orm_o01_nw.hl7", "oru_r01.hl7", "adt_a04.hl7", "omi_o23.hl7"};
    double totalBytes = 0, totalMsgs = 0, totalTime = 0;
    std::printf("%-16s %8s %12s %12s %14s\n", "message", "bytes", "MB/s", "msg/s", "parse-only MB/s");
    for (const char* name : names) {
        std::string text = readFile(dir + "/" + name);
        if (text.empty() || !Message::parse(text)) {
            std::cerr << "cannot parse " << dir << "/" << name << "\n";
            return 1;
        }
        std::string out;
        auto run = [&](bool serialize) {
            long n = 0;
            std::size_t sink = 0;
            auto start = Clock::now();
            double elapsed = 0;
            while (elapsed < seconds / 2) {
                for (int k = 0; k < 256; ++k) {
                    auto r = Message::parse(text);
                    if (serialize) {
                        out.clear();
                        r.message->serializeTo(out);
                        sink += out.size();
                    } else {
                        sink += r.message->segmentCount();
                    }
                }
                n += 256;
                elapsed = std::chrono::duration<double>(Clock::now() - start).count();
            }
            if (serialize && out != text) {
                std::cerr << "round trip mismatch for " << name << "\n";
                std::exit(1);
            }
            if (sink == 0) std::exit(1);
            return std::make_pair(n, elapsed);
        };
        auto [n, t] = run(true);
        auto [np, tp] = run(false);
        double mbs = n * text.size() / t / 1e6;
        std::printf("%-16s %8zu %12.1f %12.0f %14.1f\n", name, text.size(), mbs, n / t, np * text.size() / tp / 1e6);
        totalBytes += n * static_cast<double>(text.size());
        totalMsgs += n;
        totalTime += t;
    }
    std::printf("%-16s %8s %12.1f %12.0f\n", "all", "", totalBytes / totalTime / 1e6, totalMsgs / totalTime);
    std::printf("RESULT hl7_parse_serialize_mb_s=%.1f msg_s=%.0f\n", totalBytes / totalTime / 1e6, totalMsgs / totalTime);
    return 0;
}
