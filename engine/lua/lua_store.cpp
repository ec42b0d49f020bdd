// The store module: store.get / put / delete / keys over the engine's durable
// key-value table (store::KeyValueStore), for what a script must remember
// across messages and restarts ("this study's attachment was sent").
#include "engine/lua/lua_internal.h"
#include "engine/store/key_value_store.h"

namespace junction::lua::detail {
namespace {

store::KeyValueStore& storeOf(lua_State* L, const char* fn) {
    Invocation* inv = runtime(L).inv;
    if (!inv) luaL_error(L, "%s can only be called while a message is processed (inside a function)", fn);
    if (!inv->keyValues) luaL_error(L, "%s: no store is available here (run the channel in the engine)", fn);
    return *inv->keyValues;
}

// Argument `i` as text: a string or a number (converted in place), else a Lua
// error. A view (nothing to destroy if a later argument raises an error).
std::string_view textArg(lua_State* L, int i, const char* fn, const char* what) {
    int t = lua_type(L, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "%s: the %s must be a string or a number, not %s", fn, what, luaL_typename(L, i));
    std::size_t n = 0;
    const char* s = lua_tolstring(L, i, &n);
    return std::string_view(s, n);
}

// store.get(key) → value or nil
int getL(lua_State* L) {
    store::KeyValueStore& kv = storeOf(L, "store.get");
    std::string_view key = textArg(L, 1, "store.get", "key");
    return protect(L, [&] {
        auto v = kv.get(std::string(key));
        if (v) lua_pushlstring(L, v->data(), v->size());
        else lua_pushnil(L);
        return 1;
    });
}

// store.put(key, value): value nil deletes the key
int putL(lua_State* L) {
    store::KeyValueStore& kv = storeOf(L, "store.put");
    std::string_view key = textArg(L, 1, "store.put", "key");
    if (lua_isnoneornil(L, 2))
        return protect(L, [&] {
            kv.remove(std::string(key));
            return 0;
        });
    std::string_view value = textArg(L, 2, "store.put", "value");
    return protect(L, [&] {
        kv.put(std::string(key), std::string(value));
        return 0;
    });
}

// store.delete(key) → true when the key was there
int deleteL(lua_State* L) {
    store::KeyValueStore& kv = storeOf(L, "store.delete");
    std::string_view key = textArg(L, 1, "store.delete", "key");
    return protect(L, [&] {
        lua_pushboolean(L, kv.remove(std::string(key)));
        return 1;
    });
}

// store.keys(prefix [, limit]) → the keys starting with prefix, in order
int keysL(lua_State* L) {
    store::KeyValueStore& kv = storeOf(L, "store.keys");
    std::string_view prefix = lua_isnoneornil(L, 1) ? std::string_view() : textArg(L, 1, "store.keys", "prefix");
    lua_Integer limit = luaL_optinteger(L, 2, 1000);
    if (limit < 1) luaL_error(L, "store.keys: the limit must be at least 1");
    return protect(L, [&] {
        auto keys = kv.keys(std::string(prefix), static_cast<std::size_t>(limit));
        lua_createtable(L, static_cast<int>(keys.size()), 0);
        for (std::size_t i = 0; i < keys.size(); ++i) {
            lua_pushlstring(L, keys[i].data(), keys[i].size());
            lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
        }
        return 1;
    });
}

}  // namespace

void openStore(lua_State* L) {
    const luaL_Reg funcs[] = {
        {"get", getL}, {"put", putL}, {"delete", deleteL}, {"keys", keysL}, {nullptr, nullptr}};
    luaL_newlib(L, funcs);
    lua_setglobal(L, "store");
}

}  // namespace junction::lua::detail
