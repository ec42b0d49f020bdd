// The dicom_mwl server against real peers: DCMTK's echoscu and findscu (the
// queries of the OpenMRS/Orthanc worklist workflow) and dcmjs-dimse for MWL
// C-FIND plus MPPS N-CREATE / N-SET.
#include <catch2/catch.hpp>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcsequen.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "connectors/dicom/dicom_connectors.h"
#include "connectors/dicom/mwl_connectors.h"
#include "engine/dicom/keyword_json.h"
#include "connectors/dicom/mwl_server.h"
#include "dcmtk_test_support.h"
#include "dicom_test_support.h"
#include "engine/config/node.h"

namespace fs = std::filesystem;
using namespace junction;
using namespace junction::testing;

namespace {

struct Fixture {
    InMemoryWorklist worklist;
    RecordingContext ctx;
    dicom::MwlServerOptions options;
    std::unique_ptr<dicom::MwlServer> server;
    fs::path dir;
    std::unique_ptr<store::WorklistStore> sqlite;  // when set, served instead of `worklist`

    Fixture() {
        static int n = 0;
        dir = fs::temp_directory_path() / ("junction-mwl-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
        fs::remove_all(dir);
        fs::create_directories(dir);
        options.aeTitle = "JUNCTION_MWL";
        options.port = freeDicomPort();
        // Orders of the seed workflow: two CT, one MR, one already completed.
        worklist.upsert(worklistItem({"P1001", "Doe^John", "ACC1001", "CT", "CT01", "20260315", "093000", "CT Head", "1.2.826.0.1.1001"}));
        worklist.upsert(worklistItem({"P1002", "Roe^Jane", "ACC1002", "CT", "CT01", "20260315", "110000", "CT Chest", "1.2.826.0.1.1002"}));
        worklist.upsert(worklistItem({"P2001", "Müller^Jürgen", "ACC2001", "MR", "MR01", "20260316", "080000", "MR Knee", "1.2.826.0.1.2001", "RP1", "19700101"}));
        worklist.upsert(worklistItem({"P3001", "Done^Dan", "ACC3001", "CT", "CT02", "20260314", "080000", "CT Done", "1.2.826.0.1.3001"}));
        worklist.setStatus("ACC3001", store::WorklistStatus::Completed);
    }
    ~Fixture() {
        if (server) server->stop();
        fs::remove_all(dir);
    }

    void start() {
        options.event = [this](const std::string& type, const std::string& text) { ctx.event(type, text); };
        server = std::make_unique<dicom::MwlServer>(
            options, sqlite ? *sqlite : static_cast<store::WorklistStore&>(worklist),
            [this](const dicom::MppsEvent& ev) -> std::string {
                auto r = ctx.submitAndWait(core::Inbound{ev.json, "dicom_mwl " + ev.kind});
                return r.accepted ? std::string() : r.error;
            },
            [this](const std::string& l, const std::string& t) { ctx.log(l, t); });
        server->start();
    }

    std::string peer(const std::string& callingAe = "MODALITY1", const std::string& calledAe = "") const {
        return "-aet " + callingAe + " -aec " + (calledAe.empty() ? options.aeTitle : calledAe) + " 127.0.0.1 " +
               std::to_string(options.port);
    }

    // Runs findscu -W with the given -k keys; returns the responses it extracted.
    std::vector<std::unique_ptr<DcmDataset>> find(const std::vector<std::string>& keys, int* exitCode = nullptr,
                                                  const std::string& callingAe = "MODALITY1") {
        static int q = 0;
        fs::path out = dir / ("q" + std::to_string(q++));
        fs::create_directories(out);
        std::string cmd = "findscu -W -X -od " + out.string();
        for (const auto& k : keys) cmd += " -k \"" + k + "\"";
        cmd += " " + peer(callingAe);
        CommandResult r = run(cmd);
        if (exitCode) {
            *exitCode = r.exitCode;
        } else {
            INFO(r.output);
            REQUIRE(r.exitCode == 0);
        }
        std::vector<fs::path> files;
        for (const auto& e : fs::directory_iterator(out)) files.push_back(e.path());
        std::sort(files.begin(), files.end());
        std::vector<std::unique_ptr<DcmDataset>> responses;
        for (const auto& f : files) {
            DcmFileFormat ff;
            REQUIRE(ff.loadFile(f.c_str()).good());
            responses.emplace_back(ff.getAndRemoveDataset());
        }
        return responses;
    }
};

std::set<std::string> values(const std::vector<std::unique_ptr<DcmDataset>>& rs, const DcmTagKey& tag) {
    std::set<std::string> out;
    for (const auto& r : rs) out.insert(get(*r, tag));
    return out;
}

// The upper layer by hand, for what DCMTK's tools will not send.
std::string bigEndian(std::uint32_t v, int bytes) {
    std::string out;
    for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
    return out;
}

std::string pduItem(unsigned char type, const std::string& payload) {
    return std::string(1, static_cast<char>(type)) + '\0' + bigEndian(static_cast<std::uint32_t>(payload.size()), 2) + payload;
}

std::string uidValue(std::string uid) { return uid.size() % 2 ? uid + '\0' : uid; }

// An A-ASSOCIATE-RQ proposing Verification, saying the peer takes PDUs of up to `maxPdu` bytes.
std::string associateRq(const std::string& calling, const std::string& called, std::uint32_t maxPdu) {
    std::string context = std::string("\x01\0\0\0", 4) + pduItem(0x30, uidValue("1.2.840.10008.1.1")) +
                          pduItem(0x40, uidValue("1.2.840.10008.1.2"));
    std::string user = pduItem(0x51, bigEndian(maxPdu, 4)) + pduItem(0x52, uidValue("1.2.826.0.1.3680043.9.7433.1"));
    auto title = [](std::string ae) { return ae.append(16 - ae.size(), ' '); };
    std::string body = bigEndian(1, 2) + bigEndian(0, 2) + title(called) + title(calling) + std::string(32, '\0') +
                       pduItem(0x10, uidValue("1.2.840.10008.3.1.1.1")) + pduItem(0x20, context) + pduItem(0x50, user);
    return std::string("\x01\0", 2) + bigEndian(static_cast<std::uint32_t>(body.size()), 4) + body;
}

// A P-DATA-TF PDU of one PDV of `size` bytes on presentation context 1.
std::string pDataTf(std::size_t size) {
    std::string pdv = bigEndian(static_cast<std::uint32_t>(size + 2), 4) + "\x01\x03" + std::string(size, '\0');
    return std::string("\x04\0", 2) + bigEndian(static_cast<std::uint32_t>(pdv.size()), 4) + pdv;
}

std::string spsValue(DcmItem& ds, const DcmTagKey& tag) {
    DcmItem* sps = nullptr;
    if (ds.findAndGetSequenceItem(DCM_ScheduledProcedureStepSequence, sps, 0).bad()) return "<no SPS>";
    return get(*sps, tag);
}

}  // namespace

TEST_CASE("echoscu verifies the MWL server") {
    Fixture f;
    f.start();
    CommandResult r = run("echoscu " + f.peer());
    INFO(r.output);
    CHECK(r.exitCode == 0);
    CHECK(f.server->counters().echoes == 1);
    CHECK(f.server->counters().associations == 1);
    // Each association is told to the source's context: opened, then closed.
    CHECK(eventuallyTrue([&] { return f.ctx.events().size() == 2; }));
    CHECK(f.ctx.events() == std::vector<std::string>{"connection.opened: dicom association from MODALITY1@127.0.0.1",
                                                     "connection.closed: dicom association from MODALITY1@127.0.0.1"});
}

TEST_CASE("findscu by scheduled modality returns the open CT steps with the asked keys") {
    Fixture f;
    f.start();
    auto rs = f.find({"ScheduledProcedureStepSequence[0].Modality=CT", "PatientID", "AccessionNumber"});
    REQUIRE(rs.size() == 2);  // ACC3001 is CT too but completed
    CHECK(values(rs, DCM_AccessionNumber) == std::set<std::string>{"ACC1001", "ACC1002"});
    CHECK(values(rs, DCM_PatientID) == std::set<std::string>{"P1001", "P1002"});
    for (auto& r : rs) {
        CHECK(spsValue(*r, DCM_Modality) == "CT");
        // Only the keys asked for: no name, no station, no study UID.
        CHECK_FALSE(r->tagExists(DCM_PatientName));
        CHECK_FALSE(r->tagExists(DCM_StudyInstanceUID));
        DcmItem* sps = nullptr;
        REQUIRE(r->findAndGetSequenceItem(DCM_ScheduledProcedureStepSequence, sps, 0).good());
        CHECK_FALSE(sps->tagExists(DCM_ScheduledStationAETitle));
    }
    // The store was asked with the modality as a column filter.
    REQUIRE_FALSE(f.worklist.filters.empty());
    CHECK(f.worklist.filters.back().modality == "CT");
    CHECK_FALSE(f.worklist.filters.back().includeFinished);
    CHECK(f.server->counters().findMatches == 2);
}

TEST_CASE("findscu by patient returns the item with its values, empty for missing keys") {
    Fixture f;
    f.start();
    auto rs = f.find({"PatientID=P2001", "PatientName", "PatientBirthDate", "AccessionNumber", "RequestedProcedureID",
                      "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
                      "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate"});
    REQUIRE(rs.size() == 1);
    auto& r = *rs[0];
    CHECK(get(r, DCM_PatientID) == "P2001");
    CHECK(get(r, DCM_PatientName) == "Müller^Jürgen");
    CHECK(get(r, DCM_SpecificCharacterSet) == "ISO_IR 192");
    CHECK(get(r, DCM_PatientBirthDate) == "19700101");
    CHECK(get(r, DCM_AccessionNumber) == "ACC2001");
    CHECK(get(r, DCM_RequestedProcedureID) == "RP1");
    CHECK(spsValue(r, DCM_ScheduledStationAETitle) == "MR01");
    CHECK(spsValue(r, DCM_ScheduledProcedureStepStartDate) == "20260316");

    auto rs2 = f.find({"PatientID=P1001", "PatientBirthDate"});
    REQUIRE(rs2.size() == 1);
    DcmElement* birth = nullptr;
    REQUIRE(rs2[0]->findAndGetElement(DCM_PatientBirthDate, birth).good());  // asked for, item has none
    CHECK(birth->getLength() == 0);

    CHECK(f.find({"PatientID=NOBODY"}).empty());
}

TEST_CASE("findscu by requested procedure description inside the step, names, dates and times") {
    Fixture f;
    f.start();
    auto byDesc = f.find({"ScheduledProcedureStepSequence[0].RequestedProcedureDescription=CT Chest", "AccessionNumber"});
    REQUIRE(byDesc.size() == 1);
    CHECK(get(*byDesc[0], DCM_AccessionNumber) == "ACC1002");
    CHECK(spsValue(*byDesc[0], DCM_RequestedProcedureDescription) == "CT Chest");

    auto byName = f.find({"PatientName=doe*", "AccessionNumber"});
    REQUIRE(byName.size() == 1);
    CHECK(get(*byName[0], DCM_AccessionNumber) == "ACC1001");

    auto byTime = f.find({"ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20260315",
                          "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime=1000-1200", "AccessionNumber"});
    REQUIRE(byTime.size() == 1);
    CHECK(get(*byTime[0], DCM_AccessionNumber) == "ACC1002");

    auto byRange = f.find({"ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20260315-20260316",
                           "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=*01", "AccessionNumber"});
    CHECK(values(byRange, DCM_AccessionNumber) == std::set<std::string>{"ACC1001", "ACC1002", "ACC2001"});
}

TEST_CASE("A Latin-1 query is matched in UTF-8 and answered in Latin-1") {
    Fixture f;
    f.start();
    // The shell's printf writes the octal escape as the Latin-1 byte of u-umlaut.
    auto rs = f.find({"SpecificCharacterSet=ISO_IR 100", "PatientName=$(printf 'M\\374ller*')", "PatientID"});
    REQUIRE(rs.size() == 1);
    CHECK(get(*rs[0], DCM_PatientID) == "P2001");
    CHECK(get(*rs[0], DCM_SpecificCharacterSet) == "ISO_IR 100");
    CHECK(get(*rs[0], DCM_PatientName) == "M\xFCller^J\xFCrgen");
}

TEST_CASE("Many matches all come back, each once") {
    Fixture f;
    for (int i = 0; i < 150; ++i) {
        std::string n = std::to_string(i);
        f.worklist.upsert(worklistItem({"PB" + n, "Bulk^" + n, "BULK" + n, "US", "US01", "20260401", "080000", "US Abdomen", "1.2.826.0.2." + n}));
    }
    f.start();
    auto rs = f.find({"ScheduledProcedureStepSequence[0].Modality=US", "AccessionNumber", "PatientName"});
    CHECK(rs.size() == 150);
    auto accessions = values(rs, DCM_AccessionNumber);
    CHECK(accessions.size() == 150);
    CHECK(accessions.count("BULK0") == 1);
    CHECK(accessions.count("BULK149") == 1);
    CHECK(f.server->counters().findMatches == 150);
}

TEST_CASE("include_finished answers completed items too") {
    Fixture f;
    f.options.includeFinished = true;
    f.start();
    auto rs = f.find({"ScheduledProcedureStepSequence[0].Modality=CT", "AccessionNumber"});
    CHECK(values(rs, DCM_AccessionNumber) == std::set<std::string>{"ACC1001", "ACC1002", "ACC3001"});
    CHECK(f.worklist.filters.back().includeFinished);
}

TEST_CASE("Disallowed calling AE, wrong called AE and unserved SOP classes are rejected, the server keeps serving") {
    Fixture f;
    f.options.allowedAes = {"MODALITY1", "CT01"};
    f.start();

    CommandResult denied = run("echoscu " + f.peer("INTRUDER"));
    CHECK(denied.exitCode != 0);
    CHECK_THAT(denied.output, Catch::Contains("Calling AE Title Not Recognized"));

    CommandResult wrongCalled = run("echoscu " + f.peer("MODALITY1", "SOMEONE_ELSE"));
    CHECK(wrongCalled.exitCode != 0);
    CHECK_THAT(wrongCalled.output, Catch::Contains("Called AE Title Not Recognized"));

    // Study Root C-FIND is not served: no presentation context can be accepted.
    CommandResult studyRoot = run("findscu -S -k QueryRetrieveLevel=STUDY -k PatientID " + f.peer());
    CHECK(studyRoot.exitCode != 0);

    CHECK(f.server->counters().rejected == 3);
    auto logs = f.ctx.logs();
    CHECK(anyLineHas(logs, {"INTRUDER", "127.0.0.1", "allowed_aes"}));
    CHECK(anyLineHas(logs, {"MODALITY1", "SOMEONE_ELSE", "127.0.0.1", "called AE title"}));

    CommandResult ok = run("echoscu " + f.peer("CT01"));
    INFO(ok.output);
    CHECK(ok.exitCode == 0);
    int code = 0;
    auto rs = f.find({"PatientID=P1001"}, &code, "CT01");
    CHECK(code == 0);
    CHECK(rs.size() == 1);
}

TEST_CASE("A failing worklist store gives a C-FIND failure status, not a crash") {
    Fixture f;
    f.start();
    f.worklist.failFind = true;
    CommandResult r = run("findscu -v -W -k PatientID=P1001 " + f.peer());
    CHECK_THAT(r.output, Catch::Contains("Final Find Response (Failed: UnableToProcess)"));
    f.worklist.failFind = false;
    CHECK(run("echoscu " + f.peer()).exitCode == 0);
    CHECK(f.server->counters().failures == 1);
}

TEST_CASE("C-CANCEL during a long C-FIND stops the matches, the association goes on") {
    Fixture f;
    const int many = 20000;
    for (int i = 0; i < many; ++i) {
        std::string n = std::to_string(100000 + i);
        f.worklist.upsert(worklistItem({"PL" + n, "Long^List", "ACCL" + n, "CT", "CT09", "20260401", "080000", "CT", "1.2.826.0.9." + n}));
    }
    f.start();
    CommandResult r = run("findscu -v -W --cancel 3 -k PatientName=Long^List -k AccessionNumber " + f.peer());
    INFO(r.output);
    CHECK(r.exitCode == 0);
    CHECK_THAT(r.output, Catch::Contains("Sending Cancel Request"));
    CHECK_THAT(r.output, Catch::Contains("Final Find Response (Cancel: MatchingTerminatedDueToCancelRequest)"));
    auto c = f.server->counters();
    CHECK(c.finds == 1);
    CHECK(c.findMatches == 0);  // counted when a C-FIND completes; this one was cancelled
    auto logs = f.ctx.logs();
    auto cancelled = std::find_if(logs.begin(), logs.end(), [](const std::string& l) { return l.find("cancelled after") != std::string::npos; });
    REQUIRE(cancelled != logs.end());
    long sent = std::stol(cancelled->substr(cancelled->find("cancelled after") + 16));
    CHECK(sent >= 3);
    CHECK(sent < many);
    // The server serves the next query on a new association.
    CHECK(f.find({"PatientID=PL100007", "AccessionNumber"}).size() == 1);
}

TEST_CASE("A broken stored item is skipped and logged, the others are answered") {
    Fixture f;
    store::WorklistItem bad = worklistItem({"P1001", "Bad^Item", "ACCBAD", "CT", "CT01", "20260315", "090000", "X", "1.2.9"});
    bad.dataset = "{\"00100020\": {\"vr\": \"LO\", \"Value\": [";
    f.worklist.upsert(bad);
    f.start();
    auto rs = f.find({"PatientID=P1001", "AccessionNumber"});
    REQUIRE(rs.size() == 1);
    CHECK(get(*rs[0], DCM_AccessionNumber) == "ACC1001");
    auto logs = f.ctx.logs();
    CHECK(std::any_of(logs.begin(), logs.end(), [](const std::string& l) { return l.find("skipped") != std::string::npos; }));
}

TEST_CASE("Garbage on the DICOM port is dropped and the server keeps serving") {
    Fixture f;
    f.start();
    {
        Poco::Net::StreamSocket s(Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(f.options.port)));
        std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        s.sendBytes(junk.data(), static_cast<int>(junk.size()));
        char buf[64];
        s.setReceiveTimeout(Poco::Timespan(5, 0));
        try {
            s.receiveBytes(buf, sizeof buf);  // closed (or aborted) by the server
        } catch (const Poco::Exception&) {
        }
    }
    CommandResult r = run("echoscu " + f.peer());
    INFO(r.output);
    CHECK(r.exitCode == 0);
}

