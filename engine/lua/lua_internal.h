// Internal to engine/lua: the runtime state shared by the Lua modules
// (script_runtime.cpp, lua_hl7.cpp, lua_json.cpp, lua_xml.cpp, shared_map.cpp,
// lua_util.cpp, lua_dicom.cpp, lua_worklist.cpp, lua_pattern.cpp, lua_sandbox.cpp). Not
// included outside engine/lua.
//
// Error discipline: the Debian Lua library is built as C, so a Lua error is a
// longjmp. A longjmp must never cross a C++ frame that owns objects with
// destructors. C functions therefore do their C++ work inside `protect()`,
// which turns C++ exceptions into Lua errors after the C++ frames are gone,
// and check their Lua arguments before creating C++ objects. Allocations made
// while native code runs get a grace reserve above the memory cap (see
// NativeScope) so that pushing a result practically never fails mid-frame.
#pragma once

#include <lua.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "engine/lua/script.h"

namespace junction::lua {

// ------------------------------------------------------------ runtime state

namespace detail {

// ScriptRuntime::Impl derives from this (script_runtime.cpp).
struct State {
    lua_State* L = nullptr;
    Limits limits;
    std::string chunkName;   // "@transforms/x.lua"
    std::string scriptDir;   // "transforms" ("" = current directory)

    // memory accounting (see allocator in script_runtime.cpp)
    std::size_t memUsed = 0;
    std::size_t memReserve = 0;  // grace above the cap while native code runs
    int nativeDepth = 0;
    bool memFailed = false;      // an allocation was refused during this call
    std::string memWhere;        // "file:line" where it was refused

    // instruction budget, time limit, interruption (see checkLimits)
    std::uint64_t instrUsed = 0;
    std::int64_t deadline = 0;  // monotonicMs() past which the call fails (0: none)
    std::atomic<bool> interruptRequested{false};
    // A limit error that pcall cannot catch: once set, every check and every
    // pcall of the call re-raises `fatalError` ("file:line: ...").
    enum class Fatal { None, Instructions, Time, Interrupted } fatal = Fatal::None;
    std::string fatalError;

