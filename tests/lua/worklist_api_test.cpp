// The worklist module against a real SQLite worklist.
#include "tests/lua/lua_test_util.h"

#include <filesystem>
#include <unistd.h>

#include "engine/store/worklist_store.h"

using namespace junction;
using namespace junction::lua;
using namespace junction::lua::test;

namespace {

struct TempWorklist {
    std::string dir;
    std::unique_ptr<store::WorklistStore> store;
    TempWorklist() {
        char tmpl[] = "/tmp/junction-lua-worklist-XXXXXX";
        char* p = mkdtemp(tmpl);
        REQUIRE(p != nullptr);
        dir = p;
        store = store::openSqliteWorklist(dir + "/junction.db", false);
    }
    ~TempWorklist() {
        store.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
};

// A call given `wl` as the engine's worklist.
CallResult callWith(Harness& h, store::WorklistStore* wl, std::string_view fn) {
    h.worklist = wl;
    return h.call(fn);
}

}  // namespace

TEST_CASE("worklist.upsert / find / complete / cancel from Lua", "[lua][worklist]") {
    TempWorklist wl;
    Harness h(R"(
function add(msg)
  local id = worklist.upsert{
    PatientID = msg:get("PID-3.1"), PatientName = "DOE^JANE", AccessionNumber = "ACC1",
    RequestedProcedureID = "RP1", StudyInstanceUID = "1.2.3.4", PatientWeight = 61.5,
    ScheduledProcedureStepSequence = {{
      Modality = "CT", ScheduledStationAETitle = "CT1",
      ScheduledProcedureStepStartDate = "20261123", ScheduledProcedureStepStartTime = "093000",
    }},
  }
  assert(math.type(id) == "integer" and id > 0)
  maps.channel:set("id", id)
end
function check(msg)
  local items = worklist.find{PatientID = "MRN482913", Modality = "CT"}
  assert(#items == 1, #items)
  local it = items[1]
  assert(it.id == maps.channel:get("id"))
  assert(it.status == "SCHEDULED")
  assert(it.PatientName == "DOE^JANE")
  assert(it.PatientWeight == 61.5)
  assert(it.ScheduledProcedureStepSequence[1].ScheduledStationAETitle == "CT1")
  assert(#worklist.find{Modality = "MR"} == 0)
  assert(#worklist.find{PatientName = "doe*", ScheduledProcedureStepStartDate = "20261101-20261130"} == 1)
  assert(#worklist.find() == 1)
  -- an update keeps the id
  it.ScheduledProcedureStepSequence[1].Modality = "MR"
  assert(worklist.upsert(it) == it.id)
  assert(#worklist.find{Modality = "MR"} == 1)
end
function finish(msg)
  assert(worklist.complete("ACC1") == 1)
  assert(#worklist.find{} == 0)
  local all = worklist.find{include_finished = true}
  assert(#all == 1 and all[1].status == "COMPLETED")
  assert(worklist.set_status("1.2.3.4", "in_progress") == 1)
  assert(worklist.find{}[1].status == "IN PROGRESS")
  assert(worklist.cancel("1.2.3.4") == 1)
  assert(worklist.cancel("NOPE") == 0)
  assert(#worklist.find{limit = 5, include_finished = true} == 1)
end
function bad_keyword(msg) worklist.upsert{AccessionNumber = "X", PatientNme = "A"} end
function no_key(msg) worklist.upsert{PatientID = "X"} end
function bad_filter(msg) worklist.find{Colour = "red"} end
function bad_status(msg) worklist.set_status("ACC1", "done") end
function bad_sequence(msg) worklist.upsert{AccessionNumber = "X", ScheduledProcedureStepSequence = "CT"} end
)");
    auto ok = [&](const char* fn) {
        CallResult r = callWith(h, wl.store.get(), fn);
        INFO(fn << ": " << r.error);
        REQUIRE(r.ok);
    };
    ok("add");
    REQUIRE(wl.store->count() == 1);
    auto stored = wl.store->find({});
    REQUIRE(stored.size() == 1);
    CHECK(stored[0].patientId == "MRN482913");
    CHECK(stored[0].accessionNumber == "ACC1");
    CHECK(stored[0].modality == "CT");
    CHECK(stored[0].spsStartTime == "093000");
    CHECK(stored[0].dataset.find(R"("00101030":{"vr":"DS","Value":[61.5]})") != std::string::npos);
    ok("check");
    CHECK(wl.store->count() == 1);
    ok("finish");
    CHECK(wl.store->get(stored[0].id)->status == store::WorklistStatus::Cancelled);

    auto err = [&](const char* fn) {
        CallResult r = callWith(h, wl.store.get(), fn);
        CHECK_FALSE(r.ok);
        return r.error;
    };
    CHECK_THAT(err("bad_keyword"), Catch::Contains("transforms/test.lua:") &&
                                       Catch::Contains("worklist.upsert: PatientNme: unknown DICOM keyword"));
    CHECK_THAT(err("no_key"), Catch::Contains("needs an AccessionNumber or a StudyInstanceUID"));
    CHECK_THAT(err("bad_filter"), Catch::Contains("worklist.find: cannot filter on 'Colour'"));
    CHECK_THAT(err("bad_status"), Catch::Contains("worklist.set_status: unknown status 'done'"));
    CHECK_THAT(err("bad_sequence"), Catch::Contains("a sequence takes an array of tables"));
    CHECK(wl.store->count() == 1);
}

TEST_CASE("worklist functions without a worklist raise a clear error", "[lua][worklist]") {
    Harness h("function f(msg) worklist.find{} end\nfunction g(msg) worklist.complete('A') end\n");
    CallResult r = callWith(h, nullptr, "f");
    CHECK_FALSE(r.ok);
    CHECK_THAT(r.error, Catch::Contains("worklist.find: no worklist is available here"));
    r = callWith(h, nullptr, "g");
    CHECK_FALSE(r.ok);
    CHECK_THAT(r.error, Catch::Contains("worklist.complete: no worklist is available here"));
}
