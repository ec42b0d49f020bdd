// Text helpers shared by the DICOM code (no DCMTK types).
#pragma once

#include <string>
#include <string_view>

namespace junction::dicom {

// `s` without its leading and trailing spaces: DICOM pads values and AE titles with them.
inline std::string trimSpaces(std::string_view s) {
    std::size_t b = s.find_first_not_of(' ');
    if (b == std::string_view::npos) return {};
    std::size_t e = s.find_last_not_of(' ');
    return std::string(s.substr(b, e - b + 1));
}

}  // namespace junction::dicom
