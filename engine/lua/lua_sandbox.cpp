// The standard library as scripts see it: read-only library tables, and
// bounded replacements of the standard functions that could otherwise run
// long inside C, where the instruction budget never looks.
//
// Read-only tables: each library global (string, table, math, utf8 and the
// engine's modules) is an empty view whose metatable reads from the real
// table and refuses writes (__newindex); pairs() walks the real table through
// __pairs, rawset refuses views, and the view's own metatable is protected.
// getmetatable() on a string or a json.array table gives a view as well. The
// real tables stay unreachable for scripts, so one message cannot change the
// functions the next message sees.
//
// Every C function here holds plain data only: a Lua error may leave it.
#include <climits>

#include "engine/lua/lua_internal.h"

namespace junction::lua::detail {
namespace {

const char kViewsKey = 0;  // registry[&kViewsKey] = { view → true }

constexpr unsigned kCheckEvery = 4096;  // loop iterations between checkLimits

// ------------------------------------------------------------ read-only views

// __newindex of a view; upvalue 1: how a script names the table ("string").
int viewNewIndex(lua_State* L) {
    const char* name = lua_tostring(L, lua_upvalueindex(1));
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L, "cannot assign %s.%s: the library tables are read-only (keep values in locals or "
                             "tables of your own)",
                          name, lua_tostring(L, 2));
    return luaL_error(L, "cannot assign %s[%s]: the library tables are read-only (keep values in locals or "
                         "tables of your own)",
                      name, luaL_tolstring(L, 2, nullptr));
}

// The `next` of a view's pairs(); upvalue 1: the real table.
int viewNext(lua_State* L) {
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_replace(L, 1);
    if (lua_next(L, 1)) return 2;
    lua_pushnil(L);
    return 1;
}

// __pairs of a view; upvalue 1: its viewNext.
int viewPairs(lua_State* L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

bool isView(lua_State* L, int idx) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &kViewsKey) != LUA_TTABLE) {
        lua_pop(L, 1);
        return false;
    }
    lua_pushvalue(L, idx);
    bool view = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return view;
}

// Pushes a read-only view of the table at `idx`.
void pushReadOnlyView(lua_State* L, int idx, const char* name) {
    idx = lua_absindex(L, idx);
    lua_newtable(L);              // the view
    lua_createtable(L, 0, 4);     // its metatable
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_pushcclosure(L, viewNewIndex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, idx);
    lua_pushcclosure(L, viewNext, 1);
    lua_pushcclosure(L, viewPairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);

    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &kViewsKey) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &kViewsKey);
    }
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

// ------------------------------------------------------------ guarded base functions

// setmetatable without __gc: finalizers run with the debug hooks off, outside
// every limit of the call (and at any later moment).
int guardedSetmetatable(lua_State* L) {
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) return luaL_error(L, "cannot change a protected metatable");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: a __gc metamethod is not allowed in scripts");
        lua_pop(L, 1);
    }
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

