// The http module: REST calls from scripts to any HTTP(S) server (an EMR's
// API, OpenMRS...): http.get/post/put/patch/delete(url [, body], options)
// returning {status, headers, body}; http.multipart(parts) for form bodies;
// and the base64 module for bytes inside JSON. A call is bounded by its
// timeout option (default 30 s) and by what is left of the script's time limit.
#include <algorithm>
#include <chrono>

#include <Poco/Base64Decoder.h>
#include <Poco/Base64Encoder.h>

#include <iterator>
#include <sstream>

#include "engine/http/client.h"
#include "engine/lua/lua_internal.h"

namespace junction::lua::detail {
namespace {

std::string fieldString(lua_State* L, int table, const char* key) {
    return stringField(L, table, key, std::string("option ") + key);
}

std::string argString(lua_State* L, int idx) {
    std::size_t n = 0;
    const char* s = lua_tolstring(L, idx, &n);
    return s ? std::string(s, n) : std::string();
}

// Reads the options table at `idx` (may be nil) into the request and client options.
void readOptions(lua_State* L, int idx, http::Request& r, http::ClientOptions& co) {
    if (lua_isnoneornil(L, idx)) return;
    if (!lua_istable(L, idx)) throw LuaError("the options must be a table");
    lua_getfield(L, idx, "headers");
    if (lua_istable(L, -1)) {
        int h = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, h)) {
            if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1)) {
                lua_pop(L, 3);
                throw LuaError("headers: names and values must be strings");
            }
            r.headers.push_back({argString(L, -2), argString(L, -1)});
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        lua_pop(L, 1);
        throw LuaError("headers must be a table of name = value");
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "auth");
    if (lua_istable(L, -1)) {
        int a = lua_gettop(L);
        std::string user = fieldString(L, a, "username"), password = fieldString(L, a, "password"),
                    bearer = fieldString(L, a, "bearer");
        if (!bearer.empty()) r.headers.push_back({"Authorization", "Bearer " + bearer});
        else if (!user.empty() || !password.empty()) r.headers.push_back({"Authorization", http::basicAuth(user, password)});
    } else if (!lua_isnil(L, -1)) {
        lua_pop(L, 1);
        throw LuaError("auth must be a table: {username = ..., password = ...} or {bearer = ...}");
    }
    lua_pop(L, 1);
    std::string type = fieldString(L, idx, "content_type");
    if (!type.empty()) r.headers.push_back({"Content-Type", type});
    lua_getfield(L, idx, "timeout");
    if (lua_isnumber(L, -1)) {
        double seconds = lua_tonumber(L, -1);
        if (seconds > 0) co.timeout = std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "tls");
    if (lua_istable(L, -1)) {
        int t = lua_gettop(L);
        co.tls.ca = fieldString(L, t, "ca");
        lua_getfield(L, t, "verify");
        if (lua_isboolean(L, -1)) co.tls.verify = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

// Sends and pushes the answer as {status, headers, body}; no answer is an error.
int call(lua_State* L, const char* fn, const char* method, bool hasBody) {
    luaL_checkstring(L, 1);
    int optIdx = hasBody ? 3 : 2;
    if (hasBody && !lua_istable(L, 2) && !lua_isstring(L, 2) && !lua_isnil(L, 2)) luaL_argerror(L, 2, "a table (JSON) or a string");
    return protect(L, [&] {
        http::Request r;
        r.method = method;
        r.url = argString(L, 1);
        http::ClientOptions co;
        try {
            readOptions(L, optIdx, r, co);
        } catch (const LuaError& e) {
            throw LuaError(std::string(fn) + ": " + e.what());
        }
        if (hasBody && lua_istable(L, 2)) {
            r.body = jsonEncode(L, 2, false);
            if (http::headerValue(r.headers, "Content-Type").empty()) r.headers.push_back({"Content-Type", "application/json"});
        } else if (hasBody && lua_isstring(L, 2)) {
            r.body = argString(L, 2);
        }
        const Impl& s = runtime(L);
        if (s.deadline != 0) {
            auto left = std::chrono::milliseconds(std::max<std::int64_t>(1, s.deadline - monotonicMs()));
            co.timeout = std::min(co.timeout, left);
        }
        co.connectTimeout = std::min(co.connectTimeout, co.timeout);
        http::Client client(co);
        http::Result res = client.send(r);
        if (!res.answered) throw LuaError(std::string(fn) + ": " + res.error);
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, res.response.status);
        lua_setfield(L, -2, "status");
        pushView(L, res.response.body);
        lua_setfield(L, -2, "body");
        lua_createtable(L, 0, static_cast<int>(res.response.headers.size()));
        for (const auto& h : res.response.headers) {
            std::string name = h.name;
            std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            pushView(L, h.value);
            lua_setfield(L, -2, name.c_str());
        }
        lua_setfield(L, -2, "headers");
        return 1;
    });
}

