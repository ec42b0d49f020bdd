// The console's logins over real HTTP: POST /api/v1/session sets the session
// cookie, the cookie authenticates every route, a mutating request made with
// it needs the session's X-CSRF-Token, logins are limited as HTTP basic is,
// a session ends at logout or after its idle time. And the console's files
// served at / and /console/*.
#include <catch2/catch.hpp>

#include "engine/admin/console_assets.h"
#include "engine/admin/sessions.h"
#include "tests/admin/admin_test_support.h"
#include "tests/support/test_certificates.h"

using namespace junction;
using namespace junction::testing;

namespace {

struct Login {
    std::string cookie;  // "junction_session=..." for a Cookie header
    std::string csrf;
    std::string setCookie;
};

Login login(AdminFixture& f, const std::string& user, const std::string& password) {
    auto r = f.call("POST", "/api/v1/session", "", R"({"user": ")" + user + R"(", "password": ")" + password + "\"}");
    INFO(r.body);
    REQUIRE(r.status == 200);
    auto o = jsonObject(r.body);
    CHECK(o->getValue<std::string>("user") == user);
    Login l;
    l.setCookie = r.header("Set-Cookie");
    l.cookie = l.setCookie.substr(0, l.setCookie.find(';'));
    l.csrf = o->getValue<std::string>("csrf");
    return l;
}

}  // namespace

TEST_CASE("a console login sets an HttpOnly SameSite=Strict cookie that authenticates requests", "[admin]") {
    AdminFixture f;
    Login l = login(f, "op", "op-password");
    CHECK(l.cookie.rfind("junction_session=", 0) == 0);
    CHECK(l.cookie.size() > 30);
    CHECK(l.setCookie.find("; HttpOnly") != std::string::npos);
    CHECK(l.setCookie.find("; SameSite=Strict") != std::string::npos);
    CHECK(l.setCookie.find("; Path=/") != std::string::npos);
    CHECK(l.setCookie.find("Secure") == std::string::npos);  // plain HTTP here
    CHECK(!l.csrf.empty());

    auto me = f.call("GET", "/api/v1/me", "", "", {{"Cookie", "other=1; " + l.cookie}});
    REQUIRE(me.status == 200);
    CHECK(jsonObject(me.body)->getValue<std::string>("role") == "operator");
    // After a reload the console asks for its CSRF token again.
    auto s = f.call("GET", "/api/v1/session", "", "", {{"Cookie", l.cookie}});
    REQUIRE(s.status == 200);
    CHECK(jsonObject(s.body)->getValue<std::string>("csrf") == l.csrf);

    SECTION("a mutating request needs the session's CSRF token") {
        auto none = f.call("POST", "/api/v1/channels/files/pause", "", "", {{"Cookie", l.cookie}});
        CHECK(none.status == 403);
        CHECK(jsonErrorText(none).find("X-CSRF-Token") != std::string::npos);
        auto wrong = f.call("POST", "/api/v1/channels/files/pause", "", "", {{"Cookie", l.cookie}, {"X-CSRF-Token", "jt_x"}});
        CHECK(wrong.status == 403);
        CHECK(f.engine->channel("files")->state == core::ChannelState::Running);
        auto right = f.call("POST", "/api/v1/channels/files/pause", "", "", {{"Cookie", l.cookie}, {"X-CSRF-Token", l.csrf}});
        CHECK(right.status == 200);
        CHECK(f.engine->channel("files")->state == core::ChannelState::Paused);
        // Another session's token does not do.
        Login other = login(f, "op", "op-password");
        CHECK(other.csrf != l.csrf);
        CHECK(f.call("POST", "/api/v1/channels/files/resume", "", "", {{"Cookie", l.cookie}, {"X-CSRF-Token", other.csrf}})
                  .status == 403);
    }
    SECTION("the session's role is the user's: a viewer's cookie is refused what a viewer may not do") {
        Login v = login(f, "view", "view-password");
        auto r = f.call("POST", "/api/v1/channels/files/stop", "", "", {{"Cookie", v.cookie}, {"X-CSRF-Token", v.csrf}});
        CHECK(r.status == 403);
        // A role changed meanwhile counts at once.
        f.accounts->setRole("view", "operator");
        r = f.call("POST", "/api/v1/channels/files/stop", "", "", {{"Cookie", v.cookie}, {"X-CSRF-Token", v.csrf}});
        CHECK(r.status == 200);
        // A removed user's session ends.
        f.accounts->removeUser("view");
        CHECK(f.call("GET", "/api/v1/me", "", "", {{"Cookie", v.cookie}}).status == 401);
    }
    SECTION("logout ends the session and clears the cookie") {
        auto out = f.call("DELETE", "/api/v1/session", "", "", {{"Cookie", l.cookie}, {"X-CSRF-Token", l.csrf}});
        CHECK(out.status == 204);
        CHECK(out.header("Set-Cookie").find("Max-Age=0") != std::string::npos);
        auto me2 = f.call("GET", "/api/v1/me", "", "", {{"Cookie", l.cookie}});
        CHECK(me2.status == 401);
    }
    SECTION("an unknown cookie is 401, and the Authorization header goes first") {
        CHECK(f.call("GET", "/api/v1/me", "", "", {{"Cookie", "junction_session=jt_forged"}}).status == 401);
        auto r = f.as(admin::Role::Viewer, "GET", "/api/v1/me");
        CHECK(jsonObject(r.body)->getValue<std::string>("user") == "view");
        // With a bearer token, no CSRF token is needed (no cookie is involved).
        CHECK(f.as(admin::Role::Operator, "POST", "/api/v1/channels/files/pause").status == 200);
    }
}

