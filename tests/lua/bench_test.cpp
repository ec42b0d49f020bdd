// Hidden benchmark (run with: test_lua "[.bench]" -s): calls/s of a typical
// transform (3 reads, 2 writes) on samples/hl7/orm_o01_nw.hl7.
#include "tests/lua/lua_test_util.h"

#include <chrono>
#include <iostream>

using namespace junction::lua;
using namespace junction::lua::test;

namespace {

double rate(Harness& h, const char* fn, int calls, bool freshPayload) {
    Payload master = hl7Payload();
    h.payload = master;
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) {
        if (freshPayload) h.payload = master;
        else if (i % 1000 == 0) h.payload = master;  // bound the growth of edited-field storage
        CallResult r = h.call(fn);
        if (!r.ok) FAIL(r.error);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return calls / secs;
}

}  // namespace

TEST_CASE("benchmark: transform calls per second", "[.bench]") {
    Harness h(R"(
        function by_path(msg)
            local mrn = msg:get("PID-3.1")
            local family = msg:get("PID-5.1")
            local accession = msg:get("OBR-18")
            msg:set("OBR-25", "F")
            msg:set("ZDS-2", accession)
        end
        function by_node(msg)
            local pid = msg.PID
            local mrn = pid[3][1]:S()
            local family = pid[5][1]:S()
            local accession = msg.OBR[18]:S()
            msg.OBR[25] = "F"
            msg.ZDS[2] = accession
        end
        function routing(msg)
            if msg:get("ORC-1") == "NW" then route("worklist", "emr") end
            maps.global:incr("orders")
        end
        function empty(msg) end
    )");
    const int n = 200000;
    // warm up
    rate(h, "by_path", 2000, false);
    double empty = rate(h, "empty", n, false);
    double path = rate(h, "by_path", n, false);
    double node = rate(h, "by_node", n, false);
    double routing = rate(h, "routing", n, false);
    double fresh = rate(h, "by_path", n / 4, true);
    std::cout << "lua bench (1 thread, Debug/Release as built):\n"
              << "  empty function       " << static_cast<long>(empty) << " calls/s\n"
              << "  3 get + 2 set (path) " << static_cast<long>(path) << " calls/s\n"
              << "  3 get + 2 set (node) " << static_cast<long>(node) << " calls/s\n"
              << "  route + maps incr    " << static_cast<long>(routing) << " calls/s\n"
              << "  path + payload copy  " << static_cast<long>(fresh) << " calls/s\n";
    CHECK(path > 0);
}
