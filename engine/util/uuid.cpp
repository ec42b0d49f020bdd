// Random version 4 UUIDs (see uuid.h).
#include "engine/util/uuid.h"

#include <cstdio>
#include <random>

namespace junction::util {

namespace {

std::mt19937_64& rng() {
    thread_local std::mt19937_64 gen([] {
        std::random_device rd;
        std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd()};
        return std::mt19937_64(seq);
    }());
    return gen;
}

}  // namespace

Uuid randomUuid() {
    Uuid u;
    u.hi = rng()();
    u.lo = rng()();
    u.hi = (u.hi & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;  // version 4
    u.lo = (u.lo & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant 10
    return u;
}

std::string uuidText(const Uuid& u) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(u.hi >> 32),
                  static_cast<unsigned>((u.hi >> 16) & 0xFFFF), static_cast<unsigned>(u.hi & 0xFFFF),
                  static_cast<unsigned>(u.lo >> 48), static_cast<unsigned long long>(u.lo & 0xFFFFFFFFFFFFull));
    return buf;
}

}  // namespace junction::util