TEST_CASE("Connections that send nothing, or half a request, hold no one up and are closed after 5 s") {
    Fixture f;
    f.start();
    Poco::Net::SocketAddress at("127.0.0.1", static_cast<Poco::UInt16>(f.options.port));
    std::vector<Poco::Net::StreamSocket> silent;
    for (int i = 0; i < 3; ++i) silent.emplace_back(at);
    // An A-ASSOCIATE-RQ header announcing 200 bytes, and only 10 of them.
    Poco::Net::StreamSocket half(at);
    const unsigned char head[] = {0x01, 0x00, 0x00, 0x00, 0x00, 0xC8, 0x00, 0x01, 0x00, 0x00};
    half.sendBytes(head, sizeof head);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));

    CommandResult r = run("echoscu " + f.peer());
    INFO(r.output);
    CHECK(r.exitCode == 0);
    CHECK(f.server->counters().echoes == 1);
    // Answered while every one of them was still waiting for its request.
    auto open = [](Poco::Net::StreamSocket& s) {
        Poco::Net::Socket::SocketList readable{s}, none1, none2;
        return Poco::Net::Socket::select(readable, none1, none2, Poco::Timespan(0)) == 0;
    };
    for (auto& s : silent) CHECK(open(s));
    CHECK(open(half));

    // Then each is closed by the server.
    for (auto* s : {&silent[0], &silent[1], &silent[2], &half}) {
        s->setReceiveTimeout(Poco::Timespan(15, 0));
        char buf[16];
        int n = -1;
        try {
            n = s->receiveBytes(buf, sizeof buf);
        } catch (const Poco::Exception&) {
            n = 0;  // reset
        }
        CHECK(n == 0);
    }
}

