#include "tests/lua/lua_test_util.h"

using namespace junction::lua;
using namespace junction::lua::test;

namespace {
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("msg:get / set / getRaw / setRaw by path", "[lua][hl7]") {
    Harness h(R"(
        function go(msg)
            assert(msg:get("PID-5.1") == "DOE")
            assert(msg:get("PID-5") == "DOE^JANE^MARIE^^MRS")       -- structured: raw text
            assert(msg:get("PID-3[2].1") == "7701019876")
            assert(msg:get("OBR-24") == "CT")
            assert(msg:get("ZZZ-1") == "")
            assert(msg:get("PID-99") == "")
            msg:set("OBR-25", "F")
            msg:set("PID-5.1", "O'NEIL|SMITH^X")                     -- escaped on write
            assert(msg:getRaw("PID-5.1") == "O'NEIL\\F\\SMITH\\S\\X")
            assert(msg:get("PID-5.1") == "O'NEIL|SMITH^X")            -- unescaped on read
            msg:setRaw("PID-13", "(555)555-0000^PRN^PH")
            assert(msg:get("PID-13.2") == "PRN")
            msg:set("PID-8", 42)                                      -- numbers are written as text
            assert(msg:get("PID-8") == "42")
            msg:set("NTE-3", "new segment")                           -- missing segment is appended
            assert(msg.NTE[3]:S() == "new segment")
            msg:set("PID-11", { "1 MAIN ST", "", "TOWN" })            -- a table sets components
            assert(msg:get("PID-11.3") == "TOWN")
            msg:set("PID-19", nil)
            assert(msg:get("PID-19") == "")
        end
        function badpath(msg) msg:set("P", "x") end
        function badvalue(msg) msg:set("PID-5", true) end
    )");
    h.ok("go");
    const auto& m = *h.payload.hl7;
    CHECK(m.get("OBR-25") == "F");
    CHECK(m.getRaw("PID-5.1") == "O'NEIL\\F\\SMITH\\S\\X");
    CHECK(m.get("NTE-3") == "new segment");
    CHECK(m.segmentName(m.segmentCount() - 1) == "NTE");
    CallResult r = h.call("badpath");
    CHECK_FALSE(r.ok);
    CHECK(contains(r.error, "transforms/test.lua:"));
    CHECK_FALSE(h.call("badvalue").ok);
}

TEST_CASE("Iguana-style node access", "[lua][hl7]") {
    Harness h(R"(
        function read(msg)
            assert(msg.PID ~= nil and msg.ZZZ == nil)
            assert(msg.PID:name() == "PID")
            assert(tostring(msg.PID[5][1]) == "DOE")
            assert(msg.PID[5][2]:S() == "JANE")
            assert(msg.PID[5]:S() == "DOE^JANE^MARIE^^MRS")
            assert(msg.PID[3]:rep(2)[1]:S() == "7701019876")
            assert(#msg.PID[3]:reps() == 2)
            assert(#msg.PV1[3]:reps() == 1)
            assert(#msg.PID[2]:reps() == 0)
            assert(msg.MSH[9][1]:S() == "ORM" and msg.MSH[9][2]:S() == "O01")
            assert(msg.MSH[1]:S() == "|" and msg.MSH[2]:S() == "^~\\&")
            assert(msg.PID[5][1] .. "/" .. msg.PID[5][2] == "DOE/JANE")
            assert("id:" .. msg.PID[3][1] == "id:MRN482913")
            assert(msg.PID[5][1]:path() == "PID-5.1")
            assert(msg.PID[3]:rep(2)[4]:path() == "PID-3[2].4")
            assert(#msg.PID[5] == 5)
            assert(#msg.PID == 18)
            assert(msg.PID[5][1]:is_empty() == false)
            assert(msg.PID[2]:is_empty() == true)
            assert(msg.PID[4]:is_null() == false)
            assert(msg.ZDS[1][1]:S() == "1.2.826.0.1.3680043.10.1001.20261123.1")
            assert(tostring(msg.PV1):sub(1, 8) == "PV1|1|O|")
        end
        function write(msg)
            msg.PID[5][1] = "SMITH"
            msg.PID[5][2] = "A&B"                  -- escaped
            msg.PID[8] = "M"
            msg.PID[4] = '""'                      -- explicit null, escaped? no: quotes are not delimiters
            msg.PID[3]:rep(2)[1] = "999"
            msg.PV1[3] = { "ER", "BED1" }
            msg.OBR[44][2] = "deep"                -- creates missing fields and components
            msg.PID[6][1][2] = "sub"
            local seg = msg.ORC
            seg[5] = msg.PID[8]                    -- a node value copies the node
        end
        function nulls(msg)
            msg:setRaw("PID-4", '""')
            assert(msg.PID[4]:is_null())
            assert(not msg.PID[4]:is_empty())
        end
        function bad_member(msg) return msg.PID.name_of_patient end
        function bad_index(msg) return msg.PID[0] end
        function assign_segment(msg) msg.PID = "x" end
        function assign_bool(msg) msg.PID[3] = true end
        function sub_index(msg) return msg.PID[5][1][1][1] end
    )");
    h.ok("read");
    h.ok("write");
    const auto& m = *h.payload.hl7;
    CHECK(m.get("PID-5.1") == "SMITH");
    CHECK(m.getRaw("PID-5.2") == "A\\T\\B");
    CHECK(m.get("PID-5.2") == "A&B");
    CHECK(m.get("PID-8") == "M");
    CHECK(m.get("PID-3[2].1") == "999");
    CHECK(m.get("PID-3[2].4") == "NATIONAL");
    CHECK(m.getRaw("PV1-3") == "ER^BED1");
    CHECK(m.get("OBR-44.2") == "deep");
    CHECK(m.getRaw("PID-6") == "&sub");
    CHECK(m.get("ORC-5") == "M");
    h.ok("nulls");
    for (const char* fn : {"bad_member", "bad_index", "assign_segment", "assign_bool", "sub_index"}) {
        CallResult r = h.call(fn);
        INFO(fn);
        CHECK_FALSE(r.ok);
        CHECK(contains(r.error, "transforms/test.lua:"));
    }
}

TEST_CASE("segments, add, insert, remove keep nodes consistent", "[lua][hl7]") {
    Harness h(R"(
        function go(msg)
            local all = msg:segments()
            assert(#all == 6 and all[1]:name() == "MSH" and all[6]:name() == "ZDS")
            assert(#msg:segments("OBX") == 0)
            local obr = msg.OBR
            local zds = msg.ZDS
            local o1 = msg:add("OBX", "1", "TX", { "CODE", "Text" }, "", "line | one")
            local o2 = msg:add("OBX", "2", "TX")
            assert(o1[3][2]:S() == "Text" and o1[5]:S() == "line | one")
            assert(#msg:segments("OBX") == 2)
            local nte = msg:insert(obr, "NTE", "1", "", "after OBR")
            -- nodes taken before the insert still point at their segments
            assert(zds[1][2]:S() == "JUNCTION")
            assert(o1[1]:S() == "1" and o2[1]:S() == "2")
            local names = {}
            for i, s in ipairs(msg:segments()) do names[i] = s:name() end
            assert(table.concat(names, ",") == "MSH,PID,PV1,ORC,OBR,NTE,ZDS,OBX,OBX", table.concat(names, ","))
            msg:remove(o1)
            assert(o2[1]:S() == "2")
            assert(msg:segments("OBX")[1][1]:S() == "2")
            local ok, err = pcall(function() return o1[1]:S() end)
            assert(not ok and err:find("removed"), err)
            o2[5] = "edited after remove"
            assert(msg:get("OBX-5") == "edited after remove")
            nte[3] = "changed"
            assert(msg:get("NTE-3") == "changed")
            assert(not pcall(msg.remove, msg, msg.MSH))
            assert(not pcall(msg.add, msg, "bad", "x"))
            assert(not pcall(msg.add, msg, "MSH", "x"))
        end
        function type_and_id(msg)
            assert(msg:type() == "ORM^O01")
            assert(msg:control_id() == "ORM0001")
            assert(tostring(msg):sub(1, 8) == "MSH|^~\\&")
            assert(select(2, tostring(msg):gsub("\r", "")) == 6)
        end
        saved = nil
        function keep(msg) saved = msg.PID end
        function use_saved(msg) return saved[5][1]:S() end
    )");
    h.ok("go");
    std::string text = h.payload.serialize();
    CHECK(text.find("OBX|1|TX|CODE^Text||line \\F\\ one") == std::string::npos);
    CHECK(text.find("NTE|1||changed\rZDS|") != std::string::npos);
    CHECK(text.find("OBX|2|TX|||edited after remove\r") != std::string::npos);
    h.payload = hl7Payload();
    h.ok("type_and_id");
    h.ok("keep");
    CallResult r = h.call("use_saved");
    CHECK_FALSE(r.ok);
    CHECK(contains(r.error, "no longer available"));
}

TEST_CASE("hl7 module: parse, new, ack, escape, unescape", "[lua][hl7]") {
    Harness h(R"(
        function go(msg)
            local m = hl7.parse("MSH|^~\\&|A|B|C|D|20260101||ADT^A01|CTRL1|P|2.5\rPID|1||123^^^H^MR||ROE^RICHARD\r")
            assert(m:type() == "ADT^A01" and m:control_id() == "CTRL1")
            assert(m.PID[5][2]:S() == "RICHARD")
            m.PID[5][1] = "RO^E"
            assert(m:getRaw("PID-5.1") == "RO\\S\\E")
            local ok, err = pcall(hl7.parse, "PID|1||x")
            assert(not ok and err:find("at byte 0"), err)
            ok, err = pcall(hl7.parse, "MSH|^~\\&|A\r")
            assert(not ok and err:find("hl7.parse"), err)

            local n = hl7.new("ORU^R01", "2.5.1")
            assert(n:type() == "ORU^R01" and n:get("MSH-12") == "2.5.1")
            assert(#n:control_id() > 0)
            n:add("PID", "1", "", "42")
            assert(n:get("PID-3") == "42")
            assert(hl7.new("ADT^A01"):get("MSH-12") == "2.5.1")

            local a = hl7.ack(msg, "AE", "bad thing")
            assert(a:get("MSA-1") == "AE" and a:get("MSA-2") == "ORM0001" and a:get("MSA-3") == "bad thing")
            assert(a:type():sub(1, 3) == "ACK")
            for _, code in ipairs({ "AA", "AR", "CA", "CE", "CR" }) do
                assert(hl7.ack(msg, code):get("MSA-1") == code)
            end
            assert(not pcall(hl7.ack, msg, "XX"))

            assert(hl7.escape("a|b^c&d~e\\f") == "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f")
            assert(hl7.unescape("a\\F\\b\\S\\c") == "a|b^c")
            assert(hl7.unescape(hl7.escape("x\ny")) == "x\ny")
        end
    )");
    h.ok("go");
}