TEST_CASE("console logins are refused for wrong passwords and limited like HTTP basic", "[admin]") {
    AdminFixture f(admin::LoginLimits{3, 100, std::chrono::seconds(900)});
    for (int i = 0; i < 3; ++i) {
        auto r = f.call("POST", "/api/v1/session", "", R"({"user": "op", "password": "wrong-password"})");
        CHECK(r.status == 401);
        CHECK(r.header("Set-Cookie").empty());
    }
    auto limited = f.call("POST", "/api/v1/session", "", R"({"user": "op", "password": "op-password"})");
    CHECK(limited.status == 429);
    CHECK(!limited.header("Retry-After").empty());
    // Another user is not held.
    login(f, "view", "view-password");
    CHECK(f.call("POST", "/api/v1/session", "", R"({"user": "op"})").status == 400);
}

TEST_CASE("a console session ends after its idle time, and each use starts that anew", "[admin]") {
    admin::Sessions sessions(std::chrono::minutes(10));
    auto t0 = admin::Sessions::Clock::now();
    auto [token, csrf] = sessions.create("alice", t0);
    CHECK(sessions.use(token, t0 + std::chrono::minutes(9))->csrf == csrf);
    CHECK(sessions.use(token, t0 + std::chrono::minutes(18))->user == "alice");
    CHECK(!sessions.use(token, t0 + std::chrono::minutes(29)));
    CHECK(!sessions.use(token, t0 + std::chrono::minutes(19)));  // ended, not only stale
    CHECK(!sessions.use("", t0));
    CHECK(admin::cookieValue("a=1; junction_session=xyz; b=2", "junction_session") == "xyz");
    CHECK(admin::cookieValue("xjunction_session=1", "junction_session").empty());
}

