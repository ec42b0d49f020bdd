// The orthanc module: REST calls from scripts to the Orthanc servers named in
// junction.yaml (engine/orthanc). orthanc.get/post/put/delete/find/preview/
// file/qido on the only configured server, or on a named one through
// orthanc.server(name). A JSON answer comes back as a table, anything else
// as a string; an answer other than 2xx, or none, is an error naming the
// server, the method and the path. Each call is bounded by the server's
// timeout and by what is left of the script's time limit.
#include <algorithm>
#include <cctype>
#include <chrono>

#include "engine/lua/lua_internal.h"
#include "engine/orthanc/server.h"

namespace junction::lua::detail {
namespace {

// The server the call goes to: upvalue 1 names it (nil: the only one configured).
orthanc::Server& serverOf(lua_State* L, const char* fn) {
    Invocation* inv = runtime(L).inv;
    if (!inv) throw LuaError(std::string(fn) + " can only be called while a message is processed (inside a function)");
    if (!inv->orthanc || inv->orthanc->empty())
        throw LuaError(std::string(fn) + ": no orthanc server is configured (orthanc: in junction.yaml)");
    const char* name = lua_tostring(L, lua_upvalueindex(1));
    if (name) {
        orthanc::Server* s = inv->orthanc->find(name);
        if (!s) throw LuaError(std::string(fn) + ": no orthanc server named '" + name + "' in junction.yaml");
        return *s;
    }
    auto names = inv->orthanc->names();
    if (names.size() > 1)
        throw LuaError(std::string(fn) + ": several orthanc servers are configured: name one, e.g. orthanc.server('" +
                       names.front() + "')." + (std::string(fn).substr(std::string(fn).find('.') + 1)) + "(...)");
    return *inv->orthanc->find(names.front());
}

// What is left of the call's time limit (0: no limit).
std::chrono::milliseconds timeLeft(lua_State* L) {
    const Impl& s = runtime(L);
    if (s.deadline == 0) return std::chrono::milliseconds(0);
    return std::chrono::milliseconds(std::max<std::int64_t>(1, s.deadline - monotonicMs()));
}

bool isJson(const std::string& contentType) { return contentType.find("json") != std::string::npos; }

// Sends the request and pushes the answer's body and whether it is JSON.
// Throws LuaError naming the server on failure: call it inside protect().
int send(lua_State* L, const char* fn, const std::string& method, const std::string& path, const std::string& body,
         const std::string& contentType, const std::string& accept) {
    orthanc::Server& server = serverOf(L, fn);
    http::Result r = server.call(method, path, body, contentType, timeLeft(L), accept);
    if (!r.answered || r.response.status < 200 || r.response.status >= 300) {
        std::string text = std::string(fn) + ": " + server.describe(method, path, r);
        if (r.answered && !r.response.body.empty()) text += ": " + r.response.body.substr(0, 300);
        throw LuaError(text);
    }
    pushView(L, r.response.body);
    lua_pushboolean(L, isJson(r.response.header("Content-Type")));
    return 2;
}

// Turns the pushed (body, isJson) into the result: a decoded value or the
// string. No C++ object may be alive in the caller (the decoder may raise).
int result(lua_State* L, const char* fn) {
    bool json = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!json) return 1;
    std::size_t n = 0;
    const char* s = lua_tolstring(L, -1, &n);
    jsonDecodePush(L, std::string_view(s, n), fn);
    return 1;
}

void checkPath(lua_State* L, int idx) {
    std::string_view p = checkView(L, idx);
    if (p.empty() || p.front() != '/') luaL_argerror(L, idx, "a path starting with '/', e.g. /studies");
}

std::string argString(lua_State* L, int idx) {
    std::size_t n = 0;
    const char* s = lua_tolstring(L, idx, &n);
    return s ? std::string(s, n) : std::string();
}

// orthanc.post/put(path, body [, content type]): a table is sent as JSON, a string as it is.
int bodyCall(lua_State* L, const char* fn, const char* method) {
    lua_settop(L, 3);
    checkPath(L, 1);
    if (!lua_istable(L, 2) && !lua_isstring(L, 2) && !lua_isnil(L, 2)) luaL_argerror(L, 2, "a table (JSON) or a string");
    if (!lua_isnil(L, 3)) luaL_checkstring(L, 3);
    protect(L, [&] {
        std::string body, type = argString(L, 3);
        if (lua_istable(L, 2)) {
            body = jsonEncode(L, 2, false);
            if (type.empty()) type = "application/json";
        } else if (lua_isstring(L, 2)) {
            body = argString(L, 2);
            if (type.empty()) type = "application/octet-stream";
        }
        return send(L, fn, method, argString(L, 1), body, type, "application/json");
    });
    return result(L, fn);
}

int getL(lua_State* L) {
    checkPath(L, 1);
    protect(L, [&] { return send(L, "orthanc.get", "GET", argString(L, 1), {}, {}, "application/json"); });
    return result(L, "orthanc.get");
}

int deleteL(lua_State* L) {
    checkPath(L, 1);
    protect(L, [&] { return send(L, "orthanc.delete", "DELETE", argString(L, 1), {}, {}, "application/json"); });
    return result(L, "orthanc.delete");
}

int postL(lua_State* L) { return bodyCall(L, "orthanc.post", "POST"); }
int putL(lua_State* L) { return bodyCall(L, "orthanc.put", "PUT"); }

// orthanc.find(query) → POST /tools/find with the query table
int findL(lua_State* L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    protect(L, [&] {
        return send(L, "orthanc.find", "POST", "/tools/find", jsonEncode(L, 1, false), "application/json", "application/json");
    });
    return result(L, "orthanc.find");
}

// Checks that the argument is an Orthanc id (hex digits and dashes).
void checkId(lua_State* L, int idx, const char* fn) {
    std::string_view id = checkView(L, idx);
    bool ok = !id.empty() && id.size() < 100 &&
              std::all_of(id.begin(), id.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) || c == '-'; });
    if (!ok) luaL_error(L, "%s: '%s' is not an Orthanc id", fn, lua_tostring(L, idx));
}

