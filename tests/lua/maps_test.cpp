#include "tests/lua/lua_test_util.h"

#include <thread>

using namespace junction::lua;
using namespace junction::lua::test;

TEST_CASE("maps.channel / global / response", "[lua][maps]") {
    Harness h(R"(
        function put(msg)
            maps.global.counter = 1
            maps.channel["k"] = "v"
            maps.channel.tbl = { a = 1, list = { 1, 2, { deep = true } } }
            maps.response.pacs = "MSA|AA"
            maps.channel.f = 1.5
            maps.channel.gone = "x"
            maps.channel.gone = nil
        end
        function read(msg)
            assert(maps.global.counter == 1 and math.type(maps.global.counter) == "integer")
            assert(maps.channel.k == "v")
            local t = maps.channel.tbl
            assert(t.a == 1 and t.list[3].deep == true)
            t.a = 99                                   -- a copy: the map is unchanged
            assert(maps.channel.tbl.a == 1)
            assert(maps.channel.gone == nil)
            assert(maps.channel.missing == nil)
            assert(maps.global:incr("counter") == 2)
            assert(maps.global:incr("counter", 10) == 12)
            assert(maps.global:incr("fresh") == 1)
            assert(maps.global:incr("half", 0.5) == 0.5)
            assert(not pcall(maps.channel.incr, maps.channel, "k"))   -- not a number
            maps.channel:set("incr", "a key named like a method")
            assert(maps.channel:get("incr") == "a key named like a method")
            local keys = {}
            for k, v in pairs(maps.channel) do keys[#keys + 1] = k end
            table.sort(keys)
            assert(table.concat(keys, ",") == "f,incr,k,tbl", table.concat(keys, ","))
            assert(not pcall(function() maps.channel.fn = print end))
            local cyc = {}
            cyc.me = cyc
            assert(not pcall(function() maps.channel.c = cyc end))
        end
    )");
    h.ok("put");
    CHECK(h.globalMap->getString("counter") == std::string("1"));
    CHECK(h.channelMap->getString("k") == std::string("v"));
    CHECK(h.channelMap->getString("tbl") == std::string(R"({"a":1,"list":[1,2,{"deep":true}]})"));
    CHECK(h.channelMap->getString("f") == std::string("1.5"));
    CHECK_FALSE(h.channelMap->getString("gone"));
    CHECK(h.responseMap->getString("pacs") == std::string("MSA|AA"));
    h.ok("read");
    CHECK(h.channelMap->size() == 4);
    h.channelMap->setString("fromEngine", "hello");
    Harness other("function f(msg) assert(maps.global.counter == 12) end");
    other.globalMap = h.globalMap;
    other.ok("f");

    std::string err;
    CHECK_FALSE(ScriptRuntime::loadString("maps.global.x = 1", "t.lua", {}, &err));
    CHECK(err.find("only available while a message is processed") != std::string::npos);
}

TEST_CASE("maps are shared safely between runtimes on different threads", "[lua][maps][threads]") {
    auto global = std::make_shared<SharedMap>();
    auto channel = std::make_shared<SharedMap>();
    const char* script = R"(
        function bump(msg)
            for i = 1, 100 do maps.global:incr("total") end
            maps.channel["last"] = msg:control_id()
            local v = maps.global.total
            assert(math.type(v) == "integer")
        end
    )";
    auto worker = [&](std::string* error) {
        std::string err;
        auto rt = ScriptRuntime::loadString(script, "transforms/bump.lua", {}, &err);
        if (!rt) {
            *error = err;
            return;
        }
        Payload p = hl7Payload();
        for (int i = 0; i < 100; ++i) {  // 100 calls × 100 increments = 10,000 per thread
            Invocation inv;
            inv.message = &p;
            inv.globalMap = global;
            inv.channelMap = channel;
            CallResult r = rt->call("bump", inv);
            if (!r.ok) {
                *error = r.error;
                return;
            }
        }
    };
    std::string e1, e2;
    std::thread t1(worker, &e1), t2(worker, &e2);
    t1.join();
    t2.join();
    CHECK(e1.empty());
    CHECK(e2.empty());
    CHECK(global->getString("total") == std::string("20000"));
    CHECK(channel->getString("last") == std::string("ORM0001"));
}