TEST_CASE("A PDU larger than the negotiated maximum aborts the association, and the log says who sent it") {
    Fixture f;
    f.options.maxPdu = 4096;
    f.start();
    Poco::Net::StreamSocket s(Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(f.options.port)));
    s.setReceiveTimeout(Poco::Timespan(10, 0));
    std::string rq = associateRq("BIGPDU", f.options.aeTitle, 16384);
    s.sendBytes(rq.data(), static_cast<int>(rq.size()));
    char answer[4096];
    REQUIRE(s.receiveBytes(answer, sizeof answer) > 0);
    REQUIRE(answer[0] == 0x02);  // A-ASSOCIATE-AC: the server takes PDUs of up to 4096 bytes
    std::string big = pDataTf(8192);
    s.sendBytes(big.data(), static_cast<int>(big.size()));
    int n = 0;
    try {
        n = s.receiveBytes(answer, sizeof answer);
    } catch (const Poco::Exception&) {
        n = 0;  // reset
    }
    CHECK((n == 0 || answer[0] == 0x07));  // A-ABORT, or the connection closed
    CHECK(eventuallyTrue([&] { return anyLineHas(f.ctx.logs(), {"BIGPDU", "127.0.0.1", "PDU larger than the maximum"}); }));
    for (const auto& l : f.ctx.logs()) UNSCOPED_INFO(l);
    CHECK(run("echoscu " + f.peer()).exitCode == 0);  // the server keeps serving
}