    // the current call
    Invocation* inv = nullptr;
    std::string_view callName;
    int msgRef = LUA_NOREF;     // the reusable msg userdata bound to the payload
    void* boundMsg = nullptr;   // its object (never moves; anchored by msgRef)
    bool returnedFalse = false;
    std::vector<std::pair<std::string, int>> functionRefs;  // name → registry ref
};

using Impl = State;

inline Impl& runtime(lua_State* L) { return **static_cast<Impl**>(lua_getextraspace(L)); }

// While alive, allocations may use the grace reserve above the memory cap.
struct NativeScope {
    Impl& s;
    explicit NativeScope(lua_State* L) : s(runtime(L)) { ++s.nativeDepth; }
    ~NativeScope() { --s.nativeDepth; }
    NativeScope(const NativeScope&) = delete;
    NativeScope& operator=(const NativeScope&) = delete;
};

// An error raised from C++ code, reported to Lua as is.
struct LuaError : std::exception {
    std::string message;
    explicit LuaError(std::string m) : message(std::move(m)) {}
    const char* what() const noexcept override { return message.c_str(); }
};

// Runs `f` (returning the number of Lua results) and converts a C++ exception
// into a Lua error raised after `f`'s frames are gone. The message gets the
// caller's "file:line: " prefix (luaL_error).
template <class F>
int protect(lua_State* L, F&& f) {
    char buf[1024];
    buf[0] = 0;
    int n = 0;
    bool failed = false;
    {
        NativeScope scope(L);
        try {
            n = f();
        } catch (const std::exception& e) {
            failed = true;
            std::snprintf(buf, sizeof buf, "%s", e.what());
        } catch (...) {
            failed = true;
            std::snprintf(buf, sizeof buf, "unexpected C++ exception");
        }
    }
    if (failed) return luaL_error(L, "%s", buf);
    return n;
}

inline std::string_view checkView(lua_State* L, int idx) {
    std::size_t n = 0;
    const char* s = luaL_checklstring(L, idx, &n);
    return {s, n};
}

inline void pushView(lua_State* L, std::string_view s) { lua_pushlstring(L, s.data(), s.size()); }

// The string (or number) `key` of the table at `table`, "" when nil; a
// LuaError "WHAT must be a string, not a TYPE" otherwise. Call it inside protect().
std::string stringField(lua_State* L, int table, const char* key, const std::string& what);

// "file:line" of the Lua function at `level` (1 = the caller of the running C
// function), or the first level with a line.
std::string whereString(lua_State* L, int level);

// ------------------------------------------------------------ limits

// A monotonic clock in milliseconds, cheap enough to read often (coarse: a few
// milliseconds of resolution).
std::int64_t monotonicMs();

// Raises the fatal limit error of the call (instruction budget, time limit,
// interruption) when one is due, else returns. For C functions that run long
// loops: call it every few thousand iterations, from a frame without C++
// objects that need destruction (it may longjmp).
void checkLimits(lua_State* L);

// Makes the shared metatable at `idx` unchangeable by scripts: getmetatable()
// on its objects returns a read-only view of it; `name` says how a script
// reaches it ("getmetatable('')") in the error a change gets.
void protectMetatable(lua_State* L, int idx, const char* name);

// ------------------------------------------------------------ modules
// Each opener runs once per runtime inside the protected set-up; it creates
// its metatables and sets its globals.
void openHl7(lua_State* L);     // hl7 module, msg and node metatables
void openJson(lua_State* L);    // json module
void openXml(lua_State* L);     // xml module
void openMaps(lua_State* L);    // maps.channel/global/response
void openUtil(lua_State* L);    // uuid, now, log, route, filter, ack
void openDicom(lua_State* L);   // dicom.uid/keywords/json/wrap_pdf/text_sr
void openWorklist(lua_State* L);  // worklist.upsert/complete/cancel/set_status/find
void openOrthanc(lua_State* L);   // orthanc.get/post/put/delete/find/preview/file/qido/server
void openStore(lua_State* L);     // store.get/put/delete/keys
void openVars(lua_State* L);      // vars.NAME: the channel's vars (read-only)
void openHttp(lua_State* L);      // http.get/post/put/patch/delete/multipart/urlencode, base64
// string.find/match/gmatch/gsub with a step budget (lua_pattern.cpp)
void openPatterns(lua_State* L);
// Bounded replacements of standard functions that can loop long inside C
// (string.rep, table.insert/remove/move/concat/sort, setmetatable, rawset)
// (lua_sandbox.cpp).
void openGuards(lua_State* L);
// Makes the library tables read-only (lua_sandbox.cpp); runs after every opener.
void protectLibraries(lua_State* L);

// --- hl7 glue for the runtime (lua_hl7.cpp)
// Creates the reusable msg userdata, anchors it in the registry (*ref) and
// returns its object for bindMessage.
void* newBoundMessage(lua_State* L, int* ref);
// Binds that object to `m` (nullptr unbinds); nodes of the previous binding
// become invalid. Pure C++, never raises.
void bindMessage(void* obj, hl7::Message* m);
// The hl7::Message of a msg object at `idx`, or nullptr if it is not one.
hl7::Message* toMessage(lua_State* L, int idx);
// True if the value at `idx` is an HL7 node (segment, field, ...).
bool isNode(lua_State* L, int idx);

// --- json glue (lua_json.cpp)
// Decode `text` and push the value; raises a Lua error on bad input.
void jsonDecodePush(lua_State* L, std::string_view text, const char* what);
// Encode the value at `idx` (throws LuaError).
std::string jsonEncode(lua_State* L, int idx, bool pretty);

// --- xml glue (lua_xml.cpp)
// Parse and push the table tree (raises a Lua error on bad input).
void xmlDecodePush(lua_State* L, std::string_view text, const char* what);
// Encode the table tree at `idx` (throws LuaError).
std::string xmlEncode(lua_State* L, int idx);

// ------------------------------------------------------------ shared values

// A deep copy of a Lua value, storable outside any lua_State.
struct Value;
using Table = std::vector<std::pair<Value, Value>>;
struct Value {
    std::variant<std::monostate, bool, lua_Integer, lua_Number, std::string, std::shared_ptr<const Table>> v;
    bool isNil() const { return v.index() == 0; }
};

// Copies the Lua value at `idx` (throws LuaError on functions, userdata, cycles).
Value toValue(lua_State* L, int idx);
void pushValue(lua_State* L, const Value& v);
std::string valueToJson(const Value& v);

}  // namespace detail

struct SharedMap::Impl {
    mutable std::mutex mu;
    std::map<std::string, detail::Value, std::less<>> values;
};

}  // namespace junction::lua
