// The message search's `text` parameter: a substring of the raw content, any
// case, at least three characters.
#include <catch2/catch.hpp>

#include <string>

#include "tests/admin/admin_test_support.h"

using namespace junction;
using namespace junction::testing;
using admin::Role;

TEST_CASE("messages are searched by text in their raw content", "[admin]") {
    AdminFixture f;
    for (const char* name : {"Smith^John", "Jones^Mary", "O'Brien^Sean"}) {
        store::NewMessage m;
        m.channel = "archive";
        m.raw = std::string("MSH|^~\\&|A|B|C|D|20260101000000||ADT^A04|C1|P|2.5.1\rPID|||P1||") + name + "\r";
        f.engine->store().insert(std::move(m), [](store::MessageId, const std::string&) {});
    }
    f.engine->store().flush();
    auto count = [&](const std::string& query) {
        auto r = f.as(Role::Viewer, "GET", "/api/v1/messages?" + query);
        REQUIRE(r.status == 200);
        return jsonObject(r.body)->getArray("messages")->size();
    };
    CHECK(count("text=smith%5Ejohn") == 1);
    CHECK(count("text=MARY") == 1);
    CHECK(count("text=o%27brien") == 1);
    CHECK(count("text=PID%7C%7C%7CP1") == 3);
    CHECK(count("text=PID%7C%7C%7CP1&limit=2") == 2);
    CHECK(count("text=nobody") == 0);
    CHECK(count("text=smith&channel=other") == 0);

    auto expect400 = [&](const std::string& query) {
        auto r = f.as(Role::Viewer, "GET", "/api/v1/messages?" + query);
        CHECK(r.status == 400);
        CHECK(r.body.find("text needs at least 3 characters") != std::string::npos);
    };
    expect400("text=ab");
    expect400("text=");
    expect400("text=%C3%A9%C3%A9");  // two characters in four bytes
    CHECK(count("text=%C3%A9%C3%A9x") == 0);
}
