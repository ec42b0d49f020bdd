// SharedMap (thread-safe key/value store shared by runtimes) and the Lua
// `maps` proxies: maps.channel / maps.global / maps.response.
//
// Values are deep copies of Lua values (nil deletes). The mutex is never held
// while Lua code or a Lua allocation could raise: values are copied out under
// the lock and pushed after it is released.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <new>

#include "engine/lua/lua_internal.h"
#include "engine/util/json_text.h"

namespace junction::lua {

SharedMap::SharedMap() : impl(std::make_unique<Impl>()) {}
SharedMap::~SharedMap() = default;

std::optional<std::string> SharedMap::getString(const std::string& key) const {
    detail::Value v;
    {
        std::lock_guard<std::mutex> lock(impl->mu);
        auto it = impl->values.find(key);
        if (it == impl->values.end()) return std::nullopt;
        v = it->second;
    }
    if (auto* s = std::get_if<std::string>(&v.v)) return *s;
    return detail::valueToJson(v);
}

void SharedMap::setString(const std::string& key, const std::string& value) {
    detail::Value v;
    v.v = value;
    std::lock_guard<std::mutex> lock(impl->mu);
    impl->values[key] = std::move(v);
}

std::size_t SharedMap::size() const {
    std::lock_guard<std::mutex> lock(impl->mu);
    return impl->values.size();
}

namespace detail {

// ------------------------------------------------------------ values

namespace {

Value toValueRec(lua_State* L, int idx, std::vector<const void*>& path) {
    Value out;
    switch (lua_type(L, idx)) {
        case LUA_TNIL: break;
        case LUA_TBOOLEAN: out.v = static_cast<bool>(lua_toboolean(L, idx)); break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, idx)) out.v = lua_tointeger(L, idx);
            else out.v = lua_tonumber(L, idx);
            break;
        case LUA_TSTRING: {
            std::size_t n;
            const char* s = lua_tolstring(L, idx, &n);
            out.v = std::string(s, n);
            break;
        }
        case LUA_TTABLE: {
            const void* p = lua_topointer(L, idx);
            if (std::find(path.begin(), path.end(), p) != path.end())
                throw LuaError("maps: cannot store a table that contains itself");
            if (path.size() > 100) throw LuaError("maps: table nesting deeper than 100 levels");
            if (!lua_checkstack(L, 4)) throw LuaError("maps: table nesting too deep");
            path.push_back(p);
            auto t = std::make_shared<Table>();
            int abs = lua_absindex(L, idx);
            lua_pushnil(L);
            while (lua_next(L, abs)) {
                int kt = lua_type(L, -2);
                if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN) {
                    lua_pop(L, 2);
                    throw LuaError(std::string("maps: cannot store a table key of type ") + luaL_typename(L, -2));
                }
                Value k = toValueRec(L, -2, path);
                Value v = toValueRec(L, -1, path);
                t->emplace_back(std::move(k), std::move(v));
                lua_pop(L, 1);
            }
            path.pop_back();
            out.v = std::shared_ptr<const Table>(std::move(t));
            break;
        }
        default:
            throw LuaError(std::string("maps: cannot store a ") + luaL_typename(L, idx) +
                           " (values are nil, booleans, numbers, strings and tables of those)");
    }
    return out;
}

}  // namespace

Value toValue(lua_State* L, int idx) {
    std::vector<const void*> path;
    return toValueRec(L, idx, path);
}

void pushValue(lua_State* L, const Value& v) {
    struct Pusher {
        lua_State* L;
        void operator()(std::monostate) const { lua_pushnil(L); }
        void operator()(bool b) const { lua_pushboolean(L, b); }
        void operator()(lua_Integer i) const { lua_pushinteger(L, i); }
        void operator()(lua_Number n) const { lua_pushnumber(L, n); }
        void operator()(const std::string& s) const { lua_pushlstring(L, s.data(), s.size()); }
        void operator()(const std::shared_ptr<const Table>& t) const {
            luaL_checkstack(L, 4, "maps: table nesting too deep");
            lua_createtable(L, 0, static_cast<int>(t->size()));
            for (const auto& [k, val] : *t) {
                pushValue(L, k);
                pushValue(L, val);
                lua_rawset(L, -3);
            }
        }
    };
    std::visit(Pusher{L}, v.v);
}

namespace {

std::string numberText(const Value& v) {
    char buf[64];
    if (auto* i = std::get_if<lua_Integer>(&v.v)) {
        auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(*i));
        return std::string(buf, r.ptr);
    }
    double d = std::get<lua_Number>(v.v);
    if (!std::isfinite(d)) return "null";
    auto r = std::to_chars(buf, buf + sizeof buf, d);
    std::string s(buf, r.ptr);
    if (s.find_first_of(".eE") == std::string::npos) s += ".0";
    return s;
}

