// What the admin API does with bad requests: malformed JSON, unknown fields,
// wrong types, oversized bodies, unknown query parameters, path traversal,
// unknown routes and methods each get a 4xx with a JSON error, and nothing
// else is disturbed.
#include <catch2/catch.hpp>

#include "tests/admin/admin_test_support.h"
#include "tests/support/raw_http.h"

using namespace junction;
using namespace junction::testing;
using admin::Role;

using test_support::rawExchange;

TEST_CASE("bad requests get a 4xx with a JSON error and disturb nothing", "[admin]") {
    AdminFixture f({}, 4096);
    auto expect = [&](const http::Response& r, int status, const std::string& text) {
        INFO(text << ": " << r.body);
        CHECK(r.status == status);
        CHECK(r.header("Content-Type").find("application/json") == 0);
        CHECK(jsonErrorText(r).find(text) != std::string::npos);
    };
    auto post = [&](const std::string& body) { return f.as(Role::Admin, "POST", "/api/v1/users", body); };
    expect(post("{\"name\": \"x\""), 400, "malformed JSON");
    expect(post("[1, 2]"), 400, "a JSON object is expected");
    expect(post("\"text\""), 400, "a JSON object is expected");
    expect(post("{\"name\": " + std::string(20, '[') + std::string(20, ']') + "}"), 400, "nested too deeply");
    expect(post(R"({"name": "x", "role": "viewer", "password": "long-enough", "admin": true})"), 400,
           "unknown field 'admin'");
    expect(post(R"({"name": 42, "role": "viewer", "password": "long-enough"})"), 400, "'name' must be a string");
    expect(post(R"({"name": "x", "role": "root", "password": "long-enough"})"), 400, "'root' is not one of");
    expect(post(R"({"name": "x", "role": "viewer"})"), 400, "missing field 'password'");
    expect(post(R"({"name": "../../etc", "role": "viewer", "password": "long-enough"})"), 400, "a user name is");
    expect(f.call("POST", "/api/v1/users", f.tokens[Role::Admin], R"({"name": "x"})", {{"Content-Type", "text/plain"}}),
           415, "application/json");
    expect(post(std::string(5000, ' ')), 413, "body larger than 4096 bytes");
    expect(f.as(Role::Operator, "POST", "/api/v1/channels/sched/stop", "{}"), 400, "takes no body");
    expect(f.as(Role::Viewer, "GET", "/api/v1/messages?limit=ten"), 400, "'limit' must be an integer");
    expect(f.as(Role::Viewer, "GET", "/api/v1/messages?limit=5000"), 400, "limit is from 1 to 1000");
    expect(f.as(Role::Viewer, "GET", "/api/v1/messages?channel=a&drop=table"), 400, "unknown query parameter 'drop'");
    expect(f.as(Role::Viewer, "GET", "/api/v1/messages?from=yesterday"), 400, "not an ISO 8601 time");
    expect(f.as(Role::Viewer, "GET", "/api/v1/channels/nope"), 404, "no channel 'nope'");
    expect(f.as(Role::Viewer, "GET", "/api/v1/channels/..%2F..%2Fetc%2Fpasswd"), 400, "'..' segment");
    expect(f.as(Role::Viewer, "GET", "/api/v1/messages/1%20OR%201=1"), 404, "no message");
    expect(f.as(Role::Viewer, "GET", "/api/v1/nothing"), 404, "no route");
    expect(f.as(Role::Viewer, "DELETE", "/api/v1/channels"), 405, "not a method");
    // Nothing was made by any of these.
    CHECK(f.accounts->users().size() == 3);

    // Dot segments as sent, not as a client would clean them up.
    for (const char* target : {"/api/v1/channels/../../../etc/passwd", "/api/v1/channels/./sched", "/api//v1/channels"}) {
        std::string answer = rawExchange(f.server->port(), std::string("GET ") + target + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                                                        f.tokens[Role::Admin] + "\r\nConnection: close\r\n\r\n");
        INFO(target << ": " << answer);
        CHECK(answer.rfind("HTTP/1.1 400", 0) == 0);
        CHECK(answer.find("{\"error\": ") != std::string::npos);
    }
    // A request that is no HTTP at all.
    rawExchange(f.server->port(), "\x16\x03\x01 hello\r\n\r\n");

    // The engine and the API are as they were.
    CHECK(f.call("GET", "/health").status == 200);
    auto c = jsonObject(f.as(Role::Viewer, "GET", "/api/v1/channels/sched").body);
    CHECK(c->getValue<std::string>("state") == "running");
}
