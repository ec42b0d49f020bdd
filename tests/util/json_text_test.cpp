// The one JSON string quoting (engine/util/json_text.h): escapes, UTF-8, and
// what becomes of other bytes in either mode.
#include <catch2/catch.hpp>

#include <string>

#include "engine/util/json_text.h"

using junction::util::jsonString;
using junction::util::NonUtf8;

TEST_CASE("JSON strings: escapes, control characters, UTF-8", "[util][json]") {
    CHECK(jsonString("") == "\"\"");
    CHECK(jsonString("a\"b\\c/d") == "\"a\\\"b\\\\c/d\"");
    CHECK(jsonString("\n\r\t\b\f") == "\"\\n\\r\\t\\b\\f\"");
    CHECK(jsonString(std::string("\x01\x1f\x7f", 3)) == "\"\\u0001\\u001f\x7f\"");
    CHECK(jsonString(std::string("nul\0in", 6)) == "\"nul\\u0000in\"");
    // valid UTF-8 is copied in both modes
    CHECK(jsonString("Müller 日本 😀") == "\"Müller 日本 😀\"");
    CHECK(jsonString("Müller 日本 😀", NonUtf8::Latin1) == "\"Müller 日本 😀\"");
}

TEST_CASE("JSON strings: bytes that are no UTF-8 are kept, or escaped as Latin-1", "[util][json]") {
    const std::string latin1 = "M\xfcller";  // ISO_IR 100, as a DICOM value may hold it
    CHECK(jsonString(latin1) == "\"M\xfcller\"");
    CHECK(jsonString(latin1, NonUtf8::Latin1) == "\"M\\u00fcller\"");
    // cut short, overlong, surrogate
    CHECK(jsonString("\xe6\x97", NonUtf8::Latin1) == "\"\\u00e6\\u0097\"");
    CHECK(jsonString("\xc0\xaf", NonUtf8::Latin1) == "\"\\u00c0\\u00af\"");
    CHECK(jsonString("\xed\xa0\x80", NonUtf8::Latin1) == "\"\\u00ed\\u00a0\\u0080\"");
}