TEST_CASE("With host 127.0.0.1 the MWL server listens there only") {
    Fixture f;
    f.options.host = "127.0.0.1";
    f.start();
    CHECK(listeningAddresses(f.options.port) == std::vector<std::string>{"127.0.0.1"});
    CommandResult r = run("echoscu " + f.peer());
    INFO(r.output);
    CHECK(r.exitCode == 0);
    f.server->stop();
    f.options.host = "0.0.0.0";
    f.start();
    CHECK(listeningAddresses(f.options.port) == std::vector<std::string>{"0.0.0.0"});
}

TEST_CASE("An item with two scheduled steps is found by its second step, which alone is returned") {
    Fixture f;
    f.sqlite = store::openSqliteWorklist((f.dir / "junction.db").string(), false);
    f.sqlite->upsert(dicom::worklistItemFromKeywords(R"({
        "PatientID": "P7001", "PatientName": "Two^Steps", "AccessionNumber": "ACC7001",
        "RequestedProcedureID": "RP7", "StudyInstanceUID": "1.2.826.0.1.7001",
        "ScheduledProcedureStepSequence": [
            {"Modality": "CT", "ScheduledStationAETitle": "CT01", "ScheduledProcedureStepStartDate": "20260315",
             "ScheduledProcedureStepStartTime": "090000", "ScheduledProcedureStepID": "SPS1"},
            {"Modality": "MR", "ScheduledStationAETitle": "MR01", "ScheduledProcedureStepStartDate": "20260316",
             "ScheduledProcedureStepStartTime": "140000", "ScheduledProcedureStepID": "SPS2"}]})"));
    f.sqlite->upsert(worklistItem({"P1001", "Doe^John", "ACC1001", "CT", "CT01", "20260315", "093000", "CT Head", "1.2.826.0.1.1001"}));
    f.start();
    auto mr = f.find({"ScheduledProcedureStepSequence[0].Modality=MR", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
                      "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20260316", "AccessionNumber"});
    REQUIRE(mr.size() == 1);
    CHECK(get(*mr[0], DCM_AccessionNumber) == "ACC7001");
    DcmSequenceOfItems* seq = nullptr;
    REQUIRE(mr[0]->findAndGetSequence(DCM_ScheduledProcedureStepSequence, seq).good());
    REQUIRE(seq->card() == 1);
    CHECK(get(*seq->getItem(0), DCM_ScheduledProcedureStepID) == "SPS2");
    // No step is MR on the first day.
    CHECK(f.find({"ScheduledProcedureStepSequence[0].Modality=MR",
                  "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20260315"}).empty());
    CHECK(values(f.find({"ScheduledProcedureStepSequence[0].Modality=CT", "AccessionNumber"}), DCM_AccessionNumber) ==
          std::set<std::string>{"ACC1001", "ACC7001"});
}