void toJson(std::string& out, const Value& v) {
    switch (v.v.index()) {
        case 0: out += "null"; return;
        case 1: out += std::get<bool>(v.v) ? "true" : "false"; return;
        case 2:
        case 3: out += numberText(v); return;
        case 4: util::appendJsonString(out, std::get<std::string>(v.v)); return;
        default: break;
    }
    const Table& t = *std::get<std::shared_ptr<const Table>>(v.v);
    // Array when the keys are exactly 1..n.
    std::vector<const Value*> arr(t.size(), nullptr);
    bool isArray = !t.empty();
    for (const auto& [k, val] : t) {
        auto* i = std::get_if<lua_Integer>(&k.v);
        if (!i || *i < 1 || static_cast<std::size_t>(*i) > t.size() || arr[static_cast<std::size_t>(*i - 1)]) {
            isArray = false;
            break;
        }
        arr[static_cast<std::size_t>(*i - 1)] = &val;
    }
    if (isArray) {
        out += '[';
        for (std::size_t i = 0; i < arr.size(); ++i) {
            if (i) out += ',';
            toJson(out, *arr[i]);
        }
        out += ']';
        return;
    }
    std::vector<std::pair<std::string, const Value*>> members;
    for (const auto& [k, val] : t) {
        std::string name;
        if (auto* s = std::get_if<std::string>(&k.v)) name = *s;
        else if (auto* b = std::get_if<bool>(&k.v)) name = *b ? "true" : "false";
        else name = numberText(k);
        members.emplace_back(std::move(name), &val);
    }
    std::sort(members.begin(), members.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    out += '{';
    for (std::size_t i = 0; i < members.size(); ++i) {
        if (i) out += ',';
        util::appendJsonString(out, members[i].first);
        out += ':';
        toJson(out, *members[i].second);
    }
    out += '}';
}

}  // namespace

std::string valueToJson(const Value& v) {
    std::string out;
    toJson(out, v);
    return out;
}

// ------------------------------------------------------------ maps proxies

