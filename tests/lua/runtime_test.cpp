#include "tests/lua/lua_test_util.h"

#include <filesystem>

using namespace junction::lua;
using namespace junction::lua::test;

TEST_CASE("a loaded script's functions are called with the message", "[lua][runtime]") {
    Harness h(R"(
        function transform(msg)
            return true
        end
        function reject(msg) return false end
        local n = 0
        function count(msg) n = n + 1; return n end
    )");
    CHECK(h.rt->hasFunction("transform"));
    CHECK_FALSE(h.rt->hasFunction("missing"));
    CHECK_FALSE(h.rt->hasFunction("n"));
    CallResult r = h.call("transform");
    CHECK(r.ok);
    CHECK_FALSE(r.returnedFalse);
    r = h.call("reject");
    CHECK(r.ok);
    CHECK(r.returnedFalse);
    r = h.call("missing");
    CHECK_FALSE(r.ok);
    CHECK(r.error.find("transforms/test.lua") != std::string::npos);
    CHECK(r.error.find("missing") != std::string::npos);
    CHECK(h.rt->memoryInUse() > 0);
}

namespace {
std::string scriptPath(const std::string& name) { return std::string(JUNCTION_SOURCE_DIR) + "/tests/lua/scripts/" + name; }
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("sandbox: only base, string, table, math, utf8", "[lua][sandbox]") {
    Harness h(R"(
        function check(msg)
            assert(io == nil, "io")
            assert(os == nil, "os")
            assert(debug == nil, "debug")
            assert(package == nil, "package")
            assert(loadfile == nil, "loadfile")
            assert(dofile == nil, "dofile")
            assert(coroutine == nil, "coroutine")
            assert(type(string.format) == "function")
            assert(type(table.concat) == "function")
            assert(type(math.floor) == "function")
            assert(type(utf8.char) == "function")
            assert(type(load) == "function")
            assert(type(require) == "function")
            -- load of text works, with the global environment by default
            local f = assert(load("return 1 + 1"))
            assert(f() == 2)
            local g = assert(load("return x", "chunk", "t", { x = 5 }))
            assert(g() == 5)
            -- load of bytecode is refused, whatever mode is asked for
            local bc = string.dump(function() return 1 end)
            local ok, err = load(bc, "bc", "b")
            assert(ok == nil and err:find("binary"), tostring(err))
            ok, err = load(bc)
            assert(ok == nil and err:find("binary"), tostring(err))
        end
    )");
    h.ok("check");
}

TEST_CASE("sandbox: require loads only from the script's folder", "[lua][sandbox]") {
    std::string err;
    auto rt = ScriptRuntime::load(scriptPath("failing.lua"), {}, &err);
    INFO(err);
    REQUIRE(rt);
    Payload p = hl7Payload();
    Invocation inv;
    inv.message = &p;
    inv.channelMap = std::make_shared<SharedMap>();
    inv.globalMap = std::make_shared<SharedMap>();
    CallResult r = rt->call("uses_require", inv);
    INFO(r.error);
    CHECK(r.ok);

    Harness h(R"(
        function outside(msg) return require("../secrets") end
        function slash(msg) return require("sub/codes") end
        function absolute(msg) return require("/etc/passwd") end
        function dots(msg) return require("..helpers") end
        function missing(msg) return require("nope") end
        function broken(msg) return require("broken_module") end
        function ok(msg) return require("helpers").greet("a") == "hello a" end
        function failing(msg) return require("failing_module") end
    )", {}, scriptPath("inline.lua"));
    for (const char* fn : {"outside", "slash", "absolute", "dots"}) {
        CallResult rr = h.call(fn);
        INFO(fn << ": " << rr.error);
        CHECK_FALSE(rr.ok);
        CHECK(contains(rr.error, "not allowed"));
        CHECK(contains(rr.error, "inline.lua:"));
    }
    CallResult m = h.call("missing");
    CHECK_FALSE(m.ok);
    CHECK(contains(m.error, "not found"));
    CallResult b = h.call("broken");
    CHECK_FALSE(b.ok);
    CHECK(contains(b.error, "broken_module.lua:1:"));
    h.ok("ok");
    for (int i = 0; i < 2; ++i) {  // a module whose top level fails is not cached
        CallResult fm = h.call("failing");
        CHECK_FALSE(fm.ok);
        CHECK(contains(fm.error, "failing_module.lua:2: module failed at load"));
    }
}

TEST_CASE("errors carry file:line", "[lua][errors]") {
    std::string err;
    auto rt = ScriptRuntime::load(scriptPath("syntax_error.lua"), {}, &err);
    CHECK_FALSE(rt);
    INFO(err);
    CHECK(contains(err, "syntax_error.lua:5:"));

    rt = ScriptRuntime::load(scriptPath("failing.lua"), {}, &err);
    REQUIRE(rt);
    Payload p = hl7Payload();
    Invocation inv;
    inv.message = &p;
    CallResult r = rt->call("transform", inv);
    CHECK_FALSE(r.ok);
    INFO(r.error);
    CHECK(contains(r.error, "failing.lua:4:"));
    CHECK(contains(r.error, "attempt to index a nil value"));

    CHECK_FALSE(ScriptRuntime::load(scriptPath("does_not_exist.lua"), {}, &err));
    CHECK(contains(err, "does_not_exist.lua"));

    // errors at load time (top-level code)
    CHECK_FALSE(ScriptRuntime::loadString("local a = 1\nerror('boom')", "transforms/top.lua", {}, &err));
    CHECK(err == "transforms/top.lua:2: boom");

    Harness h(R"(
        function plain(msg) error("plain failure") end
        function level0(msg) error("no position", 0) end
        function tableerr(msg) error({ code = 1 }) end
        function cfunc(msg) return string.rep() end
        function hl7path(msg) return msg:get("bad path") end
    )");
    CallResult e = h.call("plain");
    CHECK(e.error == "transforms/test.lua:2: plain failure");
    e = h.call("level0");
    CHECK(e.error == "transforms/test.lua:3: no position");
    e = h.call("tableerr");
    CHECK(contains(e.error, "transforms/test.lua:4:"));
    CHECK(contains(e.error, "table value"));
    e = h.call("cfunc");
    CHECK(contains(e.error, "transforms/test.lua:5:"));
    e = h.call("hl7path");
    CHECK(contains(e.error, "transforms/test.lua:6:"));
    CHECK(contains(e.error, "invalid HL7 path"));
}

TEST_CASE("instruction budget stops runaway scripts and the runtime stays usable", "[lua][limits]") {
    Limits limits;
    limits.instructions = 2'000'000;
    Harness h(R"(
        function spin(msg)
            local i = 0
            while true do i = i + 1 end
        end
        function sneaky(msg)
            -- pcall must not swallow the budget error
            while true do pcall(function() while true do end end) end
        end
        function fine(msg)
            local s = 0
            for i = 1, 100000 do s = s + i end
            return s == 5000050000
        end
    )", limits);
    CallResult r = h.call("spin");
    CHECK_FALSE(r.ok);
    INFO(r.error);
    CHECK(contains(r.error, "instruction budget exceeded (infinite loop?)"));
    CHECK(contains(r.error, "transforms/test.lua:4:"));
    r = h.call("fine");
    CHECK(r.ok);
    CHECK_FALSE(r.returnedFalse);
    r = h.call("sneaky");
    CHECK_FALSE(r.ok);
    CHECK(contains(r.error, "instruction budget exceeded"));
    h.ok("fine");

    // the top-level chunk runs under the budget too
    std::string err;
    CHECK_FALSE(ScriptRuntime::loadString("while true do end", "transforms/loop.lua", limits, &err));
    CHECK(contains(err, "transforms/loop.lua:1: instruction budget exceeded"));
}

TEST_CASE("memory cap stops memory bombs and the runtime stays usable", "[lua][limits]") {
    Limits limits;
    limits.memoryBytes = 8u << 20;
    Harness h(R"(
        function big_string(msg)
            local s = string.rep("x", 100 * 1024 * 1024)
            return #s
        end
        function grow(msg)
            local t = {}
            for i = 1, 1e9 do t[i] = "item" .. i end
        end
        function concat(msg)
            local s = "x"
            while true do s = s .. s end
        end
        function caught(msg)
            local ok, err = pcall(string.rep, "x", 100 * 1024 * 1024)
            assert(not ok and err:find("memory"), tostring(err))
            return true
        end
        function fine(msg)
            local t = {}
            for i = 1, 1000 do t[i] = i end
            return #t == 1000 and msg:get("PID-5.1") == "DOE"
        end
    )", limits);
    std::size_t base = h.rt->memoryInUse();
    for (const char* fn : {"big_string", "grow", "concat"}) {
        CallResult r = h.call(fn);
        INFO(fn << ": " << r.error);
        CHECK_FALSE(r.ok);
        CHECK(contains(r.error, "memory limit exceeded"));
        CHECK(contains(r.error, "transforms/test.lua:"));
        h.ok("fine");
        CHECK(h.rt->memoryInUse() < base + (2u << 20));  // garbage was collected (the string table may stay grown)
    }
    h.ok("caught");
    h.ok("fine");
}

TEST_CASE("a memory cap too small to start is an error, not a crash", "[lua][limits]") {
    Limits tiny;
    tiny.memoryBytes = 16 * 1024;
    std::string err;
    CHECK_FALSE(ScriptRuntime::loadString("x = 1", "transforms/tiny.lua", tiny, &err));
    INFO(err);
    CHECK(contains(err, "transforms/tiny.lua"));

    // near the cap, hasFunction and calls still behave
    Limits small;
    small.memoryBytes = 2u << 20;
    Harness h(R"(
        keep = {}
        function fill(msg) for i = 1, 1e9 do keep[i] = i end end
        function f(msg) return true end
    )", small);
    CHECK_FALSE(h.call("fill").ok);
    CHECK(h.rt->hasFunction("f"));
    CHECK_FALSE(h.rt->hasFunction("a_rather_long_function_name_that_is_not_interned_yet_anywhere"));
    CallResult r = h.call("f");  // may fail for lack of memory (keep is still referenced), never crash
    if (!r.ok) CHECK(contains(r.error, "memory limit exceeded"));
}

TEST_CASE("print and log go to the invocation's logs with file:line", "[lua][log]") {
    Harness h(R"(
        function go(msg)
            print("a", 1, true)
            log.info("info", 2)
            log.warn("careful")
            log.error("bad", nil)
        end
    )");
    h.ok("go");
    REQUIRE(h.inv.logs.size() == 4);
    CHECK(h.inv.logs[0].text == "a\t1\ttrue");
    CHECK(h.inv.logs[0].level == LogLine::Info);
    CHECK(h.inv.logs[0].where == "transforms/test.lua:3");
    CHECK(h.inv.logs[1].text == "info 2");
    CHECK(h.inv.logs[2].level == LogLine::Warn);
    CHECK(h.inv.logs[2].where == "transforms/test.lua:5");
    CHECK(h.inv.logs[3].level == LogLine::Error);
    CHECK(h.inv.logs[3].text == "bad nil");
}

TEST_CASE("route, filter and ack record the script's decisions", "[lua][decisions]") {
    Harness h(R"(
        function routes(msg) route("pacs", "emr"); route({"archive", "pacs"}) end
        function none(msg) end
        function filt(msg) filter("not an order") end
        function filt_plain(msg) filter() end
        function ack_text(msg) ack("MSH|^~\\&|ACK") end
        function ack_msg(msg) ack(hl7.ack(msg, "AA", "ok")) end
        function bad_route(msg) route(5) end
    )");
    h.ok("routes");
    CHECK(h.inv.routed);
    CHECK(h.inv.routes == std::vector<std::string>{"pacs", "emr", "archive"});
    h.ok("none");
    CHECK_FALSE(h.inv.routed);
    CHECK_FALSE(h.inv.filtered);
    CHECK_FALSE(h.inv.ack);
    h.ok("filt");
    CHECK(h.inv.filtered);
    CHECK(h.inv.filterReason == "not an order");
    h.ok("filt_plain");
    CHECK(h.inv.filtered);
    CHECK(h.inv.filterReason.empty());
    h.ok("ack_text");
    CHECK(h.inv.ack == std::string("MSH|^~\\&|ACK"));
    h.ok("ack_msg");
    REQUIRE(h.inv.ack);
    auto ackMsg = junction::hl7::Message::parseOrThrow(*h.inv.ack);
    CHECK(ackMsg.get("MSA-1") == "AA");
    CHECK(ackMsg.get("MSA-2") == "ORM0001");
    CHECK_FALSE(h.call("bad_route").ok);

    // outside a call (top-level code) decisions are refused
    std::string err;
    CHECK_FALSE(ScriptRuntime::loadString("route('x')", "t.lua", {}, &err));
    CHECK(contains(err, "only be called while a message is processed"));
}

TEST_CASE("uuid, now and dicom.uid", "[lua][util]") {
    Harness h(R"(
        function go(msg)
            local u = uuid()
            assert(u:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"), u)
            assert(uuid() ~= u)
            local t = now()
            assert(t:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"), t)
            local h = now("hl7")
            assert(h:match("^%d%d%d%d%d%d%d%d%d%d%d%d%d%d%.%d%d%d%+0000$"), h)
            local uid = dicom.uid()
            assert(uid:match("^2%.25%.[1-9]%d*$") or uid == "2.25.0", uid)
            assert(#uid <= 64)
            assert(dicom.uid() ~= uid)
            assert(not pcall(now, "weird"))
        end
    )");
    h.ok("go");
}

TEST_CASE("payload types: json, xml and raw messages", "[lua][payload]") {
    Harness h(R"(
        function json_edit(msg)
            msg.status = "done"
            msg.items[#msg.items + 1] = 3
        end
        function json_replace(msg) return { replaced = true } end
        function json_string(msg) return '{"s":1}' end
        function xml_edit(msg)
            msg.attrs.id = "7"
            msg.children[#msg.children + 1] = { name = "c", text = "new" }
        end
        function raw_upper(msg) return msg:upper() end
        function raw_keep(msg) assert(type(msg) == "string") end
        function to_json(msg) return { mrn = msg:get("PID-3.1") } end
        function hl7_string(msg) return "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|X1|P|2.5\rPID|1||42\r" end
        function hl7_bad_string(msg) return "MSH|bad" end
        function hl7_to_text(msg) return "AUDIT " .. msg:control_id() end
        function hl7_other(msg)
            local m = hl7.new("ADT^A08", "2.5")
            m:set("PID-3.1", "77")
            return m
        end
        function hl7_self(msg) msg:set("PID-3.1", "X9"); return msg end
        function hl7_node(msg) return msg.PID end
        function returns_number(msg) return 42 end
        function response(msg, resp, status)
            assert(resp == "MSA|AA" and status == "SENT", tostring(resp) .. tostring(status))
            maps.response.seen = resp
        end
    )");
    h.payload = textPayload(DataType::Json, R"({"status":"new","items":[1,2],"n":1.5})");
    h.ok("json_edit");
    CHECK(h.payload.text == R"({"status":"done","items":[1,2,3],"n":1.5})");
    h.ok("json_replace");
    CHECK(h.payload.text == R"({"replaced":true})");
    h.ok("json_string");
    CHECK(h.payload.text == R"({"s":1})");
    h.payload = textPayload(DataType::Json, "{bad");
    CallResult r = h.call("json_edit");
    CHECK_FALSE(r.ok);
    CHECK(contains(r.error, "JSON"));

    h.payload = textPayload(DataType::Xml, R"(<root id="1"><a>x</a></root>)");
    h.ok("xml_edit");
    CHECK(h.payload.text == R"(<root id="7"><a>x</a><c>new</c></root>)");

    h.payload = textPayload(DataType::Raw, "abc");
    h.ok("raw_upper");
    CHECK(h.payload.text == "ABC");
    h.ok("raw_keep");
    CHECK(h.payload.text == "ABC");

    h.payload = hl7Payload();
    h.ok("to_json");
    CHECK(h.payload.type == DataType::Json);
    CHECK_FALSE(h.payload.hl7);
    CHECK(h.payload.text == R"({"mrn":"MRN482913"})");

    h.payload = hl7Payload();
    h.ok("hl7_string");
    REQUIRE(h.payload.hl7);
    CHECK(h.payload.hl7->get("PID-3") == "42");
    h.payload = hl7Payload();
    r = h.call("hl7_bad_string");
    CHECK_FALSE(r.ok);
    CHECK(contains(r.error, "not a valid HL7 message"));
    h.payload = hl7Payload();
    h.ok("hl7_to_text");
    CHECK(h.payload.type == DataType::Raw);
    CHECK_FALSE(h.payload.hl7);
    CHECK(h.payload.serialize() == "AUDIT ORM0001");
    h.payload = hl7Payload();
    h.ok("hl7_other");
    CHECK(h.payload.hl7->messageType() == "ADT^A08");
    CHECK(h.payload.hl7->get("PID-3.1") == "77");
    h.payload = hl7Payload();
    h.ok("hl7_self");
    CHECK(h.payload.hl7->get("PID-3.1") == "X9");
    CHECK_FALSE(h.call("hl7_node").ok);
    CHECK_FALSE(h.call("returns_number").ok);

    // HL7 payload given as text only is parsed for the call
    h.payload = textPayload(DataType::Hl7v2, sampleOrm());
    h.ok("hl7_self");
    CHECK(h.payload.serialize().find("X9") != std::string::npos);

    // response scripts get the response text and status
    h.payload = hl7Payload();
    h.inv = Invocation{};
    h.inv.message = &h.payload;
    h.inv.responseMap = h.responseMap;
    h.inv.response = "MSA|AA";
    h.inv.responseStatus = "SENT";
    CallResult rr = h.rt->call("response", h.inv);
    INFO(rr.error);
    CHECK(rr.ok);
    CHECK(h.responseMap->getString("seen") == std::string("MSA|AA"));
}

TEST_CASE("parseDataType and Payload::serialize", "[lua][payload]") {
    CHECK(parseDataType("hl7v2") == DataType::Hl7v2);
    CHECK(parseDataType("JSON") == DataType::Json);
    CHECK(parseDataType("xml") == DataType::Xml);
    CHECK(parseDataType("raw") == DataType::Raw);
    CHECK_FALSE(parseDataType("csv"));
    CHECK(std::string(toString(DataType::Json)) == "json");
    Payload p = hl7Payload();
    CHECK(p.serialize() == sampleOrm());
    CHECK(textPayload(DataType::Raw, "x").serialize() == "x");
}

TEST_CASE("many runtimes and calls do not leak or interfere", "[lua][runtime]") {
    Harness a("counter = 0\nfunction f(msg) counter = counter + 1; return counter == 1 end");
    Harness b("counter = 100\nfunction f(msg) counter = counter + 1; return counter == 101 end");
    CallResult ra = a.call("f"), rb = b.call("f");
    CHECK(ra.ok);
    CHECK(rb.ok);
    CHECK_FALSE(ra.returnedFalse);
    CHECK_FALSE(rb.returnedFalse);
    std::size_t before = a.rt->memoryInUse();
    for (int i = 0; i < 2000; ++i) a.call("f");
    CHECK(a.rt->memoryInUse() < before + (512u << 10));
}