TEST_CASE("dcmjs-dimse: MWL C-FIND, then MPPS N-CREATE and N-SET COMPLETED update the worklist and the channel") {
    std::string script = sourceDir() + "/tests/node/mwl_client.js";
    REQUIRE(fs::exists(sourceDir() + "/tests/node/node_modules/dcmjs-dimse"));  // scripts/setup.sh runs npm ci
    Fixture f;
    f.start();
    CommandResult r = run("node " + script + " 127.0.0.1 " + std::to_string(f.options.port) + " " + f.options.aeTitle +
                          " CT01 P1001 ACC1001 1.2.826.0.1.1001");
    INFO(r.output);
    REQUIRE(r.exitCode == 0);
    auto line = r.output.substr(r.output.rfind('{', r.output.find("\"mppsUid\"")));
    auto o = Poco::JSON::Parser().parse(line).extract<Poco::JSON::Object::Ptr>();
    CHECK(o->getArray("errors")->size() == 0);
    auto matches = o->getArray("matches");
    for (const auto& l : f.ctx.logs()) UNSCOPED_INFO(l);
    REQUIRE(matches->size() == 1);
    CHECK(matches->getObject(0)->getValue<std::string>("AccessionNumber") == "ACC1001");
    CHECK(matches->getObject(0)->getValue<std::string>("Modality") == "CT");
    CHECK(o->getValue<int>("findStatus") == 0);
    CHECK(o->getValue<int>("createStatus") == 0);
    CHECK(o->getValue<int>("setStatus") == 0);
    std::string mppsUid = o->getValue<std::string>("mppsUid");

    CHECK(f.worklist.statusOf("ACC1001") == store::WorklistStatus::Completed);
    CHECK(f.worklist.statusOf("ACC1002") == store::WorklistStatus::Scheduled);

    auto msgs = f.ctx.messages();
    REQUIRE(msgs.size() == 2);
    auto created = Poco::JSON::Parser().parse(msgs[0].raw).extract<Poco::JSON::Object::Ptr>();
    auto set = Poco::JSON::Parser().parse(msgs[1].raw).extract<Poco::JSON::Object::Ptr>();
    CHECK(created->getValue<std::string>("kind") == "N-CREATE");
    CHECK(set->getValue<std::string>("kind") == "N-SET");
    CHECK(created->getValue<std::string>("sopInstanceUid") == mppsUid);
    CHECK(set->getValue<std::string>("sopInstanceUid") == mppsUid);
    CHECK(set->getValue<std::string>("callingAe") == "CT01");
    auto status = [](Poco::JSON::Object::Ptr m) {
        return m->getObject("00400252")->getArray("Value")->getElement<std::string>(0);
    };
    CHECK(status(created) == "IN PROGRESS");
    CHECK(status(set) == "COMPLETED");
    // The N-SET message carries the whole instance: N-CREATE attributes plus the update.
    CHECK(set->getObject("00400270")->getArray("Value")->getObject(0)->getObject("00080050")->getArray("Value")
              ->getElement<std::string>(0) == "ACC1001");
    CHECK(set->getObject("00400251")->getArray("Value")->getElement<std::string>(0) == "103000");
    CHECK(set->getObject("00080018")->getArray("Value")->getElement<std::string>(0) == mppsUid);
    CHECK(f.server->mppsInstance(mppsUid).find("COMPLETED") != std::string::npos);
    CHECK(f.server->counters().mppsCreates == 1);
    CHECK(f.server->counters().mppsSets == 1);

    // A second run for the same patient: the completed item is no longer offered.
    CommandResult again = run("node " + script + " 127.0.0.1 " + std::to_string(f.options.port) + " " + f.options.aeTitle +
                              " CT01 P1001 ACC1001 1.2.826.0.1.1001");
    INFO(again.output);
    CHECK(again.output.find("\"matches\":[]") != std::string::npos);
}