// rawset, refused on read-only views.
int guardedRawset(lua_State* L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    if (isView(L, 1)) return luaL_error(L, "rawset: the library tables are read-only");
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

// ------------------------------------------------------------ string.rep

// Lua's string.rep loops `n` times even when every copy is empty, e.g.
// ("").rep("", 1e15); otherwise the result has at least n bytes and the memory
// cap refuses it before the loop starts. Upvalue 1: Lua's string.rep.
int guardedRep(lua_State* L) {
    std::size_t len = 0, lsep = 0;
    luaL_checklstring(L, 1, &len);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n > 0 && len == 0 && lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

// ------------------------------------------------------------ table functions
//
// table.insert, table.remove, table.move and table.concat loop over a length
// that __len or the arguments may make as large as 2^63 on an empty table;
// these versions check the time limit as they go. Their semantics and
// messages are those of Lua 5.4's ltablib.c (Copyright (C) 1994-2022 Lua.org,
// PUC-Rio; MIT licence, the full notice is in lua_pattern.cpp). table.sort
// refuses a __len larger than the memory cap could hold.

enum TableUse { kRead = 1, kWrite = 2, kLength = 4 };

bool hasMetaField(lua_State* L, const char* key, int n) {
    lua_pushstring(L, key);
    return lua_rawget(L, -n) != LUA_TNIL;
}

// A table, or a value whose metatable has the metamethods of `use`.
void checkTable(lua_State* L, int arg, int use) {
    if (lua_type(L, arg) == LUA_TTABLE) return;
    int n = 1;  // the metatable and the fields pushed
    if (lua_getmetatable(L, arg) && (!(use & kRead) || hasMetaField(L, "__index", ++n)) &&
        (!(use & kWrite) || hasMetaField(L, "__newindex", ++n)) &&
        (!(use & kLength) || hasMetaField(L, "__len", ++n))) {
        lua_pop(L, n);
        return;
    }
    luaL_checktype(L, arg, LUA_TTABLE);  // raises
}

inline void loopCheck(lua_State* L, unsigned& count) {
    if (++count % kCheckEvery == 0) checkLimits(L);
}

int guardedInsert(lua_State* L) {
    checkTable(L, 1, kRead | kWrite | kLength);
    lua_Integer e = luaL_len(L, 1);
    e = static_cast<lua_Integer>(static_cast<lua_Unsigned>(e) + 1u);  // the first empty slot
    lua_Integer pos = e;
    switch (lua_gettop(L)) {
        case 2: break;
        case 3: {
            pos = luaL_checkinteger(L, 2);
            luaL_argcheck(L, static_cast<lua_Unsigned>(pos) - 1u < static_cast<lua_Unsigned>(e), 2,
                          "position out of bounds");
            unsigned count = 0;
            for (lua_Integer i = e; i > pos; i--) {  // move up
                loopCheck(L, count);
                lua_geti(L, 1, i - 1);
                lua_seti(L, 1, i);
            }
            break;
        }
        default: return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    return 0;
}

int guardedRemove(lua_State* L) {
    checkTable(L, 1, kRead | kWrite | kLength);
    lua_Integer size = luaL_len(L, 1);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size)
        luaL_argcheck(L, static_cast<lua_Unsigned>(pos) - 1u <= static_cast<lua_Unsigned>(size), 2,
                      "position out of bounds");
    lua_geti(L, 1, pos);  // the result
    unsigned count = 0;
    for (; pos < size; pos++) {  // move down
        loopCheck(L, count);
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

int guardedMove(lua_State* L) {
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer t = luaL_checkinteger(L, 4);
    int tt = !lua_isnoneornil(L, 5) ? 5 : 1;  // the destination
    checkTable(L, 1, kRead);
    checkTable(L, tt, kWrite);
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        lua_Integer n = e - f + 1;
        luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
        unsigned count = 0;
        if (t > e || t <= f || (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ))) {
            for (lua_Integer i = 0; i < n; i++) {
                loopCheck(L, count);
                lua_geti(L, 1, f + i);
                lua_seti(L, tt, t + i);
            }
        } else {
            for (lua_Integer i = n - 1; i >= 0; i--) {
                loopCheck(L, count);
                lua_geti(L, 1, f + i);
                lua_seti(L, tt, t + i);
            }
        }
    }
    lua_pushvalue(L, tt);
    return 1;
}

void addField(lua_State* L, luaL_Buffer* b, lua_Integer i) {
    lua_geti(L, 1, i);
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid value (%s) at index %I in table for 'concat'", luaL_typename(L, -1), i);
    luaL_addvalue(b);
}

int guardedConcat(lua_State* L) {
    checkTable(L, 1, kRead | kLength);
    lua_Integer last = luaL_len(L, 1);
    std::size_t lsep = 0;
    const char* sep = luaL_optlstring(L, 2, "", &lsep);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    last = luaL_optinteger(L, 4, last);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    unsigned count = 0;
    for (; i < last; i++) {
        loopCheck(L, count);
        addField(L, &b, i);
        luaL_addlstring(&b, sep, lsep);
    }
    if (i == last) addField(L, &b, i);
    luaL_pushresult(&b);
    return 1;
}

// table.sort checks its arguments here as Lua's does (so that errors name
// 'sort'), then calls Lua's (upvalue 1). A length from __len larger than a
// table could hold under the memory cap is refused: sorting such a virtual
// array would run in C for hours.
int guardedSort(lua_State* L) {
    checkTable(L, 1, kRead | kWrite | kLength);
    bool virtualLength = luaL_getmetafield(L, 1, "__len") != LUA_TNIL;
    if (virtualLength) lua_pop(L, 1);
    lua_Integer n = luaL_len(L, 1);
    if (n > 1) {
        luaL_argcheck(L, n < INT_MAX, 1, "array too big");
        if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
        const lua_Integer most = static_cast<lua_Integer>(runtime(L).limits.memoryBytes / 16);
        if (virtualLength && n > most)
            return luaL_argerror(L, 1, "array too big for the script's memory limit (__len too large)");
    }
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 0);
    return 0;
}

void replaceField(lua_State* L, const char* table, const char* name, lua_CFunction f, bool keepOriginal) {
    lua_getglobal(L, table);
    if (keepOriginal) {
        lua_getfield(L, -1, name);
        lua_pushcclosure(L, f, 1);
    } else {
        lua_pushcfunction(L, f);
    }
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

}  // namespace

void protectMetatable(lua_State* L, int idx, const char* name) {
    idx = lua_absindex(L, idx);
    pushReadOnlyView(L, idx, name);
    lua_setfield(L, idx, "__metatable");
}

void openGuards(lua_State* L) {
    lua_pushcfunction(L, guardedSetmetatable);
    lua_setglobal(L, "setmetatable");
    lua_pushcfunction(L, guardedRawset);
    lua_setglobal(L, "rawset");
    replaceField(L, LUA_STRLIBNAME, "rep", guardedRep, true);
    replaceField(L, LUA_TABLIBNAME, "insert", guardedInsert, false);
    replaceField(L, LUA_TABLIBNAME, "remove", guardedRemove, false);
    replaceField(L, LUA_TABLIBNAME, "move", guardedMove, false);
    replaceField(L, LUA_TABLIBNAME, "concat", guardedConcat, false);
    replaceField(L, LUA_TABLIBNAME, "sort", guardedSort, true);
}

void protectLibraries(lua_State* L) {
    for (const char* name : {LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME, LUA_UTF8LIBNAME, "hl7", "json", "xml",
                             "log", "dicom", "maps", "worklist", "orthanc", "http", "base64"}) {
        if (lua_getglobal(L, name) == LUA_TTABLE) {
            pushReadOnlyView(L, -1, name);
            lua_setglobal(L, name);
        }
        lua_pop(L, 1);
    }
    // Strings keep indexing the real string table (a method call costs no
    // extra lookup); getmetatable("") gives a read-only view of a copy of
    // their metatable whose __index is the string view.
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    int meta = lua_gettop(L);
    lua_newtable(L);
    int copy = meta + 1;
    lua_pushnil(L);
    while (lua_next(L, meta)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, copy);
    }
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_setfield(L, copy, "__index");
    pushReadOnlyView(L, copy, "getmetatable('')");
    lua_setfield(L, meta, "__metatable");
    lua_pop(L, 3);
}

}  // namespace junction::lua::detail
