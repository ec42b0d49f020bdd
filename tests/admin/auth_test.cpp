// Who may use the admin API: passwords hashed with PBKDF2-HMAC-SHA256,
// HTTP basic and bearer tokens, tokens revoked, failed logins limited per
// user and per address, the first admin account.
#include <catch2/catch.hpp>

#include "engine/admin/password.h"
#include "tests/admin/admin_test_support.h"

using namespace junction;
using namespace junction::testing;
using admin::Role;

TEST_CASE("passwords are kept as salted PBKDF2-HMAC-SHA256 with a high iteration count", "[admin]") {
    std::string h = admin::hashPassword("correct horse");
    CHECK(h.rfind("pbkdf2-sha256$600000$", 0) == 0);
    CHECK(h.find("correct horse") == std::string::npos);
    CHECK(admin::verifyPassword("correct horse", h));
    CHECK_FALSE(admin::verifyPassword("correct horsE", h));
    CHECK(admin::hashPassword("correct horse", 1000) != admin::hashPassword("correct horse", 1000));  // salted
    CHECK_FALSE(admin::verifyPassword("x", "pbkdf2-sha256$abc$$"));
    CHECK_FALSE(admin::verifyPassword("x", ""));

    TempDir dir;
    auto users = store::openSqliteUsers(dir.str() + "/j.db");
    admin::Accounts accounts(*users);
    accounts.addUser("alice", "operator", "alice-secret");
    CHECK(users->user("alice")->passwordHash.rfind("pbkdf2-sha256$600000$", 0) == 0);
    auto [id, token] = accounts.createToken("alice", "ci");
    CHECK(users->token(id)->hash == admin::sha256Hex(token));  // the token itself is not kept
    CHECK(users->token(id)->hash != token);
}

TEST_CASE("HTTP basic and bearer tokens authenticate, and a revoked token no longer does", "[admin]") {
    AdminFixture f;
    auto basic = [&](const std::string& user, const std::string& pw) {
        return f.call("GET", "/api/v1/me", "", "", {{"Authorization", http::basicAuth(user, pw)}});
    };
    auto r = basic("op", "op-password");
    REQUIRE(r.status == 200);
    CHECK(jsonObject(r.body)->getValue<std::string>("role") == "operator");
    CHECK(basic("op", "wrong-password").status == 401);
    CHECK(basic("nobody", "op-password").status == 401);
    CHECK(f.call("GET", "/api/v1/me", "", "", {{"Authorization", "Basic !!!"}}).status == 401);

    // A token made through the API works until it is revoked.
    auto made = f.as(Role::Viewer, "POST", "/api/v1/tokens", R"({"label": "script"})");
    REQUIRE(made.status == 201);
    auto o = jsonObject(made.body);
    std::string token = o->getValue<std::string>("token");
    std::string id = std::to_string(o->getValue<std::int64_t>("id"));
    CHECK(f.call("GET", "/api/v1/me", token).status == 200);
    auto list = jsonObject(f.as(Role::Viewer, "GET", "/api/v1/tokens").body)->getArray("tokens");
    bool listed = false;
    for (std::size_t i = 0; i < list->size(); ++i) {
        auto t = list->getObject(static_cast<unsigned>(i));
        CHECK(t->getValue<std::string>("user") == "view");  // a viewer sees its own tokens only
        CHECK_FALSE(t->has("token"));
        listed = listed || std::to_string(t->getValue<std::int64_t>("id")) == id;
    }
    CHECK(listed);
    // Another non-admin cannot revoke it (nor tell it exists).
    CHECK(f.as(Role::Operator, "DELETE", "/api/v1/tokens/" + id).status == 404);
    CHECK(f.call("DELETE", "/api/v1/tokens/" + id, token).status == 204);
    CHECK(f.call("GET", "/api/v1/me", token).status == 401);
    // A viewer makes no token for another user.
    CHECK(f.as(Role::Viewer, "POST", "/api/v1/tokens", R"({"user": "admin"})").status == 403);
}