TEST_CASE("MPPS DISCONTINUED discontinues the worklist item") {
    std::string script = sourceDir() + "/tests/node/mwl_client.js";
    Fixture f;
    f.start();
    CommandResult r = run("FINAL_STATUS=DISCONTINUED node " + script + " 127.0.0.1 " + std::to_string(f.options.port) +
                          " " + f.options.aeTitle + " CT01 P1002 ACC1002 1.2.826.0.1.1002");
    INFO(r.output);
    REQUIRE(r.exitCode == 0);
    CHECK(r.output.find("\"setStatus\":0") != std::string::npos);
    CHECK(f.worklist.statusOf("ACC1002") == store::WorklistStatus::Discontinued);
    auto msgs = f.ctx.messages();
    REQUIRE(msgs.size() == 2);
    CHECK(msgs[1].raw.find("DISCONTINUED") != std::string::npos);
}

TEST_CASE("MPPS refused by the channel gets a processing failure and is not kept") {
    std::string script = sourceDir() + "/tests/node/mwl_client.js";
    Fixture f;
    f.start();
    f.ctx.refuse = true;
    CommandResult r = run("node " + script + " 127.0.0.1 " + std::to_string(f.options.port) + " " + f.options.aeTitle +
                          " CT01 P1002 ACC1002 1.2.826.0.1.1002");
    INFO(r.output);
    REQUIRE(r.exitCode == 0);
    CHECK(r.output.find("\"createStatus\":272") != std::string::npos);  // 0x0110 processing failure
    CHECK(r.output.find("\"setStatus\":274") != std::string::npos);     // 0x0112 no such instance
    CHECK(f.ctx.messages().empty());
    CHECK(f.server->counters().mppsCreates == 0);
}

