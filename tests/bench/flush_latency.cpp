// The disk's own floor for `sync: full` latency: what one durable append costs
// here, the operation the intake journal does before each acknowledgement.
// Appends RECORD-byte records to a zero-filled file (as the journal's segments
// are) at a fixed rate, each followed by fdatasync, and prints the latency
// percentiles of append + flush.
// Usage: bench_flush_latency DIR [--rate N] [--seconds S] [--bytes RECORD]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: bench_flush_latency DIR [--rate N] [--seconds S] [--bytes RECORD]\n");
        return 2;
    }
    double rate = 1000, seconds = 5;
    std::size_t bytes = 700;
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--rate") rate = std::atof(argv[i + 1]);
        else if (a == "--seconds") seconds = std::atof(argv[i + 1]);
        else if (a == "--bytes") bytes = static_cast<std::size_t>(std::atol(argv[i + 1]));
    }
    long n = static_cast<long>(rate * seconds);
    if (n < 1 || bytes < 1) {
        std::fprintf(stderr, "bench_flush_latency: nothing to do\n");
        return 2;
    }
    std::string path = std::string(argv[1]) + "/flush-latency.dat";
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        std::perror(path.c_str());
        return 1;
    }
    // Zero-filled and flushed first, as a journal segment: the appends below
    // overwrite allocated blocks, so each flush carries data, not a size change.
    std::size_t fileBytes = bytes * static_cast<std::size_t>(n) + 4096;
    std::vector<char> zeros(1 << 20, 0);
    for (std::size_t left = fileBytes; left > 0;) {
        std::size_t k = std::min(left, zeros.size());
        if (::write(fd, zeros.data(), k) != static_cast<ssize_t>(k)) {
            std::perror("write");
            return 1;
        }
        left -= k;
    }
    ::fdatasync(fd);
    std::string record(bytes, 'x');
    std::vector<double> ms;
    ms.reserve(static_cast<std::size_t>(n));
    auto interval = std::chrono::duration<double>(1.0 / rate);
    auto start = std::chrono::steady_clock::now();
    long failures = 0;
    for (long i = 0; i < n; ++i) {
        std::this_thread::sleep_until(start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval * i));
        auto t0 = std::chrono::steady_clock::now();
        bool ok = ::pwrite(fd, record.data(), bytes, static_cast<off_t>(bytes * static_cast<std::size_t>(i))) ==
                      static_cast<ssize_t>(bytes) &&
                  ::fdatasync(fd) == 0;
        auto t1 = std::chrono::steady_clock::now();
        if (!ok) ++failures;
        ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ::close(fd);
    ::unlink(path.c_str());
    std::sort(ms.begin(), ms.end());
    auto pct = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<std::size_t>(p * static_cast<double>(ms.size())))]; };
    std::printf("flushes=%ld failed=%ld rate=%.0f/s p50=%.3fms p99=%.3fms max=%.3fms\n", n, failures, n / secs, pct(0.5),
                pct(0.99), ms.back());
    return failures == 0 ? 0 : 1;
}
