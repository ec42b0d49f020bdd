// Splitting HL7 text by a delimiter without copying.
#pragma once

#include <string_view>

namespace junction::hl7 {

// The n-th (1-based) piece of `s` split by `sep` (an empty view when absent;
// *found tells absent from empty). A `sep` of 0 never splits.
inline std::string_view piece(std::string_view s, char sep, int n, bool* found = nullptr) {
    std::size_t start = 0;
    for (int i = 1; i < n; ++i) {
        std::size_t p = sep ? s.find(sep, start) : std::string_view::npos;
        if (p == std::string_view::npos) {
            if (found) *found = false;
            return {};
        }
        start = p + 1;
    }
    std::size_t end = sep ? s.find(sep, start) : std::string_view::npos;
    if (found) *found = true;
    return s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
}

}  // namespace junction::hl7
