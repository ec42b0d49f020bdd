// Writing JSON text by hand: the one JSON string quoting of the code base,
// for the places that emit JSON without a JSON library (Lua's json.encode and
// shared maps, CLI output, DICOM JSON, connector content, the channel schema).
#pragma once

#include <string>
#include <string_view>

namespace junction::util {

// What becomes of bytes that are no valid UTF-8.
enum class NonUtf8 {
    Keep,    // copied as they are: text in another character set (a DICOM value
             // in ISO_IR 100) keeps its bytes
    Latin1,  // each written as \u00XX, read as Latin-1, so that the output is
             // valid JSON whatever the input (Lua's json.encode)
};

// Appends `s` as a JSON string literal: quotes, backslash escapes for " and \,
// \n \r \t \b \f, \u00XX for the other control characters; valid UTF-8 is
// copied as it is, other bytes as `nonUtf8` says.
void appendJsonString(std::string& out, std::string_view s, NonUtf8 nonUtf8 = NonUtf8::Keep);
// The same, as a new string.
std::string jsonString(std::string_view s, NonUtf8 nonUtf8 = NonUtf8::Keep);
// True when `s` is valid UTF-8 (so that a JSON string can hold it unchanged).
bool validUtf8(std::string_view s);

}  // namespace junction::util
