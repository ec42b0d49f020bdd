// The `json` module: a hand-written decoder (pushes straight onto the Lua
// stack, no intermediate tree) and encoder.
//
// - Integers stay integers (1 ↔ 1), floats keep a '.' or exponent (1.0 ↔ 1.0).
// - null decodes to the json.null sentinel so arrays keep their positions.
// - Decoded arrays carry a marker metatable so [] encodes back as [];
//   decoded objects carry a metatable with their key order, so re-encoding
//   keeps the input's order (keys added later follow, sorted).
// - Strings: UTF-8 passes through; \uXXXX escapes incl. surrogate pairs. The
//   encoder writes other bytes as \u00XX (read as Latin-1), see engine/util/json_text.h.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "engine/lua/lua_internal.h"
#include "engine/util/json_text.h"

namespace junction::lua::detail {
namespace {

const char kNull = 0;          // json.null (light userdata &kNull)
const char kArrayMetaKey = 0;  // registry: metatable marking arrays
constexpr int kMaxDepth = 1000;
constexpr const char* kOrderField = "__jsonorder";

// ------------------------------------------------------------ decoder

struct Dec {
    const char* begin;
    const char* p;
    const char* end;
    const char* what;
};

[[noreturn]] void decError(lua_State* L, const Dec& d, const char* msg) {
    int line = 1, col = 1;
    for (const char* q = d.begin; q < d.p && q < d.end; ++q) {
        if (*q == '\n') {
            ++line;
            col = 1;
        } else if ((static_cast<unsigned char>(*q) & 0xC0) != 0x80) {
            ++col;
        }
    }
    luaL_error(L, "%s: %s at line %d, column %d (byte %d)", d.what, msg, line, col, static_cast<int>(d.p - d.begin));
    std::abort();  // not reached
}

[[noreturn]] void decUnexpected(lua_State* L, const Dec& d, const char* expected) {
    char buf[128];
    if (d.p >= d.end) {
        std::snprintf(buf, sizeof buf, "unexpected end of input (expected %s)", expected);
    } else {
        unsigned char c = static_cast<unsigned char>(*d.p);
        if (c >= 0x20 && c < 0x7f)
            std::snprintf(buf, sizeof buf, "unexpected character '%c' (expected %s)", c, expected);
        else
            std::snprintf(buf, sizeof buf, "unexpected byte 0x%02X (expected %s)", c, expected);
    }
    decError(L, d, buf);
}

inline void skipWs(Dec& d) {
    while (d.p < d.end && (*d.p == ' ' || *d.p == '\n' || *d.p == '\r' || *d.p == '\t')) ++d.p;
}

int hex4(const char* p) {
    int v = 0;
    for (int i = 0; i < 4; ++i) {
        char c = p[i];
        int h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

int utf8Encode(unsigned cp, char* out) {
    if (cp < 0x80) {
        out[0] = static_cast<char>(cp);
        return 1;
    }
    if (cp < 0x800) {
        out[0] = static_cast<char>(0xC0 | (cp >> 6));
        out[1] = static_cast<char>(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = static_cast<char>(0xE0 | (cp >> 12));
        out[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out[2] = static_cast<char>(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = static_cast<char>(0xF0 | (cp >> 18));
    out[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out[3] = static_cast<char>(0x80 | (cp & 0x3F));
    return 4;
}

// d.p at the opening quote.
void decString(lua_State* L, Dec& d) {
    ++d.p;
    const char* q = d.p;
    while (q < d.end && *q != '"' && *q != '\\' && static_cast<unsigned char>(*q) >= 0x20) ++q;
    if (q < d.end && *q == '"') {
        lua_pushlstring(L, d.p, static_cast<std::size_t>(q - d.p));
        d.p = q + 1;
        return;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, d.p, static_cast<std::size_t>(q - d.p));
    d.p = q;
    while (true) {
        if (d.p >= d.end) decError(L, d, "unterminated string");
        unsigned char c = static_cast<unsigned char>(*d.p);
        if (c == '"') {
            ++d.p;
            break;
        }
        if (c < 0x20) decError(L, d, "control character in string (must be escaped)");
        if (c != '\\') {
            const char* s = d.p;
            while (d.p < d.end && *d.p != '"' && *d.p != '\\' && static_cast<unsigned char>(*d.p) >= 0x20) ++d.p;
            luaL_addlstring(&b, s, static_cast<std::size_t>(d.p - s));
            continue;
        }
        if (d.p + 1 >= d.end) decError(L, d, "unterminated escape");
        char e = d.p[1];
        switch (e) {
            case '"': luaL_addchar(&b, '"'); break;
            case '\\': luaL_addchar(&b, '\\'); break;
            case '/': luaL_addchar(&b, '/'); break;
            case 'b': luaL_addchar(&b, '\b'); break;
            case 'f': luaL_addchar(&b, '\f'); break;
            case 'n': luaL_addchar(&b, '\n'); break;
            case 'r': luaL_addchar(&b, '\r'); break;
            case 't': luaL_addchar(&b, '\t'); break;
            case 'u': {
                if (d.end - d.p < 6) decError(L, d, "truncated \\u escape");
                int cp = hex4(d.p + 2);
                if (cp < 0) decError(L, d, "invalid \\u escape (4 hex digits expected)");
                if (cp >= 0xDC00 && cp <= 0xDFFF) decError(L, d, "lone low surrogate in \\u escape");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (d.end - d.p < 12 || d.p[6] != '\\' || d.p[7] != 'u')
                        decError(L, d, "high surrogate not followed by a low surrogate \\u escape");
                    int lo = hex4(d.p + 8);
                    if (lo < 0xDC00 || lo > 0xDFFF) decError(L, d, "invalid low surrogate in \\u escape");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    d.p += 6;
                }
                char buf[4];
                int n = utf8Encode(static_cast<unsigned>(cp), buf);
                luaL_addlstring(&b, buf, static_cast<std::size_t>(n));
                d.p += 6;
                continue;
            }
            default: decError(L, d, "invalid escape sequence");
        }
        d.p += 2;
    }
    luaL_pushresult(&b);
}

void decNumber(lua_State* L, Dec& d) {
    const char* s = d.p;
    const char* p = d.p;
    if (p < d.end && *p == '-') ++p;
    if (p < d.end && *p == '0') {
        ++p;
    } else if (p < d.end && *p >= '1' && *p <= '9') {
        while (p < d.end && *p >= '0' && *p <= '9') ++p;
    } else {
        d.p = p;
        decUnexpected(L, d, "a digit");
    }
    bool isInt = true;
    if (p < d.end && *p == '.') {
        ++p;
        if (p >= d.end || *p < '0' || *p > '9') {
            d.p = p;
            decUnexpected(L, d, "a digit after '.'");
        }
        while (p < d.end && *p >= '0' && *p <= '9') ++p;
        isInt = false;
    }
    if (p < d.end && (*p == 'e' || *p == 'E')) {
        ++p;
        if (p < d.end && (*p == '+' || *p == '-')) ++p;
        if (p >= d.end || *p < '0' || *p > '9') {
            d.p = p;
            decUnexpected(L, d, "a digit in the exponent");
        }
        while (p < d.end && *p >= '0' && *p <= '9') ++p;
        isInt = false;
    }
    if (isInt) {
        long long v = 0;
        auto r = std::from_chars(s, p, v);
        if (r.ec == std::errc() && r.ptr == p) {
            lua_pushinteger(L, static_cast<lua_Integer>(v));
            d.p = p;
            return;
        }
    }
    double v = 0;
    auto r = std::from_chars(s, p, v);
    if (r.ec == std::errc::result_out_of_range) v = (*s == '-') ? -HUGE_VAL : HUGE_VAL;
    else if (r.ec != std::errc()) decError(L, d, "invalid number");
    lua_pushnumber(L, v);
    d.p = p;
}

bool literal(Dec& d, const char* word, std::size_t n) {
    if (static_cast<std::size_t>(d.end - d.p) >= n && std::memcmp(d.p, word, n) == 0) {
        d.p += n;
        return true;
    }
    return false;
}

void decValue(lua_State* L, Dec& d, int depth);

void decArray(lua_State* L, Dec& d, int depth) {
    ++d.p;
    lua_newtable(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &kArrayMetaKey);
    lua_setmetatable(L, -2);
    skipWs(d);
    if (d.p < d.end && *d.p == ']') {
        ++d.p;
        return;
    }
    lua_Integer i = 0;
    while (true) {
        skipWs(d);
        decValue(L, d, depth + 1);
        lua_rawseti(L, -2, ++i);
        skipWs(d);
        if (d.p < d.end && *d.p == ',') {
            ++d.p;
            continue;
        }
        if (d.p < d.end && *d.p == ']') {
            ++d.p;
            return;
        }
        decUnexpected(L, d, "',' or ']'");
    }
}

void decObject(lua_State* L, Dec& d, int depth) {
    ++d.p;
    lua_newtable(L);        // obj
    lua_createtable(L, 4, 1);  // order metatable
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, kOrderField);
    lua_pushvalue(L, -1);
    lua_setmetatable(L, -3);
    int obj = lua_gettop(L) - 1, order = obj + 1;
    lua_Integer n = 0;
    skipWs(d);
    if (d.p < d.end && *d.p == '}') {
        ++d.p;
        lua_pop(L, 1);
        return;
    }
    while (true) {
        skipWs(d);
        if (d.p >= d.end || *d.p != '"') decUnexpected(L, d, "a string key");
        decString(L, d);
        skipWs(d);
        if (d.p >= d.end || *d.p != ':') decUnexpected(L, d, "':'");
        ++d.p;
        skipWs(d);
        decValue(L, d, depth + 1);  // obj order key value
        lua_pushvalue(L, -2);
        if (lua_rawget(L, obj) == LUA_TNIL) {
            lua_pushvalue(L, -3);
            lua_rawseti(L, order, ++n);
        }
        lua_pop(L, 1);
        lua_rawset(L, obj);
        skipWs(d);
        if (d.p < d.end && *d.p == ',') {
            ++d.p;
            continue;
        }
        if (d.p < d.end && *d.p == '}') {
            ++d.p;
            lua_pop(L, 1);  // order
            return;
        }
        decUnexpected(L, d, "',' or '}'");
    }
}

void decValue(lua_State* L, Dec& d, int depth) {
    if (depth > kMaxDepth) decError(L, d, "nesting deeper than 1000 levels");
    if (!lua_checkstack(L, 8)) decError(L, d, "nesting too deep for the Lua stack");
    skipWs(d);
    if (d.p >= d.end) decUnexpected(L, d, "a value");
    switch (*d.p) {
        case '{': decObject(L, d, depth); return;
        case '[': decArray(L, d, depth); return;
        case '"': decString(L, d); return;
        case 't':
            if (literal(d, "true", 4)) {
                lua_pushboolean(L, 1);
                return;
            }
            break;
        case 'f':
            if (literal(d, "false", 5)) {
                lua_pushboolean(L, 0);
                return;
            }
            break;
        case 'n':
            if (literal(d, "null", 4)) {
                lua_pushlightuserdata(L, const_cast<char*>(&kNull));
                return;
            }
            break;
        default:
            if (*d.p == '-' || (*d.p >= '0' && *d.p <= '9')) {
                decNumber(L, d);
                return;
            }
    }
    decUnexpected(L, d, "a value");
}

// ------------------------------------------------------------ encoder

void appendNumber(std::string& out, lua_State* L, int idx) {
    char buf[64];
    if (lua_isinteger(L, idx)) {
        auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(lua_tointeger(L, idx)));
        out.append(buf, r.ptr);
        return;
    }
    double v = lua_tonumber(L, idx);
    if (!std::isfinite(v)) throw LuaError("json.encode: cannot encode NaN or infinity");
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    std::string_view s(buf, static_cast<std::size_t>(r.ptr - buf));
    out += s;
    if (s.find_first_of(".eE") == std::string_view::npos) out += ".0";
}

struct Encoder {
    lua_State* L;
    bool pretty;
    std::string out;
    std::vector<const void*> path;  // tables being encoded (cycle detection)

    void newline(int depth) {
        if (!pretty) return;
        out += '\n';
        out.append(static_cast<std::size_t>(depth) * 2, ' ');
    }

    struct Key {
        std::string name;
        int type;  // LUA_TSTRING or LUA_TNUMBER
        lua_Integer i = 0;
        lua_Number f = 0;
        bool isInt = false;
    };

    Key keyAt(int idx) {
        Key k;
        k.type = lua_type(L, idx);
        if (k.type == LUA_TSTRING) {
            std::size_t n;
            const char* s = lua_tolstring(L, idx, &n);
            k.name.assign(s, n);
        } else if (k.type == LUA_TNUMBER) {
            char buf[64];
            if (lua_isinteger(L, idx)) {
                k.isInt = true;
                k.i = lua_tointeger(L, idx);
                auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(k.i));
                k.name.assign(buf, r.ptr);
            } else {
                k.f = lua_tonumber(L, idx);
                auto r = std::to_chars(buf, buf + sizeof buf, k.f);
                k.name.assign(buf, r.ptr);
            }
        } else {
            throw LuaError(std::string("json.encode: cannot encode a table key of type ") + luaL_typename(L, idx));
        }
        return k;
    }

    void pushKey(const Key& k) {
        if (k.type == LUA_TSTRING) lua_pushlstring(L, k.name.data(), k.name.size());
        else if (k.isInt) lua_pushinteger(L, k.i);
        else lua_pushnumber(L, k.f);
    }

    void member(const Key& k, int t, int depth, bool& first) {
        pushKey(k);
        lua_rawget(L, t);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            return;
        }
        if (!first) out += ',';
        first = false;
        newline(depth + 1);
        util::appendJsonString(out, k.name, util::NonUtf8::Latin1);
        out += pretty ? ": " : ":";
        value(lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }

    void array(int t, lua_Integer n, int depth) {
        if (n == 0) {
            out += "[]";
            return;
        }
        out += '[';
        for (lua_Integer i = 1; i <= n; ++i) {
            if (i > 1) out += ',';
            newline(depth + 1);
            lua_rawgeti(L, t, i);
            value(lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        newline(depth);
        out += ']';
    }

    void object(int t, int order, int depth) {
        out += '{';
        bool first = true;
        std::unordered_set<std::string> seen;
        if (order) {
            lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, order));
            for (lua_Integer i = 1; i <= n; ++i) {
                lua_rawgeti(L, order, i);
                if (lua_type(L, -1) == LUA_TSTRING) {
                    Key k = keyAt(-1);
                    member(k, t, depth, first);
                    seen.insert(std::move(k.name));
                }
                lua_pop(L, 1);
            }
        }
        std::vector<Key> keys;
        lua_pushnil(L);
        while (lua_next(L, t)) {
            lua_pop(L, 1);
            if (order && lua_type(L, -1) == LUA_TSTRING) {
                std::size_t n;
                const char* s = lua_tolstring(L, -1, &n);
                if (seen.count(std::string(s, n))) continue;
            }
            keys.push_back(keyAt(-1));
        }
        std::sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) { return a.name < b.name; });
        for (const Key& k : keys) member(k, t, depth, first);
        if (!first) newline(depth);
        out += '}';
    }

    void table(int t, int depth) {
        if (depth > kMaxDepth) throw LuaError("json.encode: nesting deeper than 1000 levels");
        const void* ptr = lua_topointer(L, t);
        if (std::find(path.begin(), path.end(), ptr) != path.end())
            throw LuaError("json.encode: circular reference (a table contains itself)");
        if (!lua_checkstack(L, 8)) throw LuaError("json.encode: nesting too deep for the Lua stack");
        path.push_back(ptr);
        int top = lua_gettop(L);
        int order = 0;
        bool isArray = false;
        lua_Integer n = 0;
        if (lua_getmetatable(L, t)) {
            lua_rawgetp(L, LUA_REGISTRYINDEX, &kArrayMetaKey);
            if (lua_rawequal(L, -1, -2)) {
                isArray = true;
                n = static_cast<lua_Integer>(lua_rawlen(L, t));
            } else {
                lua_pop(L, 1);
                lua_pushstring(L, kOrderField);
                if (lua_rawget(L, -2) != LUA_TNIL) order = top + 1;
            }
        }
        if (!isArray && !order) {
            lua_Integer count = 0, max = 0;
            bool ints = true;
            lua_pushnil(L);
            while (lua_next(L, t)) {
                lua_pop(L, 1);
                ++count;
                if (ints && lua_isinteger(L, -1)) {
                    lua_Integer k = lua_tointeger(L, -1);
                    if (k >= 1) max = std::max(max, k);
                    else ints = false;
                } else {
                    ints = false;
                }
            }
            if (count > 0 && ints && max == count) {
                isArray = true;
                n = count;
            }
        }
        if (isArray) array(t, n, depth);
        else object(t, order, depth);
        lua_settop(L, top);
        path.pop_back();
    }

    void value(int idx, int depth) {
        switch (lua_type(L, idx)) {
            case LUA_TNIL: out += "null"; return;
            case LUA_TBOOLEAN: out += lua_toboolean(L, idx) ? "true" : "false"; return;
            case LUA_TNUMBER: appendNumber(out, L, idx); return;
            case LUA_TSTRING: {
                std::size_t n;
                const char* s = lua_tolstring(L, idx, &n);
                util::appendJsonString(out, {s, n}, util::NonUtf8::Latin1);
                return;
            }
            case LUA_TTABLE: table(idx, depth); return;
            case LUA_TLIGHTUSERDATA:
                if (lua_touserdata(L, idx) == &kNull) {
                    out += "null";
                    return;
                }
                break;
            case LUA_TUSERDATA:
                if (isNode(L, idx) || toMessage(L, idx))
                    throw LuaError("json.encode: cannot encode an HL7 node or message; use node:S() or tostring(msg)");
                break;
        }
        throw LuaError(std::string("json.encode: cannot encode a ") + luaL_typename(L, idx) + " value");
    }
};

int jsonEncodeL(lua_State* L) {
    luaL_checkany(L, 1);
    bool pretty = false;
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_getfield(L, 2, "pretty");
        pretty = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_settop(L, 1);
    return protect(L, [&] {
        std::string s = jsonEncode(L, 1, pretty);
        pushView(L, s);
        return 1;
    });
}

int jsonDecodeL(lua_State* L) {
    std::string_view text = checkView(L, 1);
    lua_settop(L, 1);
    jsonDecodePush(L, text, "json.decode");
    return 1;
}

int jsonArrayL(lua_State* L) {
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &kArrayMetaKey);
    lua_setmetatable(L, 1);
    return 1;
}

}  // namespace

void jsonDecodePush(lua_State* L, std::string_view text, const char* what) {
    Dec d{text.data(), text.data(), text.data() + text.size(), what};
    skipWs(d);
    decValue(L, d, 0);
    skipWs(d);
    if (d.p != d.end) decUnexpected(L, d, "end of input");
}

std::string jsonEncode(lua_State* L, int idx, bool pretty) {
    Encoder e{L, pretty, {}, {}};
    e.value(lua_absindex(L, idx), 0);
    return std::move(e.out);
}

void openJson(lua_State* L) {
    lua_newtable(L);
    lua_pushliteral(L, "json.array");
    lua_setfield(L, -2, "__name");
    protectMetatable(L, -1, "getmetatable(json.array())");  // shared by every array of the runtime
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kArrayMetaKey);

    const luaL_Reg funcs[] = {{"encode", jsonEncodeL}, {"decode", jsonDecodeL}, {"array", jsonArrayL}, {nullptr, nullptr}};
    luaL_newlib(L, funcs);
    lua_pushlightuserdata(L, const_cast<char*>(&kNull));
    lua_setfield(L, -2, "null");
    lua_setglobal(L, "json");
}

}  // namespace junction::lua::detail
