// ScriptRuntime: the sandboxed lua_State, its allocator (memory cap),
// instruction budget and time limit, error reporting, safe load/require/pcall,
// and the call driver that hands the message to a script function and writes
// back the result.
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/lua/lua_internal.h"

namespace junction::lua {

// ------------------------------------------------------------ data types

std::optional<DataType> parseDataType(std::string_view s) {
    std::string t;
    for (char c : s) t += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if (t == "hl7v2" || t == "hl7") return DataType::Hl7v2;
    if (t == "json") return DataType::Json;
    if (t == "xml") return DataType::Xml;
    if (t == "raw") return DataType::Raw;
    return std::nullopt;
}

const char* toString(DataType t) {
    switch (t) {
        case DataType::Hl7v2: return "hl7v2";
        case DataType::Json: return "json";
        case DataType::Xml: return "xml";
        case DataType::Raw: return "raw";
    }
    return "raw";
}

std::string Payload::serialize() const {
    if (hl7) return hl7->serialize();
    return text;
}

struct ScriptRuntime::Impl : detail::State {
    Impl() = default;
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
    ~Impl() {
        if (L) lua_close(L);
    }
};

namespace detail {

std::string whereString(lua_State* L, int level) {
    lua_Debug ar;
    for (int l = level; l < level + 20 && lua_getstack(L, l, &ar); ++l) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
            return std::string(ar.short_src) + ":" + std::to_string(ar.currentline);
    }
    return {};
}

std::int64_t monotonicMs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

namespace {

constexpr int kHookEvery = 1000;

void recordFatal(lua_State* L, Impl::Fatal kind);
int raiseFatal(lua_State* L);

// The chunk name a script path gets: "@path" so errors read "path:line:".
std::string chunkNameFor(const std::string& name) {
    if (!name.empty() && (name[0] == '@' || name[0] == '=')) return name;
    return "@" + name;
}

std::string displayName(const Impl& s) {
    if (s.chunkName.size() > 1 && (s.chunkName[0] == '@' || s.chunkName[0] == '=')) return s.chunkName.substr(1);
    return s.chunkName;
}

// ------------------------------------------------------------ allocator

// First Lua frame with a line, read without allocating (safe inside the allocator).
void captureWhere(Impl& s) {
    if (!s.L) return;
    lua_Debug ar;
    for (int l = 0; l < 20 && lua_getstack(s.L, l, &ar); ++l) {
        if (lua_getinfo(s.L, "Sl", &ar) && ar.currentline > 0) {
            s.memWhere.assign(ar.short_src);
            s.memWhere += ":" + std::to_string(ar.currentline);
            return;
        }
    }
}

void* allocate(void* ud, void* ptr, std::size_t osize, std::size_t nsize) {
    Impl& s = *static_cast<Impl*>(ud);
    if (nsize == 0) {
        if (ptr) {
            s.memUsed -= osize;
            std::free(ptr);
        }
        return nullptr;
    }
    std::size_t old = ptr ? osize : 0;
    if (nsize > old) {
        std::size_t limit = s.limits.memoryBytes + (s.nativeDepth > 0 ? s.memReserve : 0);
        if (s.memUsed + (nsize - old) > limit) {
            if (!s.memFailed) {
                s.memFailed = true;
                try {
                    captureWhere(s);
                } catch (...) {
                }
            }
            return nullptr;
        }
    }
    void* p = std::realloc(ptr, nsize);
    if (!p) return nullptr;
    s.memUsed = s.memUsed - old + nsize;
    return p;
}

// ------------------------------------------------------------ limits

std::string durationText(std::chrono::milliseconds d) {
    if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
    return std::to_string(d.count()) + " ms";
}

// Records the call's first fatal error, "file:line: ..." at the running Lua
// code. Returns normally (its C++ objects are gone before anything raises).
void recordFatal(lua_State* L, Impl::Fatal kind) {
    Impl& s = runtime(L);
    if (s.fatal != Impl::Fatal::None) return;
    s.fatal = kind;
    try {
        std::string where = whereString(L, 0);
        s.fatalError = (where.empty() ? displayName(s) : where) + ": ";
        switch (kind) {
            case Impl::Fatal::Instructions:
                s.fatalError += "instruction budget exceeded (infinite loop?): more than " +
                                std::to_string(s.limits.instructions) + " instructions";
                break;
            case Impl::Fatal::Time:
                s.fatalError += "script exceeded its time limit (" + durationText(s.limits.time) + ")";
                break;
            case Impl::Fatal::Interrupted:
            default: s.fatalError += "script interrupted: its runtime is being stopped"; break;
        }
    } catch (...) {
        s.fatalError = "script limit exceeded";
    }
}

int raiseFatal(lua_State* L) {
    Impl& s = runtime(L);
    lua_pushlstring(L, s.fatalError.data(), s.fatalError.size());
    return lua_error(L);
}

void countHook(lua_State* L, lua_Debug*) {
    Impl& s = runtime(L);
    s.instrUsed += kHookEvery;
    if (s.instrUsed > s.limits.instructions) {
        recordFatal(L, Impl::Fatal::Instructions);
        raiseFatal(L);
    }
    checkLimits(L);
}

// ------------------------------------------------------------ errors

// "path:123: ..." — does the message already say where?
bool hasPosition(const char* m) {
    const char* colon = std::strchr(m, ':');
    if (!colon || colon == m) return false;
    for (const char* p = m; p < colon; ++p)
        if (*p == '\n') return false;
    const char* d = colon + 1;
    if (*d < '0' || *d > '9') return false;
    while (*d >= '0' && *d <= '9') ++d;
    return *d == ':';
}

// Message handler: turn any error value into "file:line: message", taking the
// position from the first Lua frame with a line when the message has none.
int messageHandler(lua_State* L) {
    const char* msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    if (hasPosition(msg)) {
        lua_pushstring(L, msg);
        return 1;
    }
    lua_Debug ar;
    for (int l = 1; l < 30 && lua_getstack(L, l, &ar); ++l) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, msg);
            return 1;
        }
    }
    std::string name = displayName(runtime(L));  // no Lua error can occur while it lives
    lua_pushfstring(L, "%s: %s", name.c_str(), msg);
    return 1;
}

