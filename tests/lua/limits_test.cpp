// The bounds of a script call: the time limit (in Lua code and inside the
// library functions that loop in C), the standard functions that could run
// long on a small input, and interrupt().
#include "tests/lua/lua_test_util.h"

#include <chrono>
#include <future>

using namespace junction::lua;
using namespace junction::lua::test;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("the time limit stops Lua code that stays under the instruction budget", "[lua][limits]") {
    Limits limits;
    limits.instructions = 1'000'000'000'000;  // never reached here
    limits.time = 500ms;
    Harness h(R"(
        function spin(msg)
            while true do end
        end
        function sneaky(msg)
            -- pcall must not swallow the time limit
            while true do pcall(function() while true do end end) end
        end
        function fine(msg) return msg:get("PID-5.1") == "DOE" end
    )", limits);
    for (const char* fn : {"spin", "sneaky"})
        requireLimitError(h, fn, "script exceeded its time limit (500 ms)", 3 * limits.time);
    // the top-level chunk runs under the time limit too
    std::string err;
    CHECK_FALSE(ScriptRuntime::loadString("while true do end", "transforms/loop.lua", limits, &err));
    CHECK(contains(err, "transforms/loop.lua:1: script exceeded its time limit (500 ms)"));
}

TEST_CASE("a time limit of 0 leaves only the instruction budget", "[lua][limits]") {
    Limits limits;
    limits.time = 0ms;
    limits.instructions = 2'000'000;
    Harness h("function spin(msg) while true do end end", limits);
    CallResult r = boundedCall(h, "spin", 10s);
    CHECK(contains(r.error, "instruction budget exceeded"));
}

TEST_CASE("standard functions that loop in C are bounded", "[lua][limits]") {
    Limits limits;
    limits.time = 500ms;
    limits.memoryBytes = 16u << 20;
    Harness h(R"(
        local function virtual(n) return setmetatable({}, { __len = function() return n end }) end

        -- string.rep: Lua's size check, the memory cap, or no loop at all for empty copies
        function rep_empty(msg) return string.rep("", 1e15) == "" and ("").rep("", 1e15, "") == "" end
        function rep_too_large(msg) return string.rep("x", 1e15) end
        function rep_huge(msg) return string.rep("x", 2^30) end
        function rep_sep(msg) return string.rep("", 2^30, ",") end

        -- table.concat: its elements come from a table (memory cap) or __index
        -- (time limit, instruction budget or memory cap, whichever comes first)
        function concat_big(msg)
            local t = {}
            for i = 1, 1e8 do t[i] = "x" end
            return table.concat(t)
        end
        function concat_lua_index(msg)
            return table.concat(setmetatable({}, { __index = function() return "" end }), "", 1, 1e15)
        end
        function concat_c_index(msg)
            return table.concat(setmetatable({}, { __index = rawlen }), "", 1, 1e15)
        end
        function concat_fine(msg)
            local t = {}
            for i = 1, 100000 do t[i] = i end
            return #table.concat(t, ",") == 588894
        end

        -- string.format: bounded widths, results under the memory cap
        function format_width(msg) return string.format("%100d", 1) end
        function format_grow(msg)
            local s = "x"
            while true do s = string.format("%s%s", s, s) end
        end
        function format_fine(msg)
            return string.format("%099d|%-5s|%q", 7, "ab", "a\n") ~= nil
        end

        -- table functions on a huge range or a lying __len: time limit
        function move_range(msg) table.move({}, 1, 1e15, 2) end
        function insert_len(msg) table.insert(virtual(1e15), 1, "x") end
        function remove_len(msg) table.remove(virtual(1e15), 1) end
        function sort_len(msg) table.sort(virtual(2^30), math.type) end
        function unpack_len(msg) return table.unpack(virtual(1e15)) end
        function table_fine(msg)
            local t = { 5, 3, 1 }
            table.insert(t, 4)
            table.insert(t, 1, 0)
            assert(table.remove(t) == 4 and table.remove(t, 1) == 0)
            table.sort(t)
            assert(table.concat(table.move(t, 1, 3, 2, {}), ",", 2, 4) == "1,3,5")
            return true
        end

        -- gsub calling Lua: instruction budget and time limit
        function gsub_callback(msg)
            return (string.rep("a", 100)):gsub(".", function() while true do end end)
        end

        -- finalizers run with the hooks off: refused
        function gc(msg) setmetatable({}, { __gc = function() while true do end end }) end

        function fine(msg) return msg:get("PID-5.1") == "DOE" end
    )", limits);

    struct Case {
        const char* fn;
        const char* error;  // expected in the error; nullptr: succeeds
    };
    const Case cases[] = {
        {"rep_empty", nullptr},
        {"rep_too_large", "resulting string too large"},
        {"rep_huge", "memory limit exceeded"},
        {"rep_sep", "memory limit exceeded"},
        {"concat_big", "memory limit exceeded"},
        {"concat_lua_index", "exceeded"},  // the instruction budget or the time limit, whichever comes first
        {"concat_c_index", "exceeded"},
        {"concat_fine", nullptr},
        {"format_width", "invalid conversion"},
        {"format_grow", "memory limit exceeded"},
        {"format_fine", nullptr},
        {"move_range", "script exceeded its time limit (500 ms)"},
        {"insert_len", "script exceeded its time limit (500 ms)"},
        {"remove_len", "script exceeded its time limit (500 ms)"},
        {"sort_len", "array too big for the script's memory limit"},
        {"unpack_len", "too many results to unpack"},
        {"table_fine", nullptr},
        {"gsub_callback", "exceeded"},
        {"gc", "__gc metamethod is not allowed"},
    };
    for (const Case& c : cases) {
        if (c.error) {
            requireLimitError(h, c.fn, c.error, 3 * limits.time);
            continue;
        }
        CallResult r = boundedCall(h, c.fn, 3 * limits.time);
        INFO(c.fn << ": " << r.error);
        CHECK(r.ok);
        CHECK_FALSE(r.returnedFalse);
    }
}

