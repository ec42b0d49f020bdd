// The event log and alerts over the admin API: the audit of each request
// (failed logins with the user offered, a user's login, mutating calls, views
// of a message's content), what a viewer may see of it, type prefixes and
// paging; GET /api/v1/alerts without rules.
#include <catch2/catch.hpp>

#include "tests/admin/admin_test_support.h"

using namespace junction;
using namespace junction::testing;
using admin::Role;

namespace {

// The events of a GET /api/v1/events answer.
Poco::JSON::Array::Ptr eventsOf(const http::Response& r) {
    REQUIRE(r.status == 200);
    return jsonObject(r.body)->getArray("events");
}

bool hasEvent(const Poco::JSON::Array::Ptr& events, const std::string& type, const std::string& text,
              const std::string& user = {}) {
    for (std::size_t i = 0; i < events->size(); ++i) {
        auto e = events->getObject(static_cast<unsigned>(i));
        if (e->getValue<std::string>("type") != type) continue;
        if (e->getValue<std::string>("text").find(text) == std::string::npos) continue;
        if (!user.empty() && (e->isNull("user") || e->getValue<std::string>("user") != user)) continue;
        return true;
    }
    return false;
}

}  // namespace

TEST_CASE("the event log records logins, mutating calls and message views, and a viewer sees only their own",
          "[admin][events]") {
    AdminFixture f;
    // Basic credentials with a wrong password: a failed login with the name offered.
    auto wrong = f.call("GET", "/api/v1/stats", "", "", {{"Authorization", "Basic YWRtaW46bm9wZQ=="}});  // admin:nope
    CHECK(wrong.status == 401);
    CHECK(f.as(Role::Operator, "POST", "/api/v1/channels/files/pause").status == 200);
    CHECK(f.as(Role::Viewer, "POST", "/api/v1/channels/files/resume").status == 403);
    CHECK(f.as(Role::Viewer, "GET", "/api/v1/messages/999999").status == 404);  // no content shown: no view

    auto all = eventsOf(f.as(Role::Admin, "GET", "/api/v1/events?limit=1000"));
    CHECK(hasEvent(all, "login.failed", "GET /api/v1/stats: 401", "admin"));
    CHECK(hasEvent(all, "login.ok", "bearer token", "op"));
    CHECK(hasEvent(all, "api.post", "POST /api/v1/channels/files/pause: 200", "op"));
    CHECK(hasEvent(all, "api.post", "POST /api/v1/channels/files/resume: 403"));
    CHECK_FALSE(hasEvent(all, "message.viewed", ""));
    CHECK(hasEvent(all, "channel.started", ""));

    auto mine = eventsOf(f.as(Role::Viewer, "GET", "/api/v1/events?limit=1000"));
    CHECK_FALSE(hasEvent(mine, "api.post", "pause"));
    CHECK_FALSE(hasEvent(mine, "login.failed", ""));
    CHECK(hasEvent(mine, "login.ok", "", "view"));
    CHECK(hasEvent(mine, "channel.started", ""));

    auto channels = eventsOf(f.as(Role::Admin, "GET", "/api/v1/events?type=channel.&limit=1000"));
    for (std::size_t i = 0; i < channels->size(); ++i)
        CHECK(channels->getObject(static_cast<unsigned>(i))->getValue<std::string>("type").rfind("channel.", 0) == 0);
    CHECK(channels->size() >= 4);  // two channels deployed and started

    // Pages by id, newest first.
    auto page = jsonObject(f.as(Role::Admin, "GET", "/api/v1/events?limit=2").body);
    auto first = page->getArray("events");
    REQUIRE(first->size() == 2);
    auto next = page->getValue<std::int64_t>("next");
    CHECK(next == first->getObject(1)->getValue<std::int64_t>("id"));
    auto second = eventsOf(f.as(Role::Admin, "GET", "/api/v1/events?limit=2&before=" + std::to_string(next)));
    REQUIRE(second->size() >= 1);
    CHECK(second->getObject(0)->getValue<std::int64_t>("id") < next);
    CHECK(f.as(Role::Admin, "GET", "/api/v1/events?limit=1001").status == 400);
    CHECK(f.as(Role::Admin, "GET", "/api/v1/events?before=-1").status == 400);
    CHECK(f.as(Role::Admin, "GET", "/api/v1/events?colour=red").status == 400);
}

TEST_CASE("GET /api/v1/alerts without rules is an empty list", "[admin][events]") {
    AdminFixture f;
    auto r = f.as(Role::Viewer, "GET", "/api/v1/alerts");
    REQUIRE(r.status == 200);
    CHECK(jsonObject(r.body)->getArray("alerts")->size() == 0);
}