std::string errorText(lua_State* L, int status) {
    Impl& s = runtime(L);
    if (status == LUA_ERRMEM) {
        std::string where = s.memWhere.empty() ? displayName(s) : s.memWhere;
        return where + ": memory limit exceeded (" + std::to_string(s.limits.memoryBytes) +
               " bytes per script runtime)";
    }
    std::string m;
    if (const char* t = lua_tostring(L, -1)) m = t;
    if (status == LUA_ERRERR) {
        if (s.memFailed) return displayName(s) + ": memory limit exceeded while reporting an error";
        return displayName(s) + ": error while reporting an error: " + m;
    }
    if (m.empty()) m = displayName(s) + ": unknown error";
    return m;
}

// ------------------------------------------------------------ sandboxed base

// load(chunk [, chunkname [, mode [, env]]]) — text chunks only.
int sandboxLoad(lua_State* L) {
    luaL_checkany(L, 1);
    if (lua_gettop(L) < 3) lua_settop(L, 3);  // keep "env absent" when it was absent
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

// pcall/xpcall that cannot swallow the instruction budget, time limit or
// interruption error.
int sandboxPcall(lua_State* L) {
    Impl& s = runtime(L);
    int depth = s.nativeDepth;  // an error may have skipped NativeScope destructors
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    s.nativeDepth = depth;
    if (s.fatal != Impl::Fatal::None) return raiseFatal(L);
    return lua_gettop(L);
}

bool validModuleName(std::string_view name) {
    if (name.empty() || name.size() > 200) return false;
    bool segmentStart = true;
    for (char c : name) {
        if (c == '.') {
            if (segmentStart) return false;  // leading dot, "..", empty segment
            segmentStart = true;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok) return false;
        segmentStart = false;
    }
    return !segmentStart;
}

const char kLoadedKey = 0;   // registry[&kLoadedKey] = { name → module value }
const char kLoadingKey = 0;  // sentinel for modules being loaded

// require(name): <scriptdir>/<name with '.' → '/'>.lua, text only, cached.
int sandboxRequire(lua_State* L) {
    std::size_t len = 0;
    const char* name = luaL_checklstring(L, 1, &len);
    if (!validModuleName({name, len}))
        return luaL_error(L,
                          "require('%s'): not allowed: modules are loaded from the script's own folder "
                          "only (letters, digits, '_', '-', '.' as folder separator; no '/' or '..')",
                          name);
    lua_settop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &kLoadedKey);  // 2
    lua_pushvalue(L, 1);
    lua_rawget(L, 2);
    if (!lua_isnil(L, -1)) {
        if (lua_touserdata(L, -1) == &kLoadingKey)
            return luaL_error(L, "require('%s'): circular require", name);
        return 1;
    }
    lua_pop(L, 1);
    char err[512];
    err[0] = 0;
    int status = LUA_OK;
    {
        NativeScope scope(L);
        try {
            Impl& s = runtime(L);
            std::string rel(name, len);
            std::replace(rel.begin(), rel.end(), '.', '/');
            std::string path = (s.scriptDir.empty() ? std::string() : s.scriptDir + "/") + rel + ".lua";
            std::ifstream f(path, std::ios::binary);
            if (!f) {
                std::snprintf(err, sizeof err, "require('%s'): module not found: no file %s", name, path.c_str());
            } else {
                std::stringstream ss;
                ss << f.rdbuf();
                std::string text = ss.str();
                std::string chunk = "@" + path;
                // lua_load is protected: it returns a status, it does not raise.
                status = luaL_loadbufferx(L, text.data(), text.size(), chunk.c_str(), "t");
            }
        } catch (const std::exception& e) {
            std::snprintf(err, sizeof err, "require('%s'): %s", name, e.what());
        }
    }
    if (err[0]) return luaL_error(L, "%s", err);
    if (status != LUA_OK) return lua_error(L);  // syntax error "file:line: ..."
    // chunk at 3
    lua_pushvalue(L, 1);
    lua_pushlightuserdata(L, const_cast<char*>(&kLoadingKey));
    lua_rawset(L, 2);
    lua_pushvalue(L, 1);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {  // forget the failed module, then re-raise
        lua_pushvalue(L, 1);
        lua_pushnil(L);
        lua_rawset(L, 2);
        return lua_error(L);
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, 2);
    return 1;
}

