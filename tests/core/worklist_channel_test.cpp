// The shipped ris-worklist channel run for real: orders over MLLP become items
// of the engine's worklist (columns and DICOM JSON), updated and cancelled by
// later orders; bad destination content is an ERROR at once; channel scripts
// reach the worklist through the Lua module.
#include <memory>
#include <catch2/catch.hpp>

#include <sqlite3.h>
#include <unistd.h>

#include <future>
#include <thread>

#include "connectors/mllp/client.h"
#include "engine/config/node.h"
#include "engine/core/engine.h"
#include "engine/hl7/message.h"
#include "tests/core/test_support.h"
#include "tests/support/connectors.h"

using namespace junction;
using namespace junction::testing;

namespace {

const std::string kSource = JUNCTION_SOURCE_DIR;

core::EngineOptions wlOptions(const TempDir& dir) { return engineOptions(dir.str()); }

// The shipped ris-worklist channel, submitted to in-process (no listener needed:
// its port is left unused).
void addRisWorklistInProcess(core::Engine& engine) {
    auto ch = core::parseChannelFile(kSource + "/channels/ris-worklist.yaml", kSource, connectorRegistry());
    ch.sourceType = "channel";
    ch.sourceSettings = config::loadYamlString("type: channel", "inline.yaml");
    engine.addChannel(std::move(ch));
}

// A port of the range these tests may use, per process.
int testPort(int offset) { return 27000 + static_cast<int>(::getpid() % 200) * 2 + offset; }

std::string sendOrder(int port, const std::string& sample) {
    mllp::ClientOptions o;
    o.port = port;
    o.responseTimeout = std::chrono::seconds(10);
    mllp::Client c(o);
    auto r = c.send(readFile(kSource + "/samples/hl7/" + sample));
    REQUIRE(r.ok());
    return hl7::Message::parseOrThrow(r.response).get("MSA-1");
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("ris-worklist: NW creates, XO updates, CA cancels, OMI^O23 creates", "[core][worklist]") {
    TempDir dir;
    int port = testPort(0);
    std::string yaml = readFile(kSource + "/channels/ris-worklist.yaml");
    auto at = yaml.find("port: 6663");
    REQUIRE(at != std::string::npos);
    yaml.replace(at, 10, "port: " + std::to_string(port));
    auto first = std::make_unique<core::Engine>(wlOptions(dir), connectorRegistry());
    core::Engine& engine = *first;
    engine.addChannel(core::parseChannel(config::loadYamlString(yaml, "ris-worklist.yaml"),
                                         kSource + "/channels/ris-worklist.yaml", kSource, connectorRegistry()));
    engine.start();
    store::WorklistStore& wl = engine.worklist();

    // NW: a new scheduled item.
    CHECK(sendOrder(port, "orm_o01_nw.hl7") == "AA");
    REQUIRE(eventually([&] { return wl.count() == 1; }));
    auto items = wl.find({});
    REQUIRE(items.size() == 1);
    auto ct = items[0];
    CHECK(ct.patientId == "MRN482913");
    CHECK(ct.patientName == "DOE^JANE^MARIE^MRS");
    CHECK(ct.accessionNumber == "ACC20261123001");
    CHECK(ct.requestedProcedureId == "RP77881201");
    CHECK(ct.studyInstanceUid == "1.2.826.0.1.3680043.10.1001.20261123.1");
    CHECK(ct.modality == "CT");
    CHECK(ct.spsStartDate == "20261123");
    CHECK(ct.spsStartTime == "093000");
    CHECK(ct.stationAeTitle.empty());
    CHECK(ct.status == store::WorklistStatus::Scheduled);
    CHECK(has(ct.dataset, R"("00100010":{"vr":"PN","Value":[{"Alphabetic":"DOE^JANE^MARIE^MRS"}]})"));
    CHECK(has(ct.dataset, R"("00100020":{"vr":"LO","Value":["MRN482913"]})"));
    CHECK(has(ct.dataset, R"("00100030":{"vr":"DA","Value":["19770101"]})"));
    CHECK(has(ct.dataset, R"("00100040":{"vr":"CS","Value":["F"]})"));
    CHECK(has(ct.dataset, R"("00080050":{"vr":"SH","Value":["ACC20261123001"]})"));
    CHECK(has(ct.dataset, R"("00080090":{"vr":"PN","Value":[{"Alphabetic":"WELBY^MARCUS^J^DR"}]})"));
    CHECK(has(ct.dataset, R"("00321060":{"vr":"LO","Value":["CT Chest without contrast"]})"));
    CHECK(has(ct.dataset, R"("00321064":{"vr":"SQ","Value":[{"00080100":{"vr":"SH","Value":["CTCHEST"]},)"
                          R"("00080102":{"vr":"SH","Value":["L"]},"00080104":{"vr":"LO","Value":["CT Chest without contrast"]}}]})"));
    CHECK(has(ct.dataset, R"("00401001":{"vr":"SH","Value":["RP77881201"]})"));
    CHECK(has(ct.dataset, R"("00400100":{"vr":"SQ","Value":[{"00080060":{"vr":"CS","Value":["CT"]},)"
                          R"("00400001":{"vr":"AE"},"00400002":{"vr":"DA","Value":["20261123"]},)"
                          R"("00400003":{"vr":"TM","Value":["093000"]},)"));
    CHECK(has(ct.dataset, R"("00400009":{"vr":"SH","Value":["SPS7788120101"]})"));

    // XO: the same item (accession + requested procedure) changes; a step
    // already in progress stays in progress.
    REQUIRE(wl.setStatus("ACC20261123001", store::WorklistStatus::InProgress) == 1);
    CHECK(sendOrder(port, "orm_o01_xo.hl7") == "AA");
    REQUIRE(eventually([&] { return has(wl.get(ct.id)->dataset, "CTCHESTC"); }));
    CHECK(wl.count() == 1);
    auto updated = wl.get(ct.id);
    CHECK(has(updated->dataset, R"("00321060":{"vr":"LO","Value":["CT Chest with contrast"]})"));
    CHECK(updated->status == store::WorklistStatus::InProgress);

    // OMI^O23: a second item, keys from IPC and TQ1.
    CHECK(sendOrder(port, "omi_o23.hl7") == "AA");
    REQUIRE(eventually([&] { return wl.count() == 2; }));
    store::WorklistFilter mr;
    mr.modality = "MR";
    auto mrItems = wl.find(mr);
    REQUIRE(mrItems.size() == 1);
    CHECK(mrItems[0].accessionNumber == "ACC20261123002");
    CHECK(mrItems[0].requestedProcedureId == "RP99002101");
    CHECK(mrItems[0].studyInstanceUid == "1.2.826.0.1.3680043.10.1001.20261123.2");
    CHECK(mrItems[0].patientName == "SMITH^JOHN^A^^JR");
    CHECK(mrItems[0].stationAeTitle == "MR1");
    CHECK(mrItems[0].spsStartTime == "100000");
    CHECK(has(mrItems[0].dataset, R"("00400009":{"vr":"SH","Value":["SPS9900210101"]})"));

    // CA: the CT item is cancelled and leaves the worklist.
    CHECK(sendOrder(port, "orm_o01_ca.hl7") == "AA");
    REQUIRE(eventually([&] { return wl.get(ct.id)->status == store::WorklistStatus::Cancelled; }));
    auto open = wl.find({});
    REQUIRE(open.size() == 1);
    CHECK(open[0].accessionNumber == "ACC20261123002");

    // NW again: the cancelled order is scheduled again (same item).
    CHECK(sendOrder(port, "orm_o01_nw.hl7") == "AA");
    REQUIRE(eventually([&] { return wl.get(ct.id)->status == store::WorklistStatus::Scheduled; }));
    CHECK(wl.count() == 2);
    CHECK(has(wl.get(ct.id)->dataset, "CT Chest without contrast"));
    REQUIRE(wl.setStatus("ACC20261123001", store::WorklistStatus::Cancelled) == 1);

    REQUIRE(eventually([&] { return countStatus(engine, "ris-worklist", store::Status::Sent) == 5; }));
    CHECK(countStatus(engine, "ris-worklist", store::Status::Error) == 0);
    first.reset();  // one engine per store: the next one opens it once this one is gone

    // The items are in the engine's database file: a new engine sees them.
    core::Engine again(wlOptions(dir), connectorRegistry());
    CHECK(again.worklist().count() == 2);
    CHECK(again.worklist().get(ct.id)->status == store::WorklistStatus::Cancelled);
}

TEST_CASE("worklist destination: bad content is an ERROR, scripts reach the worklist", "[core][worklist]") {
    TempDir dir;
    int port = testPort(1);
    dir.write("wl.lua", R"(
function to_item(msg)
  local kind = msg:get("MSH-10")
  if kind == "BADKEY" then return {AccessionNumber = "X1", PatientNme = "TYPO"} end
  if kind == "NOKEY" then return {PatientID = "P1"} end
  if kind == "BADACTION" then return {action = "explode", AccessionNumber = "X1"} end
  if kind == "NOTJSON" then return "just text" end
  if kind == "HALFBAD" then
    return {{AccessionNumber = "OK1"}, {AccessionNumber = "BAD2", Modalty = "CT"}}
  end
  -- the script itself schedules an item, then asks the destination to start it
  local id = worklist.upsert{AccessionNumber = "LUA1", PatientID = msg:get("PID-3.1"),
                             ScheduledProcedureStepSequence = {{Modality = "US"}}}
  assert(#worklist.find{AccessionNumber = "LUA1"} == 1)
  return {action = "in_progress", AccessionNumber = "LUA1"}
end
)");
    core::Engine engine(wlOptions(dir), connectorRegistry());
    engine.addChannel(core::parseChannel(config::loadYamlString(R"(
channel: wl
source: { type: mllp, port: )" + std::to_string(port) + R"( }
script: wl.lua
transform: to_item
destinations:
  - { name: worklist, type: worklist, retry: { attempts: 5, backoff: 10ms } }
)", "wl.yaml"), dir.str() + "/wl.yaml", dir.str(), connectorRegistry()));
    engine.start();
    std::string base = readFile(kSource + "/samples/hl7/orm_o01_nw.hl7");
    auto withId = [&](const std::string& id) {
        hl7::Message m = hl7::Message::parseOrThrow(base);
        m.set("MSH-10", id);
        return m.serialize();
    };
    mllp::ClientOptions o;
    o.port = port;
    o.responseTimeout = std::chrono::seconds(10);
    for (const char* id : {"BADKEY", "NOKEY", "BADACTION", "NOTJSON", "HALFBAD", "GOOD"}) {
        mllp::Client c(o);
        auto r = c.send(withId(id));
        REQUIRE(r.ok());
    }
    REQUIRE(eventually([&] {
        return countStatus(engine, "wl", store::Status::Error) == 5 && countStatus(engine, "wl", store::Status::Sent) == 1;
    }));
    engine.store().flush();
    store::SearchQuery q;
    q.channel = "wl";
    q.status = store::Status::Error;
    std::string errors;
    auto failed = engine.store().search(q);
    CHECK(failed.size() == 5);
    for (const auto& m : failed) {
        auto detail = engine.store().get(m.id);
        REQUIRE(detail);
        REQUIRE(detail->deliveries.size() == 1);
        // Bad content is not retried: one attempt each.
        CHECK(detail->deliveries[0].attempts == 1);
        errors += detail->deliveries[0].error + "\n";
    }
    INFO(errors);
    CHECK(has(errors, "PatientNme: unknown DICOM keyword 'PatientNme'"));
    CHECK(has(errors, "needs an AccessionNumber or a StudyInstanceUID"));
    CHECK(has(errors, "unknown action 'explode'"));
    CHECK(has(errors, "the content is not JSON"));
    CHECK(has(errors, "item 2: Modalty: unknown DICOM keyword 'Modalty'"));  // and item 1 was not written
    CHECK(engine.worklist().count() == 1);
    store::WorklistFilter f;
    f.accessionNumber = "LUA1";
    auto items = engine.worklist().find(f);
    REQUIRE(items.size() == 1);
    CHECK(items[0].status == store::WorklistStatus::InProgress);
    CHECK(items[0].patientId == "MRN482913");
    CHECK(items[0].modality == "US");
}

TEST_CASE("worklist destination: a locked database is retried, then the item is written", "[core][worklist]") {
    TempDir dir;
    core::EngineOptions o = wlOptions(dir);
    o.worklistBusyTimeoutMs = 100;
    core::Engine engine(o, connectorRegistry());
    addRisWorklistInProcess(engine);
    engine.start();
    // Another program holds the database's write lock.
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open((dir.str() + "/var/junction.db").c_str(), &other) == SQLITE_OK);
    sqlite3_busy_timeout(other, 10000);  // the engine's own writes at its start (events) hold the lock briefly
    REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    std::promise<core::SubmitResult> done;
    REQUIRE(engine.submitTo("ris-worklist", core::Inbound{readFile(kSource + "/samples/hl7/orm_o01_nw.hl7"), "test"},
                            [&](core::SubmitResult r) { done.set_value(r); }));
    REQUIRE(done.get_future().get().accepted);  // journaled: acknowledged while SQLite is locked
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // several busy attempts
    CHECK(engine.worklist().count() == 0);
    REQUIRE(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(other);

    REQUIRE(eventually([&] { return countStatus(engine, "ris-worklist", store::Status::Sent) == 1; }));
    CHECK(engine.worklist().count() == 1);
    engine.store().flush();
    store::SearchQuery q;
    q.channel = "ris-worklist";
    auto msgs = engine.store().search(q);
    REQUIRE(msgs.size() == 1);
    auto detail = engine.store().get(msgs[0].id);
    REQUIRE(detail);
    REQUIRE(detail->deliveries.size() == 1);
    CHECK(detail->deliveries[0].status == store::Status::Sent);
    CHECK(detail->deliveries[0].attempts >= 2);  // the busy ones were retries, not errors
}

TEST_CASE("ris-worklist: a message with two orders gives two items", "[core][worklist]") {
    TempDir dir;
    core::Engine engine(wlOptions(dir), connectorRegistry());
    addRisWorklistInProcess(engine);
    engine.start();
    hl7::Message m = hl7::Message::parseOrThrow(readFile(kSource + "/samples/hl7/orm_o01_nw.hl7"));
    std::string text = m.serialize();
    // A second order (ORC/OBR) for the same patient, its own accession and study.
    text += "ORC|NW|ORD778813|ACC20261123003||SC||^^^20261123110000^^R\r"
            "OBR|1|ORD778813|ACC20261123003|CTABD^CT Abdomen^L|||20261123081400|||||||||1234^WELBY^MARCUS^J^^DR||"
            "ACC20261123003|RP77881301|SPS7788130101||||CT|||^^^20261123110000^^R\r"
            "ZDS|1.2.826.0.1.3680043.10.1001.20261123.3^JUNCTION^Application^DICOM\r";
    // Two ZDS now: one per order.
    std::promise<core::SubmitResult> done;
    REQUIRE(engine.submitTo("ris-worklist", core::Inbound{text, "test"}, [&](core::SubmitResult r) { done.set_value(r); }));
    REQUIRE(done.get_future().get().accepted);
    store::WorklistStore& wl = engine.worklist();
    REQUIRE(eventually([&] { return wl.count() == 2; }));
    store::WorklistFilter f;
    f.accessionNumber = "ACC20261123003";
    auto second = wl.find(f);
    REQUIRE(second.size() == 1);
    CHECK(second[0].requestedProcedureId == "RP77881301");
    CHECK(second[0].studyInstanceUid == "1.2.826.0.1.3680043.10.1001.20261123.3");
    CHECK(second[0].spsStartTime == "110000");
    CHECK(second[0].patientId == "MRN482913");
    CHECK(has(second[0].dataset, "CT Abdomen"));
    f.accessionNumber = "ACC20261123001";
    auto first = wl.find(f);
    REQUIRE(first.size() == 1);
    CHECK(first[0].studyInstanceUid == "1.2.826.0.1.3680043.10.1001.20261123.1");
    CHECK(first[0].spsStartTime == "093000");
    CHECK(has(first[0].dataset, "CT Chest without contrast"));
}

TEST_CASE("ris-worklist: an order without study UID gets one, and its update keeps it", "[core][worklist]") {
    TempDir dir;
    core::Engine engine(wlOptions(dir), connectorRegistry());
    addRisWorklistInProcess(engine);
    engine.start();
    auto submit = [&](const std::string& sample) {
        // the sample without its ZDS segment (the study UID)
        std::string all = hl7::Message::parseOrThrow(readFile(kSource + "/samples/hl7/" + sample)).serialize();
        std::string text;
        std::size_t start = 0;
        while (start < all.size()) {
            std::size_t end = all.find('\r', start);
            if (end == std::string::npos) end = all.size();
            std::string segment = all.substr(start, end - start);
            if (!segment.empty() && segment.rfind("ZDS", 0) != 0) text += segment + "\r";
            start = end + 1;
        }
        REQUIRE(text.find("ZDS") == std::string::npos);
        std::promise<core::SubmitResult> done;
        REQUIRE(engine.submitTo("ris-worklist", core::Inbound{text, "test"},
                                [&](core::SubmitResult r) { done.set_value(r); }));
        REQUIRE(done.get_future().get().accepted);
    };
    store::WorklistStore& wl = engine.worklist();
    submit("orm_o01_nw.hl7");
    REQUIRE(eventually([&] { return wl.count() == 1; }));
    auto created = wl.find({});
    REQUIRE(created.size() == 1);
    std::string uid = created[0].studyInstanceUid;
    CHECK(uid.rfind("2.25.", 0) == 0);
    CHECK(has(created[0].dataset, R"("0020000D":{"vr":"UI","Value":[")" + uid + "\"]}"));
    submit("orm_o01_xo.hl7");
    REQUIRE(eventually([&] { return has(wl.get(created[0].id)->dataset, "CTCHESTC"); }));
    auto updated = wl.get(created[0].id);
    CHECK(updated->studyInstanceUid == uid);
    CHECK(has(updated->dataset, R"("0020000D":{"vr":"UI","Value":[")" + uid + "\"]}"));
    CHECK(wl.count() == 1);
}
