// The scripts' string.find/match/gmatch/gsub (engine/lua/lua_pattern.cpp)
// against Lua's own (a plain state of the system's liblua 5.4): same results
// and same error messages on several hundred patterns, and a bound on the
// patterns that backtrack for minutes in Lua's.
#include "tests/lua/lua_test_util.h"

#include <lua5.4/lua.hpp>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <future>
#include <sstream>

using namespace junction::lua;
using namespace junction::lua::test;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A Lua string literal for any bytes.
std::string quote(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 32 || c > 126) {
            out += "\\" + std::to_string(c);
            out += "\\z";  // ends the decimal escape
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

// Patterns built from pieces (valid and malformed ones), the same on every run.
std::vector<std::string> randomPatterns(int count) {
    const char* pieces[] = {"a",     "b",      "c",     ".",      "%a",    "%d",     "%w",    "%s",    "%p",
                            "%A",    "%l",     "%u",    "%x",     "%c",    "%g",     "%z",    "[ab]",  "[^a]",
                            "[a-c]", "[%d.]",  "[%]]",  "[a-]",   "[^%s]", "(",      ")",     "()",    "%1",
                            "%2",    "%b()",   "%bab",  "%f[%w]", "%f[%W]", "^",     "$",     "*",     "+",
                            "-",     "?",      "%",     "[",      "%.",    "%%",     "x",     " ",     "%f[a]",
                            "%b",    "[]]",    "[^]]",  "%0",     "=",     ";",      "|"};
    const std::size_t n = sizeof pieces / sizeof pieces[0];
    std::uint64_t seed = 0x9e3779b97f4a7c15ull;
    auto next = [&] {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        return seed;
    };
    std::vector<std::string> out;
    for (int i = 0; i < count; ++i) {
        std::string p;
        int len = 1 + static_cast<int>(next() % 6);
        for (int k = 0; k < len; ++k) p += pieces[next() % n];
        out.push_back(p);
    }
    return out;
}

// The driver run by both Lua states: every case's results (or error) as lines.
std::string driver() {
    std::vector<std::string> patterns = {
        "", "a", "abc", ".", "..", "a*", "a+", "a-", "a?", "a*b", "a-b", "a+b", "a?b", "^a", "^a*", "a$", "^$", "$",
        "^", "%a+", "%d+", "%w+", "%s+", "%p", "%S+", "%D+", "%W", "%A%a", "%l%u", "%x+", "%c", "%g+", "%z", "%Z+",
        "[abc]+", "[^abc]+", "[a-z]+", "[%a_][%w_]*", "[%]]", "[]]", "[^]]+", "[a-]", "[-a]+", "[%-]", "[.]",
        "(a)", "(a*)", "(a*)(b)", "((a)(b))", "()", "()a()", "(a)%1", "(%a+) %1", "(.)%1", "()(a)%2", "(%d+)%-(%d+)",
        "%b()", "%b[]", "%bab", "%b\"\"", "%b((", "%f[%w]%w+", "%f[%W]", "%f[%a]%a+%f[%A]", "%f[^%z]", "%f[%z]",
        "(h)(e)(l)(l)(o)", "key=(%w+)", "(%w+)=(%w+)", "%s*(.-)%s*$", "^%s*(.-)%s*$", "(.-)%s", "[^|]*", "([^|]*)|",
        "%.", "%%", "a.-b", "a.*b", ".-", ".*", "(.-)$", "x*", "%d?%d?%d", "^(%d+)$", "\xc3\xa9", "[\xc3\xa9]+",
        "[\x80-\xff]+", "[%z]", "MSH|(.-)|", "^MSH", "(%u%u%u)|", "%^~", "[%^]", "^%^",
        // malformed
        "%", "[a", "[^", "(", ")", "a)", "(()", "%b", "%ba", "%f", "%fa", "%1", "(a)%2", "%0", "(a%1)", "[%",
        "a%", "(()%1)", "[a-%]",
    };
    patterns.push_back(std::string("%a*\0", 4));
    patterns.push_back(std::string("\0", 1));
    patterns.push_back(std::string("[\0a]+", 5));
    for (auto& p : randomPatterns(260)) patterns.push_back(p);
    std::vector<std::string> subjects = {"",
                                         "a",
                                         "aaa",
                                         "abcabc",
                                         "hello world",
                                         "(foo(bar))baz[x]",
                                         "key=val; k2=v2",
                                         std::string("a\0b\0c", 5),
                                         "  12-34 x-5  ",
                                         "aab ab aaab",
                                         "MSH|^~\\&|RIS|CITY",
                                         "caf\xc3\xa9 \xc3\xbc",
                                         "\"quoted\" ab"};
    std::ostringstream lua;
    lua << "local P = {";
    for (auto& p : patterns) lua << quote(p) << ",";
    lua << "}\nlocal S = {";
    for (auto& s : subjects) lua << quote(s) << ",";
    lua << "}\n";
    lua << R"LUA(
local out = {}
local function show(...)
  local t = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    t[#t + 1] = type(v) == "string" and string.format("%q", v) or tostring(v)
  end
  return table.concat(t, ",")
end
local function try(f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then return "error: " .. tostring(r[2]) end
  return show(table.unpack(r, 2, r.n))
end
local function all(s, p, init)
  local t, n = {}, 0
  for a, b, c in string.gmatch(s, p, init) do
    n = n + 1
    t[n] = show(a, b, c)
    if n > 60 then break end
  end
  return table.concat(t, " ")
end
local calls = 0
local function fn(...)
  calls = calls + 1
  if calls % 3 == 0 then return nil end
  if calls % 5 == 0 then return false end
  return "<" .. table.concat({...}, "+") .. ">"
end
local repls = { "<%0>", "%1-%1", "%%", "", "x", 7, { a = "A", hello = "HI", ["1"] = "one" }, fn, "%2", "%", "%x", "%9" }
local inits = { nil, 1, 2, -3, 0, 100 }
local cases = 0
for pi, p in ipairs(P) do
  for si, s in ipairs(S) do
    local key = pi .. "/" .. si .. " "
    out[#out + 1] = key .. "find " .. try(function() return string.find(s, p) end)
    out[#out + 1] = key .. "match " .. try(function() return string.match(s, p) end)
    out[#out + 1] = key .. "gmatch " .. try(all, s, p)
    out[#out + 1] = key .. "gsub " .. try(function() return string.gsub(s, p, repls[(pi + si) % #repls + 1]) end)
    cases = cases + 4
    if si % 3 == pi % 3 then
      for ii = 1, 6 do
        local init = inits[ii]
        out[#out + 1] = key .. "find@" .. tostring(init) .. " " .. try(function() return s:find(p, init) end)
        out[#out + 1] = key .. "plain@" .. tostring(init) .. " " .. try(function() return s:find(p, init, true) end)
        out[#out + 1] = key .. "match@" .. tostring(init) .. " " .. try(function() return s:match(p, init) end)
        out[#out + 1] = key .. "gmatch@" .. tostring(init) .. " " .. try(all, s, p, init)
        cases = cases + 4
      end
      for ri, r in ipairs(repls) do
        for _, max in ipairs({ 0, 1, 2, -1 }) do
          out[#out + 1] = key .. "gsub" .. ri .. "/" .. max .. " " .. try(function() return s:gsub(p, r, max) end)
          cases = cases + 1
        end
      end
    end
  end
end
-- argument errors and odd arguments
local odd = {
  function() return string.find() end,
  function() return string.find("a") end,
  function() return string.find("a", "a", "x") end,
  function() return ("abc"):find("b", 1.0) end,
  function() return ("abc"):find(5) end,
  function() return ("abc"):find("b", 1.5) end,
  function() return string.match("abc", {}) end,
  function() return string.gmatch("abc") end,
  function() return string.gsub("abc", "b") end,
  function() return string.gsub("abc", "b", true) end,
  function() return string.gsub("abc", "b", "x", "y") end,
  function() return string.gsub("abc", "b", "x", 1.5) end,
  function() return string.gsub("abc", "(b)", function(x) return {} end) end,
  function() return string.gsub("abc", "b", { b = true }) end,
  function() return string.gsub("abc", "b", { b = 4.5 }) end,
  function() return string.gsub("abc", "()", "%1") end,
  function() return string.gsub("hello world", "o", "0", 1) end,
  function() return string.gsub("abc", "", "-") end,
  function() return string.gsub("abc", "^", "-") end,
  function() return string.gsub("abc", "$", "-") end,
  function() return string.gsub("abc", ".-", "-") end,
  function() return string.find(string.rep("a", 300), string.rep("(a)", 33)) end,
  function() return string.find(string.rep("a", 300), string.rep("a?", 250) .. "b") end,
  function() return string.match(string.rep("(", 60) .. string.rep(")", 60), string.rep("%b()", 3)) end,
  function() return string.find("x", string.rep("(", 250) .. "x" .. string.rep(")", 250)) end,
  function() return string.find("abc", "b", 2^53) end,
  function() return string.find("abc", "b", -2^53) end,
  function() return string.find("abc", "", 4) end,
  function() return string.find("abc", "", 5) end,
  function() return string.find("", "") end,
  function() return string.match("abc", "()", 4) end,
  function() return string.find("a.b", ".", 1, true) end,
  function() return string.find("a+b", "+", 1, 1) end,
  function() return string.find("aaab", "aab", 1, false) end,
}
for i, f in ipairs(odd) do
  out[#out + 1] = "odd " .. i .. " " .. try(f)
  cases = cases + 1
end
return cases .. "\n" .. table.concat(out, "\n")
)LUA";
    return lua.str();
}

// The lines of a driver's output. An error raised for Lua code names the
// chunk and line of the caller, which differ between the two runs: only that
// there is a position is compared.
std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    std::string line;
    while (std::getline(in, line)) {
        std::size_t at = line.find(" error: ");
        if (at != std::string::npos) {
            at += 8;
            for (std::size_t c = line.find(':', at); c != std::string::npos; c = line.find(':', c + 1)) {
                std::size_t d = c + 1;
                while (d < line.size() && std::isdigit(static_cast<unsigned char>(line[d]))) ++d;
                if (d > c + 1 && line.compare(d, 2, ": ") == 0) {
                    line.replace(at, d + 2 - at, "(position) ");
                    break;
                }
            }
        }
        out.push_back(line);
    }
    return out;
}

// Runs the driver in a plain state with Lua's standard library.
std::string runStock(const std::string& source) {
    lua_State* L = luaL_newstate();
    luaL_openlibs(L);
    std::string result;
    if (luaL_loadstring(L, source.c_str()) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
        result = std::string("driver failed: ") + lua_tostring(L, -1);
    else
        result = lua_tostring(L, -1);
    lua_close(L);
    return result;
}

// Runs the driver as a script's function; it returns the text.
std::string runScript(const std::string& source) {
    Limits generous;
    generous.instructions = 10'000'000'000;
    generous.time = std::chrono::minutes(2);
    Harness h("function example(msg)\n" + source + "\nend\n", generous);
    CallResult r = h.call("example");
    if (!r.ok) return "driver failed: " + r.error;
    return h.payload.text;
}

}  // namespace

TEST_CASE("string.find/match/gmatch/gsub behave exactly like Lua 5.4's", "[lua][pattern]") {
    const std::string source = driver();
    std::vector<std::string> stock = lines(runStock(source));
    std::vector<std::string> ours = lines(runScript(source));
    REQUIRE_FALSE(stock.empty());
    INFO("stock: " << stock.front() << "\nours: " << ours.front());
    REQUIRE(stock.front().rfind("driver failed", 0) == std::string::npos);
    REQUIRE(ours.front().rfind("driver failed", 0) == std::string::npos);
    CHECK(std::stoi(stock.front()) > 5000);  // calls compared
    REQUIRE(stock.size() == ours.size());
    int mismatches = 0;
    for (std::size_t i = 1; i < stock.size(); ++i) {
        if (stock[i] == ours[i]) continue;
        if (++mismatches <= 10) {
            UNSCOPED_INFO("Lua:  " << stock[i]);
            UNSCOPED_INFO("ours: " << ours[i]);
        }
    }
    CHECK(mismatches == 0);
    // the table covers errors and captures, not only plain matches
    std::size_t errors = 0, replaced = 0;
    for (const auto& l : stock) {
        if (contains(l, " error: ")) ++errors;
        if (contains(l, " gsub") && contains(l, "<")) ++replaced;
    }
    CHECK(errors > 300);
    CHECK(replaced > 300);
}

namespace {

const char* kCatastrophic = R"(
    function catastrophic(msg)
        local s = string.rep("a", 40)
        return s:find(("a*"):rep(10) .. "b")
    end
    function catastrophic_gsub(msg)
        return (string.rep("a", 40)):gsub(("a*"):rep(10) .. "b", "x")
    end
    function catastrophic_gmatch(msg)
        for x in (string.rep("a", 40)):gmatch(("a-"):rep(10) .. "b") do end
    end
    function catastrophic_caught(msg)
        -- the time limit cannot be caught; the step budget can
        while true do pcall(string.match, string.rep("a", 40), ("a*"):rep(10) .. "b") end
    end
    function fine(msg)
        assert(("MRN-123"):match("%d+") == "123")
        assert(msg:get("PID-5.1"):find("^DO") == 1)
        return true
    end
)";

}  // namespace

TEST_CASE("a catastrophic pattern fails on the step budget and the next message works", "[lua][pattern][limits]") {
    Limits limits;  // the defaults: 5 s, 100 million steps
    Harness h(kCatastrophic, limits);
    for (const char* fn : {"catastrophic", "catastrophic_gsub", "catastrophic_gmatch"})
        requireLimitError(h, fn, "pattern too complex (more than 100000000 matching steps)", 3 * limits.time);
}

TEST_CASE("the time limit holds inside the pattern matcher", "[lua][pattern][limits]") {
    Limits limits;
    limits.patternSteps = 0;  // no step limit: the time limit stops it
    limits.time = std::chrono::milliseconds(1000);
    Harness h(kCatastrophic, limits);
    for (const char* fn : {"catastrophic", "catastrophic_caught"}) {
        CallResult r = requireLimitError(h, fn, "script exceeded its time limit (1 s)", 3 * limits.time);
        CHECK_FALSE(r.interrupted);
    }
}

TEST_CASE("quadratic plain searches and long classes are bounded too", "[lua][pattern][limits]") {
    Limits limits;
    limits.time = std::chrono::milliseconds(1000);
    Harness h(R"LUA(
        function plain(msg)
            local s = string.rep("a", 4000000)
            local needle = string.rep("a", 1000000) .. "b"
            return s:find(needle, 1, true) == nil
        end
        function long_class(msg)
            local class = "[" .. string.rep("bc", 200000) .. "]"
            return (string.rep("a", 100000) .. "x"):find(class .. "*" .. "x") ~= nil
        end
        function balance(msg)
            return (string.rep("(", 200000)):gsub("%b()", "") ~= nil
        end
    )LUA", limits);
    CallResult r = boundedCall(h, "plain", 3 * limits.time);
    INFO(r.error);
    CHECK(r.ok);  // a linear-time search
    for (const char* fn : {"long_class", "balance"}) {
        r = boundedCall(h, fn, 3 * limits.time);
        INFO(fn << ": " << r.error);
        if (!r.ok)
            CHECK((contains(r.error, "pattern too complex") || contains(r.error, "time limit")));
    }
}