// orthanc.preview(instance) → the PNG bytes of the instance's preview
int previewL(lua_State* L) {
    checkId(L, 1, "orthanc.preview");
    protect(L, [&] {
        return send(L, "orthanc.preview", "GET", "/instances/" + argString(L, 1) + "/preview", {}, {}, "image/png");
    });
    lua_pop(L, 1);
    return 1;
}

// orthanc.file(instance) → the DICOM file of the instance
int fileL(lua_State* L) {
    checkId(L, 1, "orthanc.file");
    protect(L, [&] {
        return send(L, "orthanc.file", "GET", "/instances/" + argString(L, 1) + "/file", {}, {}, "application/dicom");
    });
    lua_pop(L, 1);
    return 1;
}

// orthanc.qido("studies?AccessionNumber=A1") → the DICOMweb QIDO-RS answer (DICOM JSON)
int qidoL(lua_State* L) {
    luaL_checkstring(L, 1);
    protect(L, [&] {
        std::string q = argString(L, 1);
        std::size_t skip = q.find_first_not_of('/');
        return send(L, "orthanc.qido", "GET", "/dicom-web/" + (skip == std::string::npos ? std::string() : q.substr(skip)),
                    {}, {}, "application/dicom+json");
    });
    return result(L, "orthanc.qido");
}

const luaL_Reg kFuncs[] = {{"get", getL},         {"post", postL}, {"put", putL},   {"delete", deleteL},
                           {"find", findL},       {"preview", previewL}, {"file", fileL}, {"qido", qidoL},
                           {nullptr, nullptr}};

// Pushes a table of the functions bound to the server named at `nameIdx` (or to the default one when nil).
void pushFunctions(lua_State* L, int nameIdx) {
    lua_createtable(L, 0, 9);
    for (const luaL_Reg* f = kFuncs; f->name; ++f) {
        lua_pushvalue(L, nameIdx);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -2, f->name);
    }
}

// orthanc.server(name) → the same functions, on the server `name`
int serverL(lua_State* L) {
    luaL_checkstring(L, 1);
    lua_settop(L, 1);
    pushFunctions(L, 1);
    return 1;
}

}  // namespace

void openOrthanc(lua_State* L) {
    lua_pushnil(L);
    pushFunctions(L, lua_gettop(L));
    lua_pushcfunction(L, serverL);
    lua_setfield(L, -2, "server");
    lua_setglobal(L, "orthanc");
    lua_pop(L, 1);
}

}  // namespace junction::lua::detail
