// The vars table: the channel's `vars:` (named text values of its file: URLs,
// accounts, codes that differ between sites), read-only, for the call being
// made. vars.NAME is the value, or nil when the channel has no such var.
#include "engine/lua/lua_internal.h"

namespace junction::lua::detail {
namespace {

int varsIndexL(lua_State* L) {
    Invocation* inv = runtime(L).inv;
    if (!inv) luaL_error(L, "vars can only be read while a message is processed (inside a function)");
    if (lua_type(L, 2) != LUA_TSTRING || !inv->vars) {
        lua_pushnil(L);
        return 1;
    }
    auto it = inv->vars->find(lua_tostring(L, 2));
    if (it == inv->vars->end()) lua_pushnil(L);
    else lua_pushlstring(L, it->second.data(), it->second.size());
    return 1;
}

int varsNewIndexL(lua_State* L) { return luaL_error(L, "vars are read-only: set them in the channel file's vars:"); }

// pairs(vars): every var of the channel, as name, value.
int varsNextL(lua_State* L) {
    Invocation* inv = runtime(L).inv;
    if (!inv || !inv->vars) return 0;
    auto it = lua_isnil(L, 2) ? inv->vars->begin() : inv->vars->upper_bound(luaL_checkstring(L, 2));
    if (it == inv->vars->end()) return 0;
    lua_pushlstring(L, it->first.data(), it->first.size());
    lua_pushlstring(L, it->second.data(), it->second.size());
    return 2;
}

int varsPairsL(lua_State* L) {
    lua_pushcfunction(L, varsNextL);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

}  // namespace

void openVars(lua_State* L) {
    lua_newtable(L);
    lua_newtable(L);
    const luaL_Reg meta[] = {
        {"__index", varsIndexL}, {"__newindex", varsNewIndexL}, {"__pairs", varsPairsL}, {nullptr, nullptr}};
    luaL_setfuncs(L, meta, 0);
    lua_pushliteral(L, "vars");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_setglobal(L, "vars");
}

}  // namespace junction::lua::detail
