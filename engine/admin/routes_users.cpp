// The admin API's user routes: users and their roles (admin only), the
// caller's own account, and bearer tokens (each user their own; an admin
// anyone's).
#include <charconv>

#include "engine/admin/admin_server.h"
#include "engine/admin/route_support.h"

namespace junction::admin {

namespace {

Schema userSchema() {
    return object({{"name", string(), true},
                   {"role", words({"admin", "operator", "viewer"}), true},
                   {"created", string("ISO 8601"), true}});
}

Schema tokenSchema() {
    return object({{"id", integer(), true},
                   {"user", string(), true},
                   {"label", string(), true},
                   {"created", string("ISO 8601"), true},
                   {"last_used", nullable(string("ISO 8601")), true}});
}

void writeUser(JsonWriter& w, const store::UserRecord& u) {
    w.beginObject().field("name", u.name).field("role", u.role).field("created", isoTime(u.createdAt)).endObject();
}

void writeToken(JsonWriter& w, const store::TokenRecord& t) {
    w.beginObject().field("id", t.id).field("user", t.user).field("label", t.label).field("created", isoTime(t.createdAt));
    w.key("last_used");
    if (t.lastUsed) w.value(isoTime(*t.lastUsed));
    else w.null();
    w.endObject();
}

ApiResponse userAnswer(Accounts& accounts, const std::string& name, int status = 200) {
    auto u = accounts.user(name);
    if (!u) throw ApiError(404, "no user '" + name + "'");
    JsonWriter w;
    writeUser(w, *u);
    return jsonAnswer(w, status);
}

// A token of the caller, or any token for an admin; 404 otherwise (another
// user's token is not told apart from none).
store::TokenRecord ownToken(Accounts& accounts, const ApiRequest& req) {
    const std::string& text = req.pathParam("id");
    std::int64_t id = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    auto t = ec == std::errc() && end == text.data() + text.size() ? accounts.token(id) : std::nullopt;
    if (!t || (req.principal.role != Role::Admin && t->user != req.principal.user))
        throw ApiError(404, "no token " + text);
    return *t;
}

}  // namespace

std::vector<Route> userRoutes(AdminContext& ctx) {
    Accounts& accounts = ctx.accounts;
    std::vector<Route> routes;

    Route list{"GET", "/api/v1/users", Role::Admin, "users", "Every user and their role"};
    list.response = object({{"users", array(userSchema()), true}});
    list.handler = [&accounts](const ApiRequest&) {
        JsonWriter w;
        w.beginObject().key("users").beginArray();
        for (const auto& u : accounts.users()) writeUser(w, u);
        w.endArray().endObject();
        return jsonAnswer(w);
    };
    routes.push_back(std::move(list));

    Route add{"POST", "/api/v1/users", Role::Admin, "users", "Add a user"};
    add.request = object({{"name", string("1 to 64 of A-Z a-z 0-9 . _ @ -"), true},
                          {"role", words({"admin", "operator", "viewer"}), true},
                          {"password", string("at least 8 characters"), true}});
    add.response = userSchema();
    add.status = 201;
    add.errors = {409};
    add.handler = [&accounts](const ApiRequest& req) {
        accounts.addUser(req.body.str("name"), req.body.str("role"), req.body.str("password"));
        return userAnswer(accounts, req.body.str("name"), 201);
    };
    routes.push_back(std::move(add));

    Route change{"PUT", "/api/v1/users/{name}", Role::Admin, "users", "Change a user's role or password"};
    change.request = object({{"role", words({"admin", "operator", "viewer"})}, {"password", string("at least 8 characters")}});
    change.response = userSchema();
    change.errors = {404, 409};
    change.handler = [&accounts](const ApiRequest& req) {
        const std::string& name = req.pathParam("name");
        if (!accounts.user(name)) throw ApiError(404, "no user '" + name + "'");
        if (req.body.has("role")) accounts.setRole(name, req.body.str("role"));
        if (req.body.has("password")) accounts.setPassword(name, req.body.str("password"));
        return userAnswer(accounts, name);
    };
    routes.push_back(std::move(change));

    Route remove{"DELETE", "/api/v1/users/{name}", Role::Admin, "users", "Remove a user and their tokens"};
    remove.status = 204;
    remove.errors = {404, 409};
    remove.handler = [&accounts](const ApiRequest& req) {
        accounts.removeUser(req.pathParam("name"));
        return ApiResponse{204, "", "", {}};
    };
    routes.push_back(std::move(remove));

    Route me{"GET", "/api/v1/me", Role::Viewer, "users", "Who the credentials are"};
    me.response = object({{"user", string(), true}, {"role", words({"admin", "operator", "viewer"}), true},
                          {"token", nullable(integer("the token's id, null for a password")), true}});
    me.handler = [](const ApiRequest& req) {
        JsonWriter w;
        w.beginObject().field("user", req.principal.user).field("role", toString(req.principal.role)).key("token");
        if (req.principal.tokenId) w.value(req.principal.tokenId);
        else w.null();
        w.endObject();
        return jsonAnswer(w);
    };
    routes.push_back(std::move(me));

    Route tokens{"GET", "/api/v1/tokens", Role::Viewer, "users", "The caller's tokens (an admin's: everyone's)"};
    tokens.response = object({{"tokens", array(tokenSchema()), true}});
    tokens.handler = [&accounts](const ApiRequest& req) {
        JsonWriter w;
        w.beginObject().key("tokens").beginArray();
        for (const auto& t : accounts.tokens(req.principal.role == Role::Admin ? "" : req.principal.user))
            writeToken(w, t);
        w.endArray().endObject();
        return jsonAnswer(w);
    };
    routes.push_back(std::move(tokens));

    Route create{"POST", "/api/v1/tokens", Role::Viewer, "users",
                 "Create a bearer token for the caller (an admin: for any user); the token is shown only in this answer"};
    create.request = object({{"label", string("what the token is for")},
                             {"user", string("whose token (admin only; default: the caller)")}});
    Schema created = tokenSchema();
    created.properties.push_back({"token", string("the bearer token, shown only now"), true});
    create.response = created;
    create.status = 201;
    create.errors = {404};
    create.handler = [&accounts](const ApiRequest& req) {
        std::string user = req.body.str("user", req.principal.user);
        if (user != req.principal.user && req.principal.role != Role::Admin)
            throw ApiError(403, "only an admin makes tokens for another user");
        auto [id, token] = accounts.createToken(user, req.body.str("label"));
        auto t = accounts.token(id);
        JsonWriter w;
        w.beginObject().field("id", t->id).field("user", t->user).field("label", t->label);
        w.field("created", isoTime(t->createdAt)).key("last_used").null().field("token", token).endObject();
        return jsonAnswer(w, 201);
    };
    routes.push_back(std::move(create));

    Route revoke{"DELETE", "/api/v1/tokens/{id}", Role::Viewer, "users",
                 "Revoke a token (one's own; an admin: anyone's)"};
    revoke.status = 204;
    revoke.errors = {404};
    revoke.handler = [&accounts](const ApiRequest& req) {
        accounts.revokeToken(ownToken(accounts, req).id);
        return ApiResponse{204, "", "", {}};
    };
    routes.push_back(std::move(revoke));
    return routes;
}

}  // namespace junction::admin
