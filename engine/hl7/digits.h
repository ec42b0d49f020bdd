// Writing numbers as fixed-width decimal digits without printf (timestamps,
// control ids).
#pragma once

#include <string>

namespace junction::hl7 {

// Appends v as exactly `width` digits, zero-padded (0 <= v < 10^width, width <= 16).
inline void putDigits(std::string& out, long v, int width) {
    char buf[16];
    for (int i = width - 1; i >= 0; --i) {
        buf[i] = static_cast<char>('0' + v % 10);
        v /= 10;
    }
    out.append(buf, static_cast<std::size_t>(width));
}

}  // namespace junction::hl7
