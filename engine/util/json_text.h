// Writing JSON text by hand: string quoting shared by the places that emit
// JSON without a JSON library (CLI output, DICOM JSON, connector content).
#pragma once

#include <string>
#include <string_view>

namespace junction::util {

// Appends `s` as a JSON string literal: quotes, backslash escapes for " and \,
// \n \r \t, \u00XX for the other control characters; other bytes (UTF-8
// included) are copied as they are.
void appendJsonString(std::string& out, std::string_view s);
// The same, as a new string.
std::string jsonString(std::string_view s);

}  // namespace junction::util