TEST_CASE("Stopping the server ends an open association at once") {
    std::string script = sourceDir() + "/tests/node/mwl_client.js";
    Fixture f;
    f.start();
    CommandResult r;
    std::thread client([&] {
        r = run("LINGER_MS=60000 node " + script + " 127.0.0.1 " + std::to_string(f.options.port) + " " +
                f.options.aeTitle + " CT01 P1002 ACC1002 1.2.826.0.1.1002");
    });
    bool busy = eventuallyTrue([&] { return f.server->counters().mppsSets == 1; });
    // Another association is served while that one stays open.
    CommandResult echo = run("echoscu " + f.peer());
    CHECK(echo.exitCode == 0);
    auto t0 = std::chrono::steady_clock::now();
    f.server->stop();
    auto took = std::chrono::steady_clock::now() - t0;
    client.join();
    INFO(r.output);
    CHECK(busy);
    CHECK(took < std::chrono::seconds(5));  // not the 60 s the client would linger
    CHECK(r.output.find("\"setStatus\":0") != std::string::npos);
    CHECK(f.worklist.statusOf("ACC1002") == store::WorklistStatus::Completed);
}

TEST_CASE("The dicom_mwl source factory checks its settings and serves through a channel context") {
    InMemoryWorklist worklist;
    worklist.upsert(worklistItem({"P1", "A^B", "ACC1", "CT", "CT01", "20260315", "090000", "CT", "1.2.3"}));
    auto factory = connectors::dicomMwlSourceFactory();
    CHECK(factory->defaultDataType() == "json");
    int port = freeDicomPort();
    auto conf = config::loadYamlString("type: dicom_mwl\nport: " + std::to_string(port) +
                                           "\nhost: 127.0.0.1\nae_title: MWL\nallowed_aes: [CT01]\nmax_pdu: 32KB\n",
                                       "mwl.yaml");
    CHECK(factory->listenPort(conf) == port);
    core::BuildContext bc;
    bc.channel = "mwl";
    CHECK_NOTHROW(factory->validate(conf, bc));
    CHECK_THROWS_WITH(factory->create(conf, bc), Catch::Contains("no engine"));  // no worklist offered
    bc.worklist = &worklist;

    auto badAe = config::loadYamlString("port: 104\nae_title: THIS_AE_TITLE_IS_TOO_LONG\n", "bad.yaml");
    CHECK_THROWS_WITH(factory->validate(badAe, bc), Catch::Contains("bad.yaml") && Catch::Contains("ae_title"));
    auto badPdu = config::loadYamlString("port: 104\nmax_pdu: 1KB\n", "bad.yaml");
    CHECK_THROWS_WITH(factory->validate(badPdu, bc), Catch::Contains("max_pdu"));
    auto badAllowed = config::loadYamlString("port: 104\nallowed_aes: ['A\\\\B']\n", "bad.yaml");
    CHECK_THROWS_WITH(factory->validate(badAllowed, bc), Catch::Contains("allowed_aes"));
    for (const char* host : {"localhost", "10.0.0.300", "::1", "''"}) {
        auto badHost = config::loadYamlString(std::string("port: 104\nhost: ") + host + "\n", "bad.yaml");
        CHECK_THROWS_WITH(factory->validate(badHost, bc), Catch::Contains("bad.yaml:2:") && Catch::Contains("host"));
    }

    auto source = factory->create(conf, bc);
    RecordingContext ctx;
    source->start(ctx);
    CHECK(source->describe() == "dicom_mwl MWL 127.0.0.1:" + std::to_string(port));
    CHECK(listeningAddresses(port) == std::vector<std::string>{"127.0.0.1"});
    std::string peer = " 127.0.0.1 " + std::to_string(port);
    CHECK(run("echoscu -aet CT01 -aec MWL" + peer).exitCode == 0);
    CHECK(run("echoscu -aet OTHER -aec MWL" + peer).exitCode != 0);
    // A second source on the same port cannot start.
    auto clash = factory->create(conf, bc);
    RecordingContext ctx2;
    CHECK_THROWS_AS(clash->start(ctx2), std::runtime_error);
    source->stop();
    CHECK(run("echoscu -aet CT01 -aec MWL" + peer).exitCode != 0);  // stopped: nothing listens

    // The DICOM connector library registers it under its name.
    core::ConnectorRegistry registry;
    connectors::registerDicom(registry);
    const core::SourceFactory* registered = registry.source("dicom_mwl");
    REQUIRE(registered != nullptr);
    CHECK(registered->defaultDataType() == "json");
}

