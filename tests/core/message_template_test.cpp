// Message templates (engine/core/message_template.h): the fields a file name,
// a URL or a header value takes from the message a destination sends.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "engine/core/message_template.h"

using junction::core::MessageTemplate;
using junction::core::Outbound;

namespace {

std::string sample(const std::string& name) {
    std::ifstream in(std::string(JUNCTION_SOURCE_DIR) + "/samples/hl7/" + name, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

Outbound outbound(std::string content) {
    Outbound m;
    m.messageId = 42;
    m.channel = "orders";
    m.destination = "emr";
    m.attempt = 3;
    m.content = std::move(content);
    return m;
}

}  // namespace

TEST_CASE("a template takes the message's id, channel, destination, attempt and HL7 fields", "[core][template]") {
    Outbound m = outbound(sample("orm_o01_nw.hl7"));
    CHECK(MessageTemplate("${id}-${channel}/${destination}#${attempt}").expand(m) == "42-orders/emr#3");
    CHECK(MessageTemplate("${MSH-10}.hl7").expand(m) == "ORM0001.hl7");
    CHECK(MessageTemplate("${PID-3.1}|${PID-5.1}").expand(m) == "MRN482913|DOE");
    CHECK(MessageTemplate("plain").expand(m) == "plain");
    CHECK(MessageTemplate("").expand(m).empty());
    CHECK(MessageTemplate("${ZZZ-1}x").expand(m) == "x");  // no such segment: empty
    CHECK(MessageTemplate("${timestamp}").expand(m).find_first_not_of("0123456789") == std::string::npos);
    std::string a = MessageTemplate("${uuid}").expand(m), b = MessageTemplate("${uuid}").expand(m);
    CHECK(a.size() == 32);
    CHECK(a != b);
    // Not HL7: its HL7 fields are empty.
    CHECK(MessageTemplate("[${MSH-10}]").expand(outbound("{\"a\": 1}")) == "[]");
}

TEST_CASE("a template takes JSON Pointer fields of a JSON message", "[core][template]") {
    Outbound m = outbound(R"({"resourceType": "Patient", "id": "p/1", "active": true, "n": 7, "x": 1.5, "none": null,
        "identifier": [{"system": "mrn", "value": "MRN482913"}, {"value": "second"}],
        "a/b": "slash", "m~n": "tilde", "": "empty key", "meta": {"tag": ["t"]}})");
    CHECK(MessageTemplate("/${/resourceType}/${/id}").expand(m) == "/Patient/p/1");
    CHECK(MessageTemplate("${/identifier/0/value},${/identifier/1/value}").expand(m) == "MRN482913,second");
    CHECK(MessageTemplate("${/active} ${/n} ${/x} [${/none}]").expand(m) == "true 7 1.5 []");
    CHECK(MessageTemplate("${/a~1b} ${/m~0n} ${/}").expand(m) == "slash tilde empty key");
    CHECK(MessageTemplate("${/meta}").expand(m) == R"({"tag":["t"]})");
    CHECK(MessageTemplate("[${/missing}${/identifier/9/value}${/identifier/x}${/id/deeper}]").expand(m) == "[]");
    CHECK(MessageTemplate("[${/id}]").expand(outbound("not json")) == "[]");
    CHECK(MessageTemplate("${/0}").expand(outbound("[\"first\"]")) == "first");
}

TEST_CASE("a template escapes the values of its fields, not its own text", "[core][template]") {
    Outbound m = outbound(R"({"name": "DOE^JANE & co"})");
    auto upper = [](std::string_view v) {
        std::string s(v);
        for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        return "<" + s + ">";
    };
    CHECK(MessageTemplate("q=${/name}&c=${channel}").expand(m, upper) == "q=<DOE^JANE & CO>&c=<ORDERS>");
}

TEST_CASE("a template with an unknown field or an open '${' is refused with what it takes", "[core][template]") {
    CHECK(MessageTemplate::check("${MSH-10}-${id}.hl7").empty());
    CHECK(MessageTemplate::check("no fields at all").empty());
    CHECK_THAT(MessageTemplate::check("${foo}.hl7"), Catch::StartsWith("unknown field ${foo} in \"${foo}.hl7\" (fields: ${id}"));
    CHECK_THAT(MessageTemplate::check("${MSH-10"), Catch::StartsWith("'${' without its '}'"));
    CHECK_THAT(MessageTemplate::check("${PID}"), Catch::StartsWith("unknown field ${PID}"));  // a field, not a segment
    CHECK_THROWS_AS(MessageTemplate("${}"), std::invalid_argument);
}
