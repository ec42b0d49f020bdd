// Random UUIDs (RFC 4122 version 4) from a per-thread generator seeded by
// std::random_device: Lua's uuid() and, as a number, the DICOM UIDs of
// engine/dicom/uid.h.
#pragma once

#include <cstdint>
#include <string>

namespace junction::util {

struct Uuid {
    std::uint64_t hi = 0, lo = 0;  // the 128 bits, most significant first
};

// A new random UUID: version 4, variant 10.
Uuid randomUuid();
// "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", lower-case hex.
std::string uuidText(const Uuid& u);

}  // namespace junction::util