namespace {

constexpr std::uint32_t kMapTag = 0x4d415031;  // "MAP1"
const char kMapMetaKey = 0;

enum class MapKind { Channel, Global, Response };

struct MapProxy {
    std::uint32_t tag = kMapTag;
    MapKind kind = MapKind::Channel;
};

const char* kindName(MapKind k) {
    switch (k) {
        case MapKind::Channel: return "maps.channel";
        case MapKind::Global: return "maps.global";
        case MapKind::Response: return "maps.response";
    }
    return "maps";
}

MapProxy& checkProxy(lua_State* L, int idx) {
    if (lua_type(L, idx) == LUA_TUSERDATA && lua_rawlen(L, idx) == sizeof(MapProxy)) {
        auto* p = static_cast<MapProxy*>(lua_touserdata(L, idx));
        if (p->tag == kMapTag) return *p;
    }
    luaL_typeerror(L, idx, "map (call map methods with a colon: maps.global:incr(\"k\"))");
    std::abort();
}

SharedMap& mapOf(lua_State* L, MapProxy& p) {
    Invocation* inv = runtime(L).inv;
    if (!inv) luaL_error(L, "%s is only available while a message is processed", kindName(p.kind));
    std::shared_ptr<SharedMap>* m = p.kind == MapKind::Channel  ? &inv->channelMap
                                    : p.kind == MapKind::Global ? &inv->globalMap
                                                                : &inv->responseMap;
    if (!*m) luaL_error(L, "%s is not available in this call", kindName(p.kind));
    return **m;
}

// Key at `idx` as a string (numbers are converted: maps.channel[1] == maps.channel["1"]).
std::string_view keyOf(lua_State* L, int idx) {
    int t = lua_type(L, idx);
    if (t != LUA_TSTRING && t != LUA_TNUMBER) luaL_typeerror(L, idx, "string key");
    std::size_t n;
    const char* s = lua_tolstring(L, idx, &n);
    return {s, n};
}

int mapGetAt(lua_State* L, SharedMap& m, int keyIdx) {
    std::string_view key = keyOf(L, keyIdx);
    return protect(L, [&] {
        Value v;
        {
            std::lock_guard<std::mutex> lock(m.impl->mu);
            auto it = m.impl->values.find(key);
            if (it != m.impl->values.end()) v = it->second;
        }
        pushValue(L, v);
        return 1;
    });
}

int mapSetAt(lua_State* L, SharedMap& m, int keyIdx, int valueIdx) {
    std::string_view key = keyOf(L, keyIdx);
    return protect(L, [&] {
        Value v = toValue(L, valueIdx);
        std::lock_guard<std::mutex> lock(m.impl->mu);
        if (v.isNil()) {
            auto it = m.impl->values.find(key);
            if (it != m.impl->values.end()) m.impl->values.erase(it);
        } else {
            auto it = m.impl->values.find(key);
            if (it != m.impl->values.end()) it->second = std::move(v);
            else m.impl->values.emplace(std::string(key), std::move(v));
        }
        return 0;
    });
}

int mapIndex(lua_State* L) {
    MapProxy& p = checkProxy(L, 1);
    if (lua_type(L, 2) == LUA_TSTRING) {
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;  // a method
        lua_pop(L, 1);
    }
    return mapGetAt(L, mapOf(L, p), 2);
}

int mapNewIndex(lua_State* L) {
    MapProxy& p = checkProxy(L, 1);
    return mapSetAt(L, mapOf(L, p), 2, 3);
}

int mapGet(lua_State* L) {
    MapProxy& p = checkProxy(L, 1);
    return mapGetAt(L, mapOf(L, p), 2);
}

int mapSet(lua_State* L) {
    MapProxy& p = checkProxy(L, 1);
    luaL_checkany(L, 2);
    lua_settop(L, 3);
    return mapSetAt(L, mapOf(L, p), 2, 3);
}

// map:incr(key [, n]) → the new value (atomic).
int mapIncr(lua_State* L) {
    MapProxy& p = checkProxy(L, 1);
    SharedMap& m = mapOf(L, p);
    std::string_view key = keyOf(L, 2);
    if (!lua_isnoneornil(L, 3)) luaL_checknumber(L, 3);
    bool intDelta = lua_isnoneornil(L, 3) || lua_isinteger(L, 3);
    lua_Integer di = lua_isnoneornil(L, 3) ? 1 : (lua_isinteger(L, 3) ? lua_tointeger(L, 3) : 0);
    lua_Number dn = lua_isnoneornil(L, 3) ? 1.0 : luaL_checknumber(L, 3);
    char err[256];
    err[0] = 0;
    Value result;
    {
        NativeScope scope(L);
        std::lock_guard<std::mutex> lock(m.impl->mu);
        auto it = m.impl->values.find(key);
        if (it == m.impl->values.end()) {
            if (intDelta) result.v = di;
            else result.v = dn;
            m.impl->values.emplace(std::string(key), result);
        } else if (auto* i = std::get_if<lua_Integer>(&it->second.v)) {
            if (intDelta) result.v = static_cast<lua_Integer>(static_cast<std::uint64_t>(*i) + static_cast<std::uint64_t>(di));
            else result.v = static_cast<lua_Number>(*i) + dn;
            it->second = result;
        } else if (auto* d = std::get_if<lua_Number>(&it->second.v)) {
            result.v = *d + dn;
            it->second = result;
        } else {
            std::snprintf(err, sizeof err, "%s:incr: the value of '%.*s' is not a number", kindName(p.kind),
                          static_cast<int>(key.size()), key.data());
        }
    }
    if (err[0]) return luaL_error(L, "%s", err);
    if (auto* i = std::get_if<lua_Integer>(&result.v)) lua_pushinteger(L, *i);
    else lua_pushnumber(L, std::get<lua_Number>(result.v));
    return 1;
}

// pairs(maps.global): iterate a snapshot.
int mapPairs(lua_State* L) {
    MapProxy& p = checkProxy(L, 1);
    SharedMap& m = mapOf(L, p);
    protect(L, [&] {
        std::vector<std::pair<std::string, Value>> snapshot;
        {
            std::lock_guard<std::mutex> lock(m.impl->mu);
            snapshot.assign(m.impl->values.begin(), m.impl->values.end());
        }
        lua_createtable(L, 0, static_cast<int>(snapshot.size()));
        for (const auto& [k, v] : snapshot) {
            pushValue(L, v);
            lua_setfield(L, -2, k.c_str());
        }
        return 1;
    });
    lua_getglobal(L, "next");
    lua_insert(L, -2);
    lua_pushnil(L);
    return 3;
}

int mapToString(lua_State* L) {
    MapProxy& p = checkProxy(L, 1);
    lua_pushstring(L, kindName(p.kind));
    return 1;
}

}  // namespace

void openMaps(lua_State* L) {
    lua_newtable(L);  // metatable
    lua_newtable(L);  // methods
    const luaL_Reg methods[] = {{"get", mapGet}, {"set", mapSet}, {"incr", mapIncr}, {nullptr, nullptr}};
    luaL_setfuncs(L, methods, 0);
    lua_pushcclosure(L, mapIndex, 1);
    lua_setfield(L, -2, "__index");
    const luaL_Reg meta[] = {{"__newindex", mapNewIndex}, {"__pairs", mapPairs}, {"__tostring", mapToString},
                             {nullptr, nullptr}};
    luaL_setfuncs(L, meta, 0);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kMapMetaKey);

    lua_createtable(L, 0, 3);
    const std::pair<const char*, MapKind> kinds[] = {
        {"channel", MapKind::Channel}, {"global", MapKind::Global}, {"response", MapKind::Response}};
    for (const auto& [name, kind] : kinds) {
        auto* p = static_cast<MapProxy*>(lua_newuserdatauv(L, sizeof(MapProxy), 0));
        new (p) MapProxy();
        p->kind = kind;
        lua_rawgetp(L, LUA_REGISTRYINDEX, &kMapMetaKey);
        lua_setmetatable(L, -2);
        lua_setfield(L, -2, name);
    }
    lua_setglobal(L, "maps");
}

}  // namespace detail
}  // namespace junction::lua
