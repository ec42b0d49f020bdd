// What the SQLite store costs per message, apart from the MLLP path: inserts
// COUNT messages shaped like the MLLP benchmark's (an ORM^O01 of samples/hl7,
// processed, storage: production, no destination) through the intake journal,
// waits until the writer has applied them all to SQLite, and prints the CPU
// time per message of the inserting thread (the journal append) and of the
// store's own threads (the SQLite writer and the checkpointer).
// --random-keys gives every message its own patient id and accession number,
// as a hospital's traffic has (the MLLP benchmark repeats one of each).
// --no-text-index leaves the text index of the raw content out (its cost is the
// difference).
// Usage: bench_store_apply DIR MESSAGE_FILE [--count N] [--random-keys] [--no-text-index]
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>

#include "engine/store/message_store.h"

namespace {

double cpuSeconds(clockid_t clock) {
    timespec t{};
    clock_gettime(clock, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: bench_store_apply DIR MESSAGE_FILE [--count N] [--random-keys]\n");
        return 2;
    }
    long count = 50000;
    bool randomKeys = false;
    bool textIndex = true;
    for (int i = 3; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--count" && i + 1 < argc) count = std::atol(argv[++i]);
        else if (a == "--random-keys") randomKeys = true;
        else if (a == "--no-text-index") textIndex = false;
    }
    std::ifstream in(argv[2], std::ios::binary);
    std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (raw.empty() || count < 1) {
        std::fprintf(stderr, "bench_store_apply: cannot read %s\n", argv[2]);
        return 2;
    }
    junction::store::StoreOptions options;
    options.synchronousFull = false;
    options.textIndex = textIndex;
    auto store = junction::store::openSqliteStore(std::string(argv[1]) + "/store-apply.db", options);
    std::mt19937_64 rng(42);
    double process0 = cpuSeconds(CLOCK_PROCESS_CPUTIME_ID), self0 = cpuSeconds(CLOCK_THREAD_CPUTIME_ID);
    auto wall0 = std::chrono::steady_clock::now();
    long failed = 0;
    for (long i = 0; i < count; ++i) {
        junction::store::NewMessage m;
        m.channel = "bench-store";
        m.source = "mllp 127.0.0.1:40000";
        m.raw = raw;
        m.storage = junction::store::StorageMode::Production;
        m.meta.messageType = "ORM^O01";
        m.meta.controlId = "B-" + std::to_string(i);
        m.meta.patientId = randomKeys ? "MRN" + std::to_string(rng() % 10000000) : "MRN482913";
        m.meta.accession = randomKeys ? "ACC" + std::to_string(rng() % 100000000) : "ACC20261123001";
        junction::store::ProcessedMessage p;
        p.channel = m.channel;
        p.storage = m.storage;
        p.meta = m.meta;
        m.processed = std::move(p);
        store->insert(std::move(m), [&failed](junction::store::MessageId id, const std::string&) { failed += id <= 0; });
    }
    double self1 = cpuSeconds(CLOCK_THREAD_CPUTIME_ID);
    store->flush();
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    // The checkpointer copies the WAL into the database after the commits: its share is counted too.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    double process1 = cpuSeconds(CLOCK_PROCESS_CPUTIME_ID), self2 = cpuSeconds(CLOCK_THREAD_CPUTIME_ID);
    double insertUs = (self1 - self0) * 1e6 / static_cast<double>(count);
    double storeUs = ((process1 - process0) - (self2 - self0)) * 1e6 / static_cast<double>(count);
    std::printf("messages=%ld failed=%ld insert_us=%.2f store_threads_us=%.2f wall_s=%.2f rate=%.0f/s\n", count, failed,
                insertUs, storeUs, wall, static_cast<double>(count) / wall);
    return failed == 0 ? 0 : 1;
}
