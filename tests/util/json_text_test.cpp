// The one JSON string quoting (engine/util/json_text.h): escapes, UTF-8, and
// what becomes of other bytes in either mode.
#include <catch2/catch.hpp>

#include <string>

#include "engine/util/json_text.h"

using junction::util::jsonString;
using junction::util::NonUtf8;
using junction::util::validUtf8;

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

TEST_CASE("UTF-8 validity: text passes, bytes that are no UTF-8 do not", "[util][json]") {
    CHECK(validUtf8(""));
    CHECK(validUtf8("plain ascii\r\n\t"));
    CHECK(validUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    CHECK_FALSE(validUtf8("\x89PNG\r\n"));         // a PNG's first byte
    CHECK_FALSE(validUtf8("caf\xe9"));              // Latin-1
    CHECK_FALSE(validUtf8("\xe2\x82"));             // cut short
    CHECK_FALSE(validUtf8("\xc0\xaf"));             // overlong
    CHECK_FALSE(validUtf8("\xed\xa0\x80"));         // a surrogate
}