TEST_CASE("failed logins are limited per user and per address", "[admin]") {
    admin::LoginLimits limits;
    limits.perUser = 3;
    limits.perAddress = 5;
    AdminFixture f(limits);
    auto basic = [&](const std::string& user, const std::string& pw) {
        return f.call("GET", "/api/v1/me", "", "", {{"Authorization", http::basicAuth(user, pw)}});
    };
    for (int i = 0; i < 3; ++i) CHECK(basic("op", "guess-" + std::to_string(i)).status == 401);
    // Locked: even the right password is refused, with when to try again.
    auto r = basic("op", "op-password");
    CHECK(r.status == 429);
    CHECK(std::stoi(r.header("Retry-After")) > 0);
    CHECK(!jsonErrorText(r).empty());
    // Another user from the same address is not locked by op's failures yet...
    CHECK(basic("view", "view-password").status == 200);
    // ...until the address has failed perAddress times.
    CHECK(basic("view", "guess").status == 401);
    CHECK(basic("admin", "guess").status == 401);
    CHECK(basic("admin", "admin-password").status == 429);
    // Everyone from that address, tokens too.
    CHECK(f.as(Role::Admin, "GET", "/api/v1/me").status == 429);
    // The server itself goes on serving.
    CHECK(f.call("GET", "/health").status == 200);
}

TEST_CASE("the login limit lets a user in again once the window has passed", "[admin]") {
    TempDir dir;
    auto users = store::openSqliteUsers(dir.str() + "/j.db");
    admin::LoginLimits limits;
    limits.perUser = 2;
    limits.perAddress = 100;
    limits.window = std::chrono::seconds(60);
    admin::Accounts accounts(*users, kTestIterations, limits);
    accounts.addUser("alice", "viewer", "alice-secret");
    using Kind = admin::Accounts::Outcome::Kind;
    auto t0 = admin::FailureLimiter::Clock::now();
    const std::string good = http::basicAuth("alice", "alice-secret"), bad = http::basicAuth("alice", "nope-nope");
    CHECK(accounts.authenticate(bad, "10.0.0.1:5000", t0).kind == Kind::Invalid);
    CHECK(accounts.authenticate(bad, "10.0.0.2:5000", t0 + std::chrono::seconds(10)).kind == Kind::Invalid);
    auto locked = accounts.authenticate(good, "10.0.0.3:5000", t0 + std::chrono::seconds(20));
    CHECK(locked.kind == Kind::Limited);
    CHECK(locked.retryAfter == std::chrono::seconds(40));
    // The first failure leaves the window at t0 + 60 s: one is then left, below the limit.
    CHECK(accounts.authenticate(good, "10.0.0.3:5000", t0 + std::chrono::seconds(59)).retryAfter == std::chrono::seconds(1));
    auto ok = accounts.authenticate(good, "10.0.0.3:5000", t0 + std::chrono::seconds(61));
    CHECK(ok.kind == Kind::Ok);
    CHECK(ok.principal.user == "alice");
    CHECK(ok.principal.role == Role::Viewer);
    CHECK(accounts.authenticate("", "10.0.0.3:5000").kind == Kind::Missing);
}

TEST_CASE("the first start makes an admin account, and the last admin cannot be removed", "[admin]") {
    TempDir dir;
    auto users = store::openSqliteUsers(dir.str() + "/j.db");
    admin::Accounts accounts(*users, kTestIterations);
    auto generated = accounts.ensureAdmin("");
    REQUIRE(generated);
    CHECK(generated->size() >= 16);
    CHECK(users->user("admin")->role == "admin");
    CHECK(admin::verifyPassword(*generated, users->user("admin")->passwordHash));
    CHECK_FALSE(accounts.ensureAdmin(""));  // only when there is no user
    CHECK_THROWS_AS(accounts.removeUser("admin"), admin::ApiError);
    CHECK_THROWS_AS(accounts.setRole("admin", "viewer"), admin::ApiError);
    CHECK_THROWS_AS(accounts.addUser("admin", "viewer", "whatever-pw"), admin::ApiError);  // taken
    CHECK_THROWS_AS(accounts.addUser("../x", "viewer", "whatever-pw"), admin::ApiError);
    CHECK_THROWS_AS(accounts.addUser("bob", "root", "whatever-pw"), admin::ApiError);
    CHECK_THROWS_AS(accounts.addUser("bob", "viewer", "short"), admin::ApiError);
    accounts.addUser("bob", "admin", "bob-secret");
    accounts.removeUser("admin");  // bob is an admin too
    CHECK_FALSE(users->user("admin"));

    TempDir other;
    auto users2 = store::openSqliteUsers(other.str() + "/j.db");
    admin::Accounts withEnv(*users2, kTestIterations);
    CHECK_FALSE(withEnv.ensureAdmin("from-the-environment"));  // given, so not printed
    CHECK(admin::verifyPassword("from-the-environment", users2->user("admin")->passwordHash));
}
