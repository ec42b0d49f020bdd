// A filter function that returns false may give its reason as a second value
// (kept in the message's log by the engine).
#include <catch2/catch.hpp>

#include "tests/lua/lua_test_util.h"

using namespace junction::lua;
using namespace junction::lua::test;

TEST_CASE("a function returning false and a reason gives the filter's reason", "[lua][decisions]") {
    Harness h(R"(
        function with_reason(msg) return false, "not a CT order: " .. msg:get("OBR-24") end
        function without(msg) return false end
        function reason_not_text(msg) return false, 42 end
        function kept(msg) return true, "ignored" end
    )");
    auto r = h.call("with_reason");
    CHECK(r.ok);
    CHECK(r.returnedFalse);
    CHECK(h.inv.filterReason == "not a CT order: CT");
    r = h.call("without");
    CHECK(r.returnedFalse);
    CHECK(h.inv.filterReason.empty());
    r = h.call("reason_not_text");
    CHECK(r.returnedFalse);
    CHECK(h.inv.filterReason.empty());  // a number is not a reason (nor an error)
    r = h.call("kept");
    CHECK_FALSE(r.returnedFalse);
    CHECK(h.inv.filterReason.empty());
}
