// Every route of the admin API against every role, from a table that must
// name each route: 401 without or with wrong credentials, 403 for each role
// below the route's, neither for the route's own role and those above. A
// route added without an entry here fails the test, as does an entry whose
// route is gone.
#include <catch2/catch.hpp>

#include <filesystem>
#include <set>

#include "tests/admin/admin_test_support.h"

using namespace junction;
using namespace junction::testing;
using admin::Role;

namespace {

struct Entry {
    std::string method, pattern;
    Role role;            // the least role that may use the route
    std::string path;     // a concrete path for the pattern
    std::string body;     // a valid body where the route takes one
};

// Ordered so that what a route does leaves the next ones something to act on.
std::vector<Entry> table(const std::string& tokenId, const std::string& messageId, const std::string& itemId,
                         const std::string& sentId) {
    return {
        {"GET", "/health", Role::Public, "/health", ""},
        {"GET", "/ready", Role::Public, "/ready", ""},
        {"GET", "/metrics", Role::Viewer, "/metrics", ""},
        {"GET", "/api/v1/openapi.json", Role::Viewer, "/api/v1/openapi.json", ""},
        {"GET", "/api/v1/stats", Role::Viewer, "/api/v1/stats", ""},
        {"GET", "/api/v1/stats/series", Role::Viewer, "/api/v1/stats/series?channel=sched&minutes=5", ""},
        {"GET", "/api/v1/channels", Role::Viewer, "/api/v1/channels", ""},
        {"GET", "/api/v1/channels/{name}", Role::Viewer, "/api/v1/channels/sched", ""},
        {"POST", "/api/v1/channels/{name}/trigger", Role::Operator, "/api/v1/channels/sched/trigger", ""},
        {"POST", "/api/v1/channels/{name}/pause", Role::Operator, "/api/v1/channels/files/pause", ""},
        {"POST", "/api/v1/channels/{name}/resume", Role::Operator, "/api/v1/channels/files/resume", ""},
        {"POST", "/api/v1/channels/{name}/stop", Role::Operator, "/api/v1/channels/files/stop", ""},
        {"POST", "/api/v1/channels/{name}/start", Role::Operator, "/api/v1/channels/files/start", ""},
        {"POST", "/api/v1/channels/{name}/redeploy", Role::Admin, "/api/v1/channels/files/redeploy", ""},
        {"POST", "/api/v1/channels/redeploy", Role::Admin, "/api/v1/channels/redeploy", ""},
        {"POST", "/api/v1/channels/validate", Role::Admin, "/api/v1/channels/validate",
         R"({"yaml": "channel: x\nsource: { type: schedule }\ndestinations: []\n"})"},
        {"GET", "/api/v1/messages", Role::Viewer, "/api/v1/messages?limit=5", ""},
        {"GET", "/api/v1/messages/{id}", Role::Viewer, "/api/v1/messages/" + messageId, ""},
        {"GET", "/api/v1/messages/export", Role::Viewer, "/api/v1/messages/export?format=zip", ""},
        {"POST", "/api/v1/messages/{id}/reprocess", Role::Operator, "/api/v1/messages/" + messageId + "/reprocess", ""},
        {"POST", "/api/v1/messages/reprocess", Role::Operator, "/api/v1/messages/reprocess",
         R"({"channel": "sched", "limit": 1, "confirm": true})"},
        {"POST", "/api/v1/messages/{id}/resend", Role::Operator, "/api/v1/messages/" + sentId + "/resend",
         R"({"destination": "out"})"},
        {"DELETE", "/api/v1/messages/{id}", Role::Admin, "/api/v1/messages/" + messageId, ""},
        {"GET", "/api/v1/worklist", Role::Viewer, "/api/v1/worklist", ""},
        {"GET", "/api/v1/worklist/{id}", Role::Viewer, "/api/v1/worklist/" + itemId, ""},
        {"PUT", "/api/v1/worklist/{id}/status", Role::Operator, "/api/v1/worklist/" + itemId + "/status", R"({"status": "IN PROGRESS"})"},
        {"POST", "/api/v1/worklist/{id}/cancel", Role::Operator, "/api/v1/worklist/" + itemId + "/cancel", ""},
        {"GET", "/api/v1/me", Role::Viewer, "/api/v1/me", ""},
        {"GET", "/api/v1/users", Role::Admin, "/api/v1/users", ""},
        {"POST", "/api/v1/users", Role::Admin, "/api/v1/users", R"({"name": "new", "role": "viewer", "password": "new-password"})"},
        {"PUT", "/api/v1/users/{name}", Role::Admin, "/api/v1/users/new", R"({"role": "operator"})"},
        {"DELETE", "/api/v1/users/{name}", Role::Admin, "/api/v1/users/new", ""},
        {"GET", "/api/v1/tokens", Role::Viewer, "/api/v1/tokens", ""},
        {"POST", "/api/v1/tokens", Role::Viewer, "/api/v1/tokens", R"({"label": "ci"})"},
        {"DELETE", "/api/v1/tokens/{id}", Role::Viewer, "/api/v1/tokens/" + tokenId, ""},
        {"POST", "/api/v1/session", Role::Public, "/api/v1/session", R"({"user": "view", "password": "view-password"})"},
        {"GET", "/api/v1/session", Role::Viewer, "/api/v1/session", ""},
        {"DELETE", "/api/v1/session", Role::Viewer, "/api/v1/session", ""},
        {"GET", "/api/v1/events", Role::Viewer, "/api/v1/events?limit=5", ""},
        {"GET", "/api/v1/alerts", Role::Viewer, "/api/v1/alerts", ""},
    };
}

}  // namespace