TEST_CASE("console sessions are kept in the store: a restart does not end them, a logout or the idle time does", "[admin]") {
    TempDir dir;
    auto users = store::openSqliteUsers(dir.str() + "/users.db");
    REQUIRE(users->addUser({"alice", "operator", "x", {}}));
    const auto idle = std::chrono::minutes(10);
    auto t0 = admin::Sessions::Clock::now();
    std::string token, csrf, other, old;
    {
        admin::Sessions before(idle, users.get());
        std::tie(token, csrf) = before.create("alice", t0);
        other = before.create("alice", t0).first;
        old = before.create("alice", t0 - std::chrono::minutes(30)).first;
        CHECK(before.use(token, t0 + std::chrono::minutes(2)));  // written: more than a minute since the last write
    }
    CHECK(users->session(admin::sha256Hex(token))->user == "alice");
    CHECK_FALSE(users->session(token));  // kept by its hash only
    admin::Sessions after(idle, users.get());  // the engine started again
    auto s = after.use(token, t0 + std::chrono::minutes(11));  // idle 9 min since its last written use
    REQUIRE(s);
    CHECK(s->user == "alice");
    CHECK(s->csrf == csrf);
    CHECK_FALSE(after.use(old, t0));  // idle for longer than the timeout: ended, and gone from the store
    CHECK_FALSE(users->session(admin::sha256Hex(old)));
    after.end(token);
    CHECK_FALSE(users->session(admin::sha256Hex(token)));
    CHECK_FALSE(admin::Sessions(idle, users.get()).use(token, t0 + std::chrono::minutes(12)));
    // A removed user's sessions go with them.
    REQUIRE(users->removeUser("alice"));
    CHECK_FALSE(users->session(admin::sha256Hex(other)));
}

TEST_CASE("the console's files are served at / and /console/* with a CSP and an ETag", "[admin]") {
    AdminFixture f;
    auto page = f.call("GET", "/");
    REQUIRE(page.status == 200);
    CHECK(page.header("Content-Type").rfind("text/html", 0) == 0);
    CHECK(page.body.find("/console/console.js") != std::string::npos);
    CHECK(page.header("Content-Security-Policy").find("default-src 'self'") == 0);
    CHECK(page.header("X-Content-Type-Options") == "nosniff");
    const std::string etag = page.header("ETag");
    REQUIRE(!etag.empty());
    CHECK(f.call("GET", "/", "", "", {{"If-None-Match", etag}}).status == 304);

    auto js = f.call("GET", "/console/console.js");
    CHECK(js.status == 200);
    CHECK(js.header("Content-Type").rfind("text/javascript", 0) == 0);
    CHECK(js.header("ETag") != etag);
    CHECK(f.call("GET", "/console/console.css").header("Content-Type").rfind("text/css", 0) == 0);
    CHECK(f.call("GET", "/console/missing.js").status == 404);
    CHECK(f.call("GET", "/console/../junction.db").status == 400);
    // The whole console stays small.
    std::size_t total = 0;
    for (auto name : {"index.html", "console.css", "api.js", "content.js", "views.js", "console.js"}) {
        const auto* a = admin::findConsoleAsset(name);
        REQUIRE(a);
        total += a->body.size();
    }
    CHECK(total < 500 * 1024);
}

TEST_CASE("under HTTPS the session cookie is Secure", "[admin]") {
    AdminFixture f;
    test_support::Certificates certs(R"(ca ca "Test CA"
issue server 127.0.0.1 ca "subjectAltName=IP:127.0.0.1\n")");
    admin::AdminOptions o;
    o.port = 0;
    o.tlsCert = certs("server.pem");
    o.tlsKey = certs("server.key");
    admin::AdminServer https(*f.engine, *f.accounts, o);
    https.start();
    http::ClientOptions co;
    co.tls.ca = certs("ca.pem");
    http::Client client(co);
    auto r = client.send({"POST", "https://127.0.0.1:" + std::to_string(https.port()) + "/api/v1/session",
                          {{"Content-Type", "application/json"}}, R"({"user": "view", "password": "view-password"})"});
    INFO(r.error);
    REQUIRE(r.answered);
    CHECK(r.response.status == 200);
    CHECK(r.response.header("Set-Cookie").find("; Secure") != std::string::npos);
    client.reset();
    https.stop();
}
