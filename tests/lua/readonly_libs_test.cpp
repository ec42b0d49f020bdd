// The library tables are read-only: one message cannot change the functions
// the next one sees; scripts' own globals still work and persist.
#include "tests/lua/lua_test_util.h"

using namespace junction::lua;
using namespace junction::lua::test;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

const char* kScript = R"LUA(
    function assign_rep(msg) string.rep = nil end
    function replace_upper(msg) string.upper = function() return "x" end end
    function delete_upper(msg) string.upper = nil end
    function new_field(msg) string.shout = function(s) return s:upper() .. "!" end end
    function through_a_local(msg) local s = string; s.format = tostring end
    function meta_index(msg) getmetatable("").__index = { upper = function() return "x" end } end
    function meta_field(msg) getmetatable("").__add = function() return 0 end end
    function meta_index_field(msg) getmetatable("").__index.upper = nil end
    function raw(msg) rawset(string, "upper", function() return "x" end) end
    function raw_meta(msg) rawset(getmetatable(""), "__index", {}) end
    function set_meta(msg) setmetatable(string, { __index = function() return tostring end }) end
    function table_lib(msg) table.insert = nil end
    function table_insert_into(msg) table.insert(math, 1) end
    function math_lib(msg) math.floor = function() return 0 end end
    function utf8_lib(msg) utf8.char = nil end
    function json_lib(msg) json.encode = nil end
    function hl7_lib(msg) hl7.parse = nil end
    function json_array_meta(msg) getmetatable(json.array()).__gc = print end
    function env_of_load(msg) load("upper = nil", "@transforms/test.lua", "t", string)() end

    function check(msg)
        assert(("x"):upper() == "X" and string.upper("y") == "Y")
        assert(string.rep("ab", 2) == "abab" and string.format("%d", 5) == "5")
        assert(string.shout == nil)
        assert(getmetatable("").__index == string and getmetatable("").__add ~= nil)
        assert(("10") + 1 == 11)
        assert(table.insert and math.floor(1.5) == 1 and utf8.char(65) == "A")
        assert(json.encode(json.array()) == "[]" and hl7.parse ~= nil)
        -- pairs over a library lists its functions
        local names = {}
        for k, v in pairs(string) do names[#names + 1] = k end
        table.sort(names)
        assert(#names == 17, #names)
        assert(table.concat(names, " "):find("find format gmatch gsub"))
        local m = 0
        for k, v in pairs(math) do m = m + 1 end
        assert(m > 20)
        return true
    end

    -- the script's own globals: set, changed and kept across calls
    count = 0
    function own_globals(msg)
        count = count + 1
        helper = helper or function(x) return x * 2 end
        local string = { upper = function() return "mine" end }  -- shadowing with a local is fine
        assert(string.upper("a") == "mine")
    end
    function read_count(msg) return tostring(count) .. "/" .. tostring(helper(21)) end
)LUA";

}  // namespace

TEST_CASE("library tables are read-only: a change fails and the next message sees the originals", "[lua][sandbox]") {
    Harness h(kScript);
    h.ok("check");
    for (const char* fn : {"assign_rep", "replace_upper", "delete_upper", "new_field", "through_a_local", "meta_index",
                           "meta_field", "meta_index_field", "raw", "raw_meta", "set_meta", "table_lib",
                           "table_insert_into", "math_lib", "utf8_lib", "json_lib", "hl7_lib", "json_array_meta",
                           "env_of_load"}) {
        CallResult r = h.call(fn);
        INFO(fn << ": " << r.error);
        CHECK_FALSE(r.ok);
        CHECK(contains(r.error, "transforms/test.lua:"));
        bool named = contains(r.error, "read-only") || contains(r.error, "protected metatable");
        CHECK(named);
        CallResult c = h.call("check");
        INFO("after " << fn << ": " << c.error);
        CHECK(c.ok);
        CHECK_FALSE(c.returnedFalse);
    }
    CallResult r = h.call("assign_rep");
    CHECK(contains(r.error, "transforms/test.lua:2: cannot assign string.rep: the library tables are read-only"));
}

TEST_CASE("scripts' own globals still work and persist across messages", "[lua][sandbox]") {
    Harness h(kScript);
    h.ok("own_globals");
    h.ok("own_globals");
    h.payload = hl7Payload();
    h.ok("read_count");
    CHECK(h.payload.text == "2/42");
}