TEST_CASE("table.insert/remove/move/concat keep Lua's behaviour and messages", "[lua][limits]") {
    Harness h(R"LUA(
        function example(msg)
            local t = { "a", "b", "c" }
            table.insert(t, "d")
            table.insert(t, 2, "x")
            assert(table.concat(t) == "axbcd")
            assert(table.remove(t, 2) == "x" and table.remove(t) == "d" and table.concat(t) == "abc")
            assert(table.remove({}) == nil and table.remove({}, 0) == nil)
            local ok, err = pcall(table.insert, t, 9, "z")
            assert(not ok and err:find("bad argument #2 to 'table.insert' %(position out of bounds%)"), err)
            ok, err = pcall(function() table.insert(t, 1, 2, 3) end)
            assert(not ok and err:find("wrong number of arguments to 'insert'"), err)
            ok, err = pcall(function() table.remove(t, 7) end)
            assert(not ok and err:find("position out of bounds"), err)
            ok, err = pcall(function() table.insert(nil, 1) end)
            assert(not ok and err:find("bad argument #1 to 'insert' %(table expected, got nil%)"), err)
            ok, err = pcall(function() table.move({}, -1, math.maxinteger, 1) end)
            assert(not ok and err:find("too many elements to move"), err)
            ok, err = pcall(function() table.move({ 1 }, 1, 2, math.maxinteger) end)
            assert(not ok and err:find("destination wrap around"), err)
            ok, err = pcall(function() table.sort({ 3, 1, 2 }, 5) end)
            assert(not ok and err:find("bad argument #2 to 'sort'"), err)
            -- overlapping moves, in both directions, and into another table
            local m = { 1, 2, 3, 4, 5 }
            table.move(m, 1, 4, 2)
            assert(table.concat(m) == "11234")
            table.move(m, 2, 5, 1)
            assert(table.concat(m) == "12344")
            assert(table.concat(table.move({ 1, 2 }, 1, 2, 3, { 9, 9 })) == "9912")
            -- metamethods are honoured
            local log = {}
            local proxy = setmetatable({}, {
                __index = function(_, k) return "v" .. k end,
                __newindex = function(_, k, v) log[#log + 1] = k .. "=" .. tostring(v) end,
                __len = function() return 2 end,
            })
            table.insert(proxy, 1, "new")
            assert(table.concat(log, " ") == "3=v2 2=v1 1=new", table.concat(log, " "))
            assert(table.concat({ 1, 2, 3 }, ", ", 2, 3) == "2, 3" and table.concat({}, "x", 3, 1) == "")
            assert(table.concat({ 1, 2.5, "x" }) == "12.5x" and table.concat({ "a" }, ",", 1, 1) == "a")
            ok, err = pcall(function() return table.concat({ 1, 2, {} }, ",") end)
            assert(not ok and err:find("invalid value %(table%) at index 3 in table for 'concat'"), err)
            ok, err = pcall(function() return table.concat({ 1 }, ",", 1, 2) end)
            assert(not ok and err:find("invalid value %(nil%) at index 2 in table for 'concat'"), err)
            assert(table.concat(setmetatable({}, { __index = function(_, k) return k * 10 end,
                                                   __len = function() return 3 end }), "-") == "10-20-30")
            local sorted = setmetatable({}, { __index = { 3, 1, 2 }, __len = function() return 3 end })
            table.sort(sorted)
            assert(rawget(sorted, 1) == 1 and rawget(sorted, 3) == 3)
        end
    )LUA");
    h.ok("example");
}

TEST_CASE("interrupt() stops a running call at once and every later one", "[lua][limits]") {
    Limits limits;
    limits.time = 0ms;  // no time limit
    limits.instructions = 1'000'000'000'000;
    limits.patternSteps = 0;
    const char* script = R"(
        function spin(msg) while true do end end
        function pattern(msg) return (string.rep("a", 40)):find(("a*"):rep(10) .. "b") end
        function fine(msg) return true end
    )";
    Harness h(script, limits);
    for (const char* fn : {"spin", "pattern"}) {
        Harness g(script, limits);
        g.ok("fine");
        auto future = std::async(std::launch::async, [&g, fn] { return g.call(fn); });
        CHECK(future.wait_for(200ms) == std::future_status::timeout);  // it runs
        g.rt->interrupt();
        REQUIRE(future.wait_for(2s) == std::future_status::ready);
        CallResult r = future.get();
        INFO(fn << ": " << r.error);
        CHECK_FALSE(r.ok);
        CHECK(r.interrupted);
        CHECK(contains(r.error, "script interrupted"));
        CHECK(contains(r.error, "transforms/test.lua:"));
        r = g.call("fine");
        CHECK_FALSE(r.ok);
        CHECK(r.interrupted);
    }
    h.ok("fine");  // another runtime is not affected
}