void wrapGlobal(lua_State* L, const char* name, lua_CFunction wrapper) {
    lua_getglobal(L, name);
    lua_pushcclosure(L, wrapper, 1);
    lua_setglobal(L, name);
}

int setup(lua_State* L) {
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    lua_settop(L, 0);
    for (const char* name : {"dofile", "loadfile", "require"}) {
        lua_pushnil(L);
        lua_setglobal(L, name);
    }
    wrapGlobal(L, "load", sandboxLoad);
    wrapGlobal(L, "pcall", sandboxPcall);
    wrapGlobal(L, "xpcall", sandboxPcall);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kLoadedKey);
    lua_pushcfunction(L, sandboxRequire);
    lua_setglobal(L, "require");
    openPatterns(L);
    openGuards(L);

    openHl7(L);
    openJson(L);
    openXml(L);
    openMaps(L);
    openUtil(L);
    openDicom(L);
    openWorklist(L);
    openOrthanc(L);
    openStore(L);
    openVars(L);
    openHttp(L);
    protectLibraries(L);

    Impl& s = runtime(L);
    s.boundMsg = newBoundMessage(L, &s.msgRef);
    return 0;
}

// ------------------------------------------------------------ the call driver

// Stack on entry: empty. Pushes the message argument, calls the function,
// writes back or replaces the message. Runs inside lua_pcall.
bool parseHl7(std::string_view text, Payload& p, char* err, std::size_t errSize) {
    auto r = hl7::Message::parse(text);
    if (!r) {
        std::snprintf(err, errSize, "%s", r.error.describe().c_str());
        return false;
    }
    p.hl7.emplace(std::move(*r.message));
    return true;
}