TEST_CASE("An MPPS N-SET after a restart of the server finds its N-CREATE (kept in the store)") {
    std::string script = sourceDir() + "/tests/node/mwl_client.js";
    const std::string uid = "1.2.826.0.1.3680043.10.1010.77.1";
    Fixture f;
    f.start();
    auto node = [&](const std::string& steps) {
        return run("STEPS=" + steps + " MPPS_UID=" + uid + " node " + script + " 127.0.0.1 " +
                   std::to_string(f.options.port) + " " + f.options.aeTitle + " CT01 P1001 ACC1001 1.2.826.0.1.1001");
    };
    CommandResult created = node("create");
    INFO(created.output);
    REQUIRE(created.exitCode == 0);
    CHECK(created.output.find("\"createStatus\":0") != std::string::npos);
    CHECK(f.worklist.statusOf("ACC1001") == store::WorklistStatus::InProgress);
    REQUIRE(f.worklist.getMpps(uid));

    f.server->stop();
    f.server.reset();
    f.start();  // a new server: nothing in memory, the store still has the instance
    CommandResult set = node("set");
    INFO(set.output);
    REQUIRE(set.exitCode == 0);
    CHECK(set.output.find("\"setStatus\":0") != std::string::npos);
    CHECK(f.worklist.statusOf("ACC1001") == store::WorklistStatus::Completed);
    CHECK(f.worklist.getMpps(uid)->find("COMPLETED") != std::string::npos);
    // The N-SET message still carries what the N-CREATE said (the merged instance).
    auto msgs = f.ctx.messages();
    REQUIRE(msgs.size() == 2);
    CHECK(msgs[1].raw.find("ACC1001") != std::string::npos);

    // An N-SET for an instance nobody created is refused (0x0112, no such instance).
    CommandResult unknown = run("STEPS=set MPPS_UID=1.2.826.0.1.3680043.10.1010.77.2 node " + script + " 127.0.0.1 " +
                                std::to_string(f.options.port) + " " + f.options.aeTitle +
                                " CT01 P1001 ACC1001 1.2.826.0.1.1001");
    INFO(unknown.output);
    CHECK(unknown.output.find("\"setStatus\":274") != std::string::npos);
}