int getL(lua_State* L) { return call(L, "http.get", "GET", false); }
int deleteL(lua_State* L) { return call(L, "http.delete", "DELETE", false); }
int postL(lua_State* L) { return call(L, "http.post", "POST", true); }
int putL(lua_State* L) { return call(L, "http.put", "PUT", true); }
int patchL(lua_State* L) { return call(L, "http.patch", "PATCH", true); }

// http.multipart{ {name=, value=}, {name=, filename=, content_type=, value=} } → body, content type
int multipartL(lua_State* L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    return protect(L, [&] {
        std::vector<http::FormPart> parts;
        lua_Integer n = luaL_len(L, 1);
        for (lua_Integer i = 1; i <= n; ++i) {
            lua_rawgeti(L, 1, i);
            if (!lua_istable(L, -1)) throw LuaError("http.multipart: part " + std::to_string(i) + " must be a table");
            int t = lua_gettop(L);
            http::FormPart p;
            p.name = fieldString(L, t, "name");
            p.data = fieldString(L, t, "value");
            p.filename = fieldString(L, t, "filename");
            p.contentType = fieldString(L, t, "content_type");
            if (p.name.empty()) throw LuaError("http.multipart: part " + std::to_string(i) + " has no name");
            lua_pop(L, 1);
            parts.push_back(std::move(p));
        }
        std::string boundary;
        std::string body = http::multipartBody(parts, &boundary);
        pushView(L, body);
        std::string type = "multipart/form-data; boundary=" + boundary;
        pushView(L, type);
        return 2;
    });
}

int urlEncodeL(lua_State* L) {
    std::string_view s = checkView(L, 1);
    return protect(L, [&] {
        pushView(L, http::urlEncode(s));
        return 1;
    });
}

int base64EncodeL(lua_State* L) {
    std::string_view s = checkView(L, 1);
    return protect(L, [&] {
        std::ostringstream out;
        Poco::Base64Encoder enc(out);
        enc.rdbuf()->setLineLength(0);
        enc.write(s.data(), static_cast<std::streamsize>(s.size()));
        enc.close();
        pushView(L, out.str());
        return 1;
    });
}

int base64DecodeL(lua_State* L) {
    std::string_view s = checkView(L, 1);
    return protect(L, [&] {
        std::string clean;
        for (char c : s)
            if (c != '\r' && c != '\n' && c != ' ') clean.push_back(c);
        std::istringstream in(clean);
        Poco::Base64Decoder dec(in);
        std::string out;
        try {
            out.assign(std::istreambuf_iterator<char>(dec), std::istreambuf_iterator<char>());
        } catch (const std::exception&) {
            throw LuaError("base64.decode: not base64");
        }
        pushView(L, out);
        return 1;
    });
}

}  // namespace

void openHttp(lua_State* L) {
    const luaL_Reg funcs[] = {{"get", getL},         {"post", postL},           {"put", putL},
                              {"patch", patchL},     {"delete", deleteL},       {"multipart", multipartL},
                              {"urlencode", urlEncodeL}, {nullptr, nullptr}};
    luaL_newlib(L, funcs);
    lua_setglobal(L, "http");
    const luaL_Reg b64[] = {{"encode", base64EncodeL}, {"decode", base64DecodeL}, {nullptr, nullptr}};
    luaL_newlib(L, b64);
    lua_setglobal(L, "base64");
}

}  // namespace junction::lua::detail