int replaceMessage(lua_State* L, Payload& p, int idx) {
    char err[768];
    err[0] = 0;
    int t = lua_type(L, idx);
    if (hl7::Message* m = toMessage(L, idx)) {
        if (p.hl7 && m == &*p.hl7) return 0;  // the message itself: edited in place
        protect(L, [&] {
            p.hl7 = *m;
            p.type = DataType::Hl7v2;
            p.text.clear();
            return 0;
        });
        return 0;
    }
    if (isNode(L, idx))
        return luaL_error(L, "the function returned an HL7 segment or field node: return msg (the whole message), a "
                             "string or a table");
    if (t == LUA_TSTRING) {
        std::size_t n = 0;
        const char* s = lua_tolstring(L, idx, &n);
        std::string_view text(s, n);
        std::size_t start = text.find_first_not_of(" \t\r\n");
        bool looksHl7 = start != std::string_view::npos && text.substr(start, 3) == "MSH";
        if (p.type == DataType::Hl7v2 && !looksHl7) {
            // Other text (a CSV line, a report...) makes the message raw text.
            protect(L, [&] {
                p.text.assign(s, n);
                p.hl7.reset();
                p.type = DataType::Raw;
                return 0;
            });
        } else if (p.type == DataType::Hl7v2) {
            bool ok = true;
            {
                NativeScope scope(L);
                char perr[600];
                ok = parseHl7({s, n}, p, perr, sizeof perr);
                if (!ok) std::snprintf(err, sizeof err, "the returned string is not a valid HL7 message: %s", perr);
            }
            if (!ok) return luaL_error(L, "%s", err);
        } else {
            protect(L, [&] {
                p.text.assign(s, n);
                return 0;
            });
        }
        return 0;
    }
    if (t == LUA_TTABLE) {
        protect(L, [&] {
            if (p.type == DataType::Xml) {
                p.text = xmlEncode(L, idx);
            } else {
                // A table makes the message JSON (e.g. HL7 → FHIR JSON).
                p.text = jsonEncode(L, idx, false);
                p.type = DataType::Json;
                p.hl7.reset();
            }
            return 0;
        });
        return 0;
    }
    return luaL_error(L, "the function returned a %s: return msg, a string or a table to replace the message, or "
                         "nothing/true/false",
                      luaL_typename(L, idx));
}

int lookupFunction(lua_State* L) {
    const auto* name = static_cast<const std::string_view*>(lua_touserdata(L, 1));
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_pushlstring(L, name->data(), name->size());
    lua_rawget(L, -2);
    lua_pushboolean(L, lua_type(L, -1) == LUA_TFUNCTION);
    return 1;
}

int callDriver(lua_State* L) {
    Impl& s = runtime(L);
    Invocation& inv = *s.inv;
    Payload& p = *inv.message;

    int ref = LUA_NOREF;
    for (const auto& fr : s.functionRefs)
        if (fr.first == s.callName) {
            ref = fr.second;
            break;
        }
    if (ref == LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
        lua_pushlstring(L, s.callName.data(), s.callName.size());
        lua_rawget(L, -2);
        if (lua_type(L, -1) != LUA_TFUNCTION) {
            char m[512];
            std::snprintf(m, sizeof m, "%s: no function '%.*s' in the script", displayName(s).c_str(),
                          static_cast<int>(s.callName.size()), s.callName.data());
            return luaL_error(L, "%s", m);
        }
        ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_pop(L, 1);
        s.functionRefs.emplace_back(std::string(s.callName), ref);
    }

    // 1: the message argument (kept for the write-back)
    switch (p.type) {
        case DataType::Hl7v2: {
            if (!p.hl7) {
                char err[700];
                bool ok;
                {
                    NativeScope scope(L);
                    ok = parseHl7(p.text, p, err, sizeof err);
                }
                if (!ok) return luaL_error(L, "the message is not valid HL7: %s", err);
            }
            lua_rawgeti(L, LUA_REGISTRYINDEX, s.msgRef);
            bindMessage(s.boundMsg, &*p.hl7);
            break;
        }
        case DataType::Json: jsonDecodePush(L, p.text, "the JSON message"); break;
        case DataType::Xml: xmlDecodePush(L, p.text, "the XML message"); break;
        case DataType::Raw: pushView(L, p.text); break;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_pushvalue(L, 1);
    int nargs = 1;
    if (!inv.responseStatus.empty() || !inv.response.empty()) {
        pushView(L, inv.response);
        pushView(L, inv.responseStatus);
        nargs = 3;
    }
    lua_call(L, nargs, 2);  // a filter may return false and its reason

    int t = lua_type(L, 2);
    if (t == LUA_TNIL || t == LUA_TBOOLEAN) {
        s.returnedFalse = t == LUA_TBOOLEAN && !lua_toboolean(L, 2);
        if (s.returnedFalse && lua_type(L, 3) == LUA_TSTRING) {
            std::size_t n = 0;
            const char* why = lua_tolstring(L, 3, &n);
            inv.filterReason.assign(why, n);
        }
        if (p.type == DataType::Json || p.type == DataType::Xml) {
            protect(L, [&] {
                p.text = p.type == DataType::Json ? jsonEncode(L, 1, false) : xmlEncode(L, 1);
                return 0;
            });
        }
        return 0;
    }
    return replaceMessage(L, p, 2);
}

}  // namespace

