// Small globals: log.*, print, route, filter, ack, uuid, now.
#include <chrono>
#include <ctime>

#include "engine/lua/lua_internal.h"
#include "engine/util/uuid.h"

namespace junction::lua::detail {
namespace {

Invocation& currentInvocation(lua_State* L, const char* fn) {
    Invocation* inv = runtime(L).inv;
    if (!inv) luaL_error(L, "%s can only be called while a message is processed (inside a function)", fn);
    return *inv;
}

// ------------------------------------------------------------ log / print

// Concatenates the arguments with tostring, separated by `sep`; leaves the
// string on the stack.
void joinArgs(lua_State* L, const char* sep) {
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; ++i) {
        if (i > 1) luaL_addstring(&b, sep);
        luaL_tolstring(L, i, nullptr);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
}

int logAt(lua_State* L, LogLine::Level level) {
    joinArgs(L, " ");
    Invocation* inv = runtime(L).inv;
    if (!inv) return 0;  // at load time there is nowhere to log to
    std::size_t n;
    const char* s = lua_tolstring(L, -1, &n);
    return protect(L, [&] {
        LogLine line;
        line.level = level;
        line.text.assign(s, n);
        line.where = whereString(L, 1);
        inv->logs.push_back(std::move(line));
        return 0;
    });
}

int logInfo(lua_State* L) { return logAt(L, LogLine::Info); }
int logWarn(lua_State* L) { return logAt(L, LogLine::Warn); }
int logError(lua_State* L) { return logAt(L, LogLine::Error); }

int printL(lua_State* L) {
    int n = lua_gettop(L);
    (void)n;
    joinArgs(L, "\t");
    lua_replace(L, 1);
    lua_settop(L, 1);
    return logAt(L, LogLine::Info);
}

// ------------------------------------------------------------ decisions

void addRoute(lua_State* L, Invocation& inv, int idx) {
    std::size_t n;
    const char* s = lua_tolstring(L, idx, &n);
    std::string_view name(s, n);
    for (const auto& r : inv.routes)
        if (r == name) return;
    inv.routes.emplace_back(name);
}

int routeL(lua_State* L) {
    Invocation& inv = currentInvocation(L, "route()");
    int n = lua_gettop(L);
    for (int i = 1; i <= n; ++i) {
        if (lua_type(L, i) == LUA_TTABLE) {
            lua_Integer len = static_cast<lua_Integer>(lua_rawlen(L, i));
            for (lua_Integer k = 1; k <= len; ++k) {
                lua_rawgeti(L, i, k);
                if (lua_type(L, -1) != LUA_TSTRING)
                    return luaL_error(L, "route(): destination names must be strings");
                addRoute(L, inv, lua_gettop(L));
                lua_pop(L, 1);
            }
        } else {
            luaL_checktype(L, i, LUA_TSTRING);
            addRoute(L, inv, i);
        }
    }
    inv.routed = true;
    return 0;
}

int filterL(lua_State* L) {
    Invocation& inv = currentInvocation(L, "filter()");
    std::size_t n = 0;
    const char* s = lua_isnoneornil(L, 1) ? "" : luaL_tolstring(L, 1, &n);
    inv.filtered = true;
    inv.filterReason.assign(s, n);
    return 0;
}

int ackL(lua_State* L) {
    Invocation& inv = currentInvocation(L, "ack()");
    if (hl7::Message* m = toMessage(L, 1)) {
        return protect(L, [&] {
            inv.ack = m->serialize();
            return 0;
        });
    }
    std::size_t n;
    const char* s = luaL_checklstring(L, 1, &n);
    inv.ack = std::string(s, n);
    return 0;
}

// ------------------------------------------------------------ ids and time

int uuidL(lua_State* L) {
    lua_pushstring(L, util::uuidText(util::randomUuid()).c_str());
    return 1;
}

// now() → "2026-11-23T08:15:00.123Z"; now("hl7") → "20261123081500.123+0000".
int nowL(lua_State* L) {
    const char* fmt = luaL_optstring(L, 1, "iso");
    auto tp = std::chrono::system_clock::now();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    int milli = static_cast<int>(ms % 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::string_view f(fmt);
    if (f == "iso") {
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, milli);
    } else if (f == "hl7") {
        std::snprintf(buf, sizeof buf, "%04d%02d%02d%02d%02d%02d.%03d+0000", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, milli);
    } else {
        return luaL_error(L, "now(): unknown format '%s' (use \"iso\" or \"hl7\")", fmt);
    }
    lua_pushstring(L, buf);
    return 1;
}

}  // namespace

std::string stringField(lua_State* L, int table, const char* key, const std::string& what) {
    lua_getfield(L, table, key);
    std::string out;
    if (lua_isstring(L, -1)) {
        std::size_t n = 0;
        const char* s = lua_tolstring(L, -1, &n);
        out.assign(s, n);
    } else if (!lua_isnil(L, -1)) {
        std::string type = luaL_typename(L, -1);
        lua_pop(L, 1);
        throw LuaError(what + " must be a string, not a " + type);
    }
    lua_pop(L, 1);
    return out;
}

void openUtil(lua_State* L) {
    const luaL_Reg logFuncs[] = {{"info", logInfo}, {"warn", logWarn}, {"error", logError}, {nullptr, nullptr}};
    luaL_newlib(L, logFuncs);
    lua_setglobal(L, "log");

    const luaL_Reg globals[] = {{"print", printL}, {"route", routeL}, {"filter", filterL}, {"ack", ackL},
                                {"uuid", uuidL},   {"now", nowL},     {nullptr, nullptr}};
    lua_pushglobaltable(L);
    luaL_setfuncs(L, globals, 0);
    lua_pop(L, 1);
}

}  // namespace junction::lua::detail