TEST_CASE("every admin route answers 401 without credentials and 403 below its role", "[admin]") {
    // Wrong credentials are sent on purpose here, many times: no login limit.
    AdminFixture f(admin::LoginLimits{1000000, 1000000, std::chrono::seconds(1)});
    // A worklist item and a message for the routes that act on one.
    store::WorklistItem item;
    item.accessionNumber = "ACC1";
    item.patientId = "P1";
    item.dataset = "{}";
    auto itemId = f.engine->worklist().upsert(item);
    REQUIRE(f.engine->triggerChannel("sched"));
    std::vector<store::MessageSummary> found;
    REQUIRE(eventually([&] {
        f.engine->store().flush();
        found = f.engine->store().search({});
        return !found.empty();
    }));
    // A message of the file channel, sent: the one POST /messages/{id}/resend sends again.
    // Written beside the folder, then renamed in: never read half written.
    std::filesystem::rename(f.dir.write("order.hl7", "MSH|^~\\&|A|B|C|D|20260101000000||ORM^O01|C1|P|2.5.1\r"),
                            f.dir.str() + "/in/order.hl7");
    store::MessageId sent = 0;
    REQUIRE(eventually([&] {
        store::SearchQuery q;
        q.channel = "files";
        q.status = store::Status::Sent;
        auto m = f.engine->store().search(q);
        if (!m.empty()) sent = m.front().id;
        return sent != 0;
    }));
    // The token that DELETE /tokens/{id} revokes: the viewer's own (a viewer may
    // revoke only its own, so the lower roles' attempts are not the test here).
    auto spare = f.accounts->createToken("view", "spare");
    store::SearchQuery scheduled;
    scheduled.channel = "sched";
    auto entries = table(std::to_string(spare.first), std::to_string(f.engine->store().search(scheduled).front().id),
                         std::to_string(itemId), std::to_string(sent));

    std::set<std::pair<std::string, std::string>> listed;
    for (const auto& e : entries) listed.insert({e.method, e.pattern});
    for (const auto& r : f.server->router().routes()) {
        INFO("route " << r.method << " " << r.pattern << " has no entry in this test's table");
        CHECK(listed.count({r.method, r.pattern}) == 1);
    }
    REQUIRE(entries.size() == f.server->router().routes().size());

    for (const auto& e : entries) {
        INFO(e.method << " " << e.path);
        const admin::Route* route = nullptr;
        for (const auto& r : f.server->router().routes())
            if (r.method == e.method && r.pattern == e.pattern) route = &r;
        REQUIRE(route);
        CHECK(route->role == e.role);
        if (e.role == Role::Public) {
            auto r = f.call(e.method, e.path, "", e.body);
            CHECK(r.status == 200);
            continue;
        }
        auto none = f.call(e.method, e.path, "", e.body);
        CHECK(none.status == 401);
        CHECK(!jsonErrorText(none).empty());
        CHECK(none.header("WWW-Authenticate").find("Bearer") == 0);
        CHECK(f.call(e.method, e.path, "jt_not-a-token", e.body).status == 401);
        for (Role below : {Role::Viewer, Role::Operator}) {
            if (below >= e.role) continue;
            auto r = f.as(below, e.method, e.path, e.body);
            CHECK(r.status == 403);
            CHECK(jsonErrorText(r).find(std::string("needs the role ") + admin::toString(e.role)) != std::string::npos);
        }
        auto r = f.as(e.role, e.method, e.path, e.body);
        CHECK(r.status != 401);
        CHECK(r.status != 403);
        CHECK(r.status < 500);
        INFO(r.body);
        CHECK(r.status == route->status);
    }
}