void checkLimits(lua_State* L) {
    Impl& s = runtime(L);
    if (s.fatal != Impl::Fatal::None) raiseFatal(L);
    if (s.interruptRequested.load(std::memory_order_relaxed)) {
        recordFatal(L, Impl::Fatal::Interrupted);
        raiseFatal(L);
    }
    if (s.deadline != 0 && monotonicMs() > s.deadline) {
        recordFatal(L, Impl::Fatal::Time);
        raiseFatal(L);
    }
}

// The deadline of a call starting now (0: no time limit).
std::int64_t deadlineFrom(const Limits& limits) {
    return limits.time.count() > 0 ? monotonicMs() + static_cast<std::int64_t>(limits.time.count()) : 0;
}

}  // namespace detail

using detail::allocate;
using detail::countHook;
using detail::displayName;
using detail::errorText;
using detail::messageHandler;
using detail::setup;
using detail::callDriver;
using detail::chunkNameFor;
using detail::kHookEvery;

ScriptRuntime::ScriptRuntime() : impl_(std::make_unique<Impl>()) {}
ScriptRuntime::~ScriptRuntime() = default;

std::unique_ptr<ScriptRuntime> ScriptRuntime::load(const std::string& scriptPath, const Limits& limits,
                                                   std::string* error) {
    std::ifstream f(scriptPath, std::ios::binary);
    if (!f) {
        if (error) *error = scriptPath + ": cannot read the script file";
        return nullptr;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    return loadString(ss.str(), scriptPath, limits, error);
}

std::unique_ptr<ScriptRuntime> ScriptRuntime::loadString(const std::string& source, const std::string& chunkName,
                                                         const Limits& limits, std::string* error) {
    std::unique_ptr<ScriptRuntime> rt(new ScriptRuntime());
    Impl& s = *rt->impl_;
    s.limits = limits;
    s.memReserve = std::max<std::size_t>(1u << 20, limits.memoryBytes / 4);
    s.chunkName = chunkNameFor(chunkName);
    {
        std::string plain = s.chunkName.substr(1);
        std::filesystem::path parent = std::filesystem::path(plain).parent_path();
        s.scriptDir = parent.string();
    }
    auto fail = [&](std::string m) -> std::unique_ptr<ScriptRuntime> {
        if (error) *error = std::move(m);
        return nullptr;
    };
    detail::State* state = &s;
    lua_State* L = lua_newstate(allocate, state);
    if (!L) return fail(displayName(s) + ": cannot create a Lua state (memory limit too small?)");
    s.L = L;
    *static_cast<detail::State**>(lua_getextraspace(L)) = state;
    lua_sethook(L, countHook, LUA_MASKCOUNT, kHookEvery);

    lua_pushcfunction(L, messageHandler);
    lua_pushcfunction(L, setup);
    int st = lua_pcall(L, 0, 0, 1);
    if (st != LUA_OK) return fail(errorText(L, st));
    lua_settop(L, 0);

    st = luaL_loadbufferx(L, source.data(), source.size(), s.chunkName.c_str(), "t");
    if (st != LUA_OK) {
        std::string m = st == LUA_ERRMEM ? errorText(L, st) : std::string(lua_tostring(L, -1));
        return fail(m);
    }
    lua_pushcfunction(L, messageHandler);
    lua_insert(L, 1);
    s.instrUsed = 0;
    s.fatal = Impl::Fatal::None;
    s.memFailed = false;
    s.nativeDepth = 0;
    s.deadline = detail::deadlineFrom(limits);
    st = lua_pcall(L, 0, 0, 1);
    s.deadline = 0;
    if (st != LUA_OK) return fail(errorText(L, st));
    lua_settop(L, 0);
    return rt;
}

bool ScriptRuntime::hasFunction(std::string_view name) const {
    // Protected: pushing the name allocates, and an unprotected Lua error would abort.
    lua_State* L = impl_->L;
    int top = lua_gettop(L);
    lua_pushcfunction(L, detail::lookupFunction);
    lua_pushlightuserdata(L, &name);
    bool ok = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_toboolean(L, -1);
    lua_settop(L, top);
    return ok;
}

CallResult ScriptRuntime::call(std::string_view name, Invocation& invocation) {
    CallResult r;
    Impl& s = *impl_;
    if (!invocation.message) {
        r.ok = false;
        r.error = displayName(s) + ": no message given to " + std::string(name);
        return r;
    }
    if (s.interruptRequested.load(std::memory_order_relaxed)) {
        r.ok = false;
        r.interrupted = true;
        r.error = displayName(s) + ": script interrupted: its runtime is being stopped";
        return r;
    }
    lua_State* L = s.L;
    s.inv = &invocation;
    s.callName = name;
    s.instrUsed = 0;
    s.fatal = Impl::Fatal::None;
    s.deadline = detail::deadlineFrom(s.limits);
    s.memFailed = false;
    s.memWhere.clear();
    s.nativeDepth = 0;
    s.returnedFalse = false;
    int base = lua_gettop(L);
    lua_pushcfunction(L, messageHandler);
    lua_pushcfunction(L, callDriver);
    int st = lua_pcall(L, 0, 0, base + 1);
    if (st != LUA_OK) {
        r.ok = false;
        r.error = errorText(L, st);
        r.interrupted = s.fatal == Impl::Fatal::Interrupted;
    } else {
        r.returnedFalse = s.returnedFalse;
    }
    s.deadline = 0;
    lua_settop(L, base);
    detail::bindMessage(s.boundMsg, nullptr);
    s.inv = nullptr;
    s.callName = {};
    s.nativeDepth = 0;
    if (st == LUA_ERRMEM || s.memFailed) lua_gc(L, LUA_GCCOLLECT, 0);
    return r;
}

std::size_t ScriptRuntime::memoryInUse() const { return impl_->memUsed; }

void ScriptRuntime::interrupt() { impl_->interruptRequested.store(true, std::memory_order_relaxed); }

std::string payloadError(DataType type, std::string_view text) {
    if (type != DataType::Json && type != DataType::Xml) return {};
    // The decoders the scripts use, in a bare state of their own: what passes
    // here is what a script will be given.
    detail::State s;
    s.limits.memoryBytes = (64u << 20) + 32 * text.size();
    s.memReserve = 1u << 20;
    lua_State* L = lua_newstate(allocate, &s);
    if (!L) return {};
    s.L = L;
    *static_cast<detail::State**>(lua_getextraspace(L)) = &s;
    struct Args {
        DataType type;
        std::string_view text;
    } args{type, text};
    lua_pushcfunction(L, [](lua_State* L) -> int {
        const auto* a = static_cast<const Args*>(lua_touserdata(L, 1));
        if (a->type == DataType::Json) detail::jsonDecodePush(L, a->text, "not JSON");
        else detail::xmlDecodePush(L, a->text, "not XML");
        return 0;
    });
    lua_pushlightuserdata(L, &args);
    int st = lua_pcall(L, 1, 0, 0);
    std::string error;
    // Out of memory proves nothing about the text: the scripts have limits of their own.
    if (st != LUA_OK && st != LUA_ERRMEM) {
        const char* m = lua_tostring(L, -1);
        error = m ? m : "cannot be read";
    }
    lua_close(L);
    return error;
}

}  // namespace junction::lua
