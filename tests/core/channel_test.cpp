#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <tuple>

#include "connectors/mllp/client.h"
#include "engine/config/node.h"
#include "engine/core/engine.h"
#include "engine/core/pipeline.h"
#include "engine/hl7/message.h"
#include "tests/core/test_support.h"
#include "tests/support/connectors.h"

using namespace junction;
using namespace junction::testing;

namespace {

const std::string kSamples = std::string(JUNCTION_SOURCE_DIR) + "/samples/hl7/";

core::EngineOptions options(const TempDir& dir) { return engineOptions(dir.str()); }

core::ChannelConfig channel(const TempDir& dir, const std::string& yaml) { return testChannel(dir.str(), yaml); }

mllp::ClientResult send(int port, const std::string& msg) {
    mllp::ClientOptions o;
    o.port = port;
    o.responseTimeout = std::chrono::seconds(10);
    mllp::Client c(o);
    return c.send(msg);
}

std::string withControlId(std::string msg, const std::string& id) {
    hl7::Message m = hl7::Message::parseOrThrow(msg);
    m.set("MSH-10", id);
    return m.serialize();
}

}  // namespace

TEST_CASE("MLLP in, Lua transform, MLLP out, ACK after commit", "[core][channel]") {
    TempDir dir;
    MllpPeer peer;
    int port = freePort();
    dir.write("t.lua", R"(
function only_orders(msg) return msg:get("MSH-9.1") == "ORM" end
function tag(msg)
  msg:set("MSH-5", "EMR")
  msg:set("ZJN-1", "routed by junction")
end
)");
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: orders
source: { type: mllp, port: )" + std::to_string(port) + R"( }
script: t.lua
filter: only_orders
transform: tag
destinations:
  - { name: emr, type: mllp, host: 127.0.0.1, port: )" + std::to_string(peer.port()) + R"( }
)"));
    engine.start();
    auto r = send(port, readFile(kSamples + "orm_o01_nw.hl7"));
    REQUIRE(r.ok());
    auto ack = hl7::Message::parseOrThrow(r.response);
    CHECK(ack.get("MSA-1") == "AA");
    CHECK(ack.get("MSA-2") == "ORM0001");
    REQUIRE(eventually([&] { return peer.count() == 1; }));
    auto out = hl7::Message::parseOrThrow(peer.received()[0]);
    CHECK(out.get("MSH-5") == "EMR");
    CHECK(out.get("ZJN-1") == "routed by junction");
    CHECK(out.get("PID-5.1") == "DOE");

    // An ADT is filtered: still ACKed, stored as FILTERED, not forwarded.
    auto r2 = send(port, readFile(kSamples + "adt_a04.hl7"));
    REQUIRE(r2.ok());
    CHECK(hl7::Message::parseOrThrow(r2.response).get("MSA-1") == "AA");
    REQUIRE(eventually([&] { return engine.channel("orders")->counters.filtered == 1; }));
    CHECK(peer.count() == 1);
    REQUIRE(eventually([&] { return engine.channel("orders")->counters.sent == 1; }));
    engine.store().flush();
    REQUIRE(eventually([&] {
        engine.store().flush();
        return countStatus(engine, "orders", store::Status::Sent) == 1;
    }));
    CHECK(countStatus(engine, "orders", store::Status::Filtered) == 1);
    auto info = *engine.channel("orders");
    CHECK(info.counters.received == 2);
    CHECK(info.destinations.at(0).counters.sent == 1);
    CHECK(info.destinations.at(0).latency.count == 1);

    // The stored message has its metadata and contents.
    store::SearchQuery q;
    q.channel = "orders";
    q.controlId = "ORM0001";
    auto found = engine.store().search(q);
    REQUIRE(found.size() == 1);
    CHECK(found[0].meta.messageType == "ORM^O01");
    CHECK(found[0].meta.accession == "ACC20261123001");
    CHECK(found[0].meta.patientId == "MRN482913");
    auto detail = engine.store().get(found[0].id);
    REQUIRE(detail);
    CHECK(detail->raw == readFile(kSamples + "orm_o01_nw.hl7"));
    REQUIRE(detail->deliveries.size() == 1);
    CHECK(detail->deliveries[0].status == store::Status::Sent);
    CHECK(detail->deliveries[0].response.find("MSA|AA|ORM0001") != std::string::npos);
    engine.stop();
}

TEST_CASE("development keeps the transformed message, production does not", "[core][channel]") {
    TempDir dir;
    dir.write("t.lua", R"(
function tag(msg) msg:set("MSH-5", "EMR") end
)");
    core::Engine engine(options(dir), connectorRegistry());
    int dev = freePort(), prod = freePort();
    for (auto [name, port, mode] : {std::tuple{"dev", dev, "development"}, std::tuple{"prod", prod, "production"}})
        engine.addChannel(channel(dir, std::string("channel: ") + name + "\nsource: { type: mllp, port: " +
                                           std::to_string(port) + " }\nscript: t.lua\ntransform: tag\nstorage: " + mode +
                                           "\ndestinations: []\n"));
    engine.start();
    std::string raw = readFile(kSamples + "orm_o01_nw.hl7");
    REQUIRE(send(dev, raw).ok());
    REQUIRE(send(prod, raw).ok());
    engine.store().flush();
    for (const char* name : {"dev", "prod"}) {
        store::SearchQuery q;
        q.channel = name;
        auto found = engine.store().search(q);
        REQUIRE(found.size() == 1);
        auto detail = engine.store().get(found[0].id);
        REQUIRE(detail);
        CHECK(detail->raw == raw);
        if (std::string(name) == "dev") {
            CHECK(hl7::Message::parseOrThrow(detail->transformed).get("MSH-5") == "EMR");
        } else {
            CHECK(detail->transformed.empty());
        }
    }
    engine.stop();
}

TEST_CASE("the accession search column falls back from OBR-18 to ORC-3, IPC-1 and OBR-3", "[core][channel]") {
    auto meta = [](const std::string& text) {
        std::string err;
        auto payload = core::makePayload("hl7v2", text, &err);
        REQUIRE(payload);
        return core::metadataOf(*payload);
    };
    std::string msh = "MSH|^~\\&|RIS|H|EMR|H|20261123||ORM^O01|C1|P|2.5.1\r";
    auto m = meta(msh + "PID|1||MRN1^^^H~MRN2||DOE^JANE\rORC|NW|PLC9^RIS\rOBR|1|PLC9|FIL7^RIS|||||||||||||||ACC1\r");
    CHECK(m.messageType == "ORM^O01");
    CHECK(m.controlId == "C1");
    CHECK(m.patientId == "MRN1");
    CHECK(m.accession == "ACC1");
    CHECK(meta(msh + "ORC|NW|PLC9^RIS|FIL8^RIS\rOBR|1|PLC9|FIL7^RIS\r").accession == "FIL8");
    CHECK(meta(msh + "IPC|ACC3^X|REQ|STU\rOBR|1||FIL7^RIS\r").accession == "ACC3");
    CHECK(meta(msh + "OBR|1||FIL7^RIS\r").accession == "FIL7");
    CHECK(meta(msh + "EVN|A04\r").accession.empty());
}

TEST_CASE("a DICOM source's message gets its patient id and accession number as search columns", "[core][channel]") {
    auto meta = [](const std::string& text) {
        std::string err;
        auto payload = core::makePayload("json", text, &err);
        REQUIRE(payload);
        return core::metadataOf(*payload);
    };
    auto m = meta(R"({"00080050":{"vr":"SH","Value":["ACC-7"]},"00100020":{"vr":"LO","Value":["1CT1"]},)"
                  R"("00100010":{"vr":"PN","Value":[{"Alphabetic":"DOE^JANE"}]},"file":"/d/1.dcm"})");
    CHECK(m.patientId == "1CT1");
    CHECK(m.accession == "ACC-7");
    CHECK(m.messageType.empty());
    auto empty = meta(R"({"00080050":{"vr":"SH"},"00100020":{"vr":"LO","Value":[]}})");
    CHECK(empty.patientId.empty());
    CHECK(empty.accession.empty());
    CHECK(meta(R"({"patient":"00100020"})").patientId.empty());  // not DICOM JSON
    CHECK(meta(R"([1, 2])").patientId.empty());
}

TEST_CASE("malformed HL7 gets a NAK with ERR and is kept as ERROR", "[core][channel]") {
    TempDir dir;
    int port = freePort();
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: in
source: { type: mllp, port: )" + std::to_string(port) + R"( }
destinations:
  - { name: out, type: file, directory: out }
)"));
    engine.start();
    std::string bad = "MSH|^~\\&|LAB|HOSP|EMR|HOSP|20260101||ORU^R01|BAD1|P|2.4\rP!D|1\r";
    auto r = send(port, bad);
    REQUIRE(r.ok());
    auto nak = hl7::Message::parseOrThrow(r.response);
    CHECK(nak.get("MSA-1") == "AE");
    CHECK(nak.get("MSA-2") == "BAD1");
    CHECK(nak.findSegment("ERR"));
    CHECK(nak.get("MSA-3").find("invalid segment id") != std::string::npos);
    // the engine keeps serving
    auto ok = send(port, readFile(kSamples + "adt_a08.hl7"));
    REQUIRE(ok.ok());
    CHECK(hl7::Message::parseOrThrow(ok.response).get("MSA-1") == "AA");
    REQUIRE(eventually([&] { return std::filesystem::exists(dir.path / "out"); }));
    engine.store().flush();
    store::SearchQuery q;
    q.channel = "in";
    q.status = store::Status::Error;
    auto errors = engine.store().search(q);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].error.find("invalid segment id") != std::string::npos);
    CHECK(engine.store().get(errors[0].id)->raw == bad);
}

TEST_CASE("Lua errors and infinite loops error that message only", "[core][channel]") {
    TempDir dir;
    int port = freePort();
    MllpPeer peer;
    dir.write("t.lua", R"(
function transform(msg)
  local id = msg:get("MSH-10")
  if id == "LOOP" then while true do end end
  if id == "BOOM" then error("no accession for " .. id) end
end
)");
    auto opts = options(dir);
    opts.limits.instructions = 2000000;
    core::Engine engine(opts, connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: guarded
source: { type: mllp, port: )" + std::to_string(port) + R"(, ack: after_destinations }
script: t.lua
transform: transform
destinations:
  - { name: peer, type: mllp, host: 127.0.0.1, port: )" + std::to_string(peer.port()) + R"( }
)"));
    engine.start();
    std::string orm = readFile(kSamples + "orm_o01_nw.hl7");
    auto boom = send(port, withControlId(orm, "BOOM"));
    REQUIRE(boom.ok());
    auto nak = hl7::Message::parseOrThrow(boom.response);
    CHECK(nak.get("MSA-1") == "AE");
    CHECK(nak.get("MSA-3").find("t.lua:5:") != std::string::npos);
    auto loop = send(port, withControlId(orm, "LOOP"));
    REQUIRE(loop.ok());
    CHECK(hl7::Message::parseOrThrow(loop.response).get("MSA-1") == "AE");
    CHECK(hl7::Message::parseOrThrow(loop.response).get("MSA-3").find("instruction") != std::string::npos);
    // after_destinations: the peer's own ACK comes back
    auto good = send(port, withControlId(orm, "GOOD"));
    REQUIRE(good.ok());
    auto relayed = hl7::Message::parseOrThrow(good.response);
    CHECK(relayed.get("MSH-3") == "PEER");
    CHECK(relayed.get("MSA-2") == "GOOD");
    CHECK(peer.count() == 1);
    engine.store().flush();
    CHECK(countStatus(engine, "guarded", store::Status::Error) == 2);
}

TEST_CASE("routing, destination filters and transforms, file destination templates", "[core][channel]") {
    TempDir dir;
    int port = freePort();
    dir.write("t.lua", R"(
function pick(msg)
  if msg:get("ORC-1") == "CA" then route("cancels") else route("orders", "audit") end
end
function audit_only_ct(msg) return msg:get("OBR-24") == "CT" end
function audit_shape(msg) return "AUDIT " .. msg:get("MSH-10") .. " " .. msg:get("OBR-18") end
)");
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: router
source: { type: mllp, port: )" + std::to_string(port) + R"( }
script: t.lua
transform: pick
destinations:
  - { name: orders, type: file, directory: out/orders, filename: "${MSH-10}.hl7" }
  - { name: cancels, type: file, directory: out/cancels, filename: "${OBR-18}-${MSH-10}.hl7" }
  - { name: audit, type: file, directory: out/audit, filename: "${id}.txt", filter: audit_only_ct, transform: audit_shape }
)"));
    engine.start();
    for (const char* f : {"orm_o01_nw.hl7", "orm_o01_ca.hl7", "omi_o23.hl7"}) REQUIRE(send(port, readFile(kSamples + f)).ok());
    REQUIRE(eventually([&] {
        auto i = engine.channel("router");
        return i->destinations[0].counters.sent == 2 && i->destinations[1].counters.sent == 1 &&
               i->destinations[2].counters.sent + i->destinations[2].counters.filtered == 2;
    }));
    CHECK(readFile((dir.path / "out/orders/ORM0001.hl7").string()) == readFile(kSamples + "orm_o01_nw.hl7"));
    CHECK(std::filesystem::exists(dir.path / "out/orders/OMI0001.hl7"));
    CHECK(std::filesystem::exists(dir.path / "out/cancels/ACC20261123001-ORM0002.hl7"));
    auto audit = std::vector<std::filesystem::path>();
    for (auto& e : std::filesystem::directory_iterator(dir.path / "out/audit")) audit.push_back(e.path());
    REQUIRE(audit.size() == 1);  // the MR order was filtered for audit
    CHECK(readFile(audit[0].string()) == "AUDIT ORM0001 ACC20261123001");
    CHECK(engine.channel("router")->destinations[2].counters.filtered == 1);
}

TEST_CASE("retries with backoff, then ERROR, a queued message survives a restart", "[core][channel]") {
    TempDir dir;
    int port = freePort();
    int downPort = freePort();  // nothing listens here (yet)
    auto yaml = R"(
channel: relay
source: { type: mllp, port: )" + std::to_string(port) + R"( }
destinations:
  - name: down
    type: mllp
    host: 127.0.0.1
    port: )" + std::to_string(downPort) + R"(
    connect_timeout: 200ms
    retry: { attempts: 3, backoff: 20ms, max_backoff: 50ms }
)";
    {
        core::Engine engine(options(dir), connectorRegistry());
        engine.addChannel(channel(dir, yaml));
        engine.start();
        REQUIRE(send(port, withControlId(readFile(kSamples + "orm_o01_nw.hl7"), "R1")).ok());
        REQUIRE(eventually([&] { return engine.channel("relay")->destinations[0].counters.errored == 1; }));
        CHECK(engine.channel("relay")->destinations[0].counters.retried == 2);
        CHECK(engine.channel("relay")->destinations[0].lastError.find("refused") != std::string::npos);
        engine.store().flush();
        CHECK(countStatus(engine, "relay", store::Status::Error) == 1);
    }
    // With unlimited-looking retries, a message stays queued across a restart and is
    // delivered once the peer comes up.
    std::string patient = yaml;
    patient.replace(patient.find("attempts: 3"), 11, "attempts: 1000");
    {
        core::Engine engine(options(dir), connectorRegistry());
        engine.addChannel(channel(dir, patient));
        engine.start();
        REQUIRE(send(port, withControlId(readFile(kSamples + "orm_o01_nw.hl7"), "R2")).ok());
        REQUIRE(eventually([&] { return engine.channel("relay")->destinations[0].counters.retried >= 2; }));
        engine.stop();
    }
    MllpPeer peer(downPort);
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, patient));
    engine.start();
    REQUIRE(eventually([&] { return peer.count() == 1; }));
    CHECK(MllpPeer::controlId(peer.received()[0]) == "R2");
}

TEST_CASE("a peer that accepts and never answers times out and is retried", "[core][channel]") {
    TempDir dir;
    int port = freePort();
    MllpPeer peer;
    peer.silent = true;
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: slow
source: { type: mllp, port: )" + std::to_string(port) + R"( }
destinations:
  - { name: mute, type: mllp, host: 127.0.0.1, port: )" + std::to_string(peer.port()) +
                                      R"(, response_timeout: 200ms, retry: { attempts: 2, backoff: 10ms } }
)"));
    engine.start();
    auto r = send(port, readFile(kSamples + "orm_o01_nw.hl7"));
    REQUIRE(r.ok());  // the sender is answered once the message is stored
    CHECK(hl7::Message::parseOrThrow(r.response).get("MSA-1") == "AA");
    REQUIRE(eventually([&] { return engine.channel("slow")->destinations[0].counters.errored == 1; }));
    CHECK(peer.count() == 2);
    CHECK(engine.channel("slow")->destinations[0].lastError.find("no response") != std::string::npos);
}

TEST_CASE("pause holds the source, redeploy keeps queued messages", "[core][channel]") {
    TempDir dir;
    int port = freePort();
    dir.write("channels/c.yaml", R"(
channel: c
source: { type: mllp, port: )" + std::to_string(port) + R"( }
destinations:
  - { name: out, type: file, directory: out }
)");
    auto opts = options(dir);
    core::Engine engine(opts, connectorRegistry());
    REQUIRE(engine.loadChannels().empty());
    engine.start();
    REQUIRE(send(port, readFile(kSamples + "adt_a04.hl7")).ok());
    REQUIRE(engine.pauseChannel("c"));
    CHECK(engine.channel("c")->state == core::ChannelState::Paused);
    std::atomic<bool> answered{false};
    std::thread t([&] {
        send(port, readFile(kSamples + "adt_a08.hl7"));
        answered = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK_FALSE(answered.load());
    REQUIRE(engine.resumeChannel("c"));
    t.join();
    CHECK(answered.load());
    dir.write("channels/c.yaml", R"(
channel: c
description: redeployed
source: { type: mllp, port: )" + std::to_string(port) + R"( }
destinations:
  - { name: out, type: file, directory: out2 }
)");
    engine.redeployChannel("c");
    CHECK(engine.channel("c")->description == "redeployed");
    REQUIRE(send(port, readFile(kSamples + "orm_o01_nw.hl7")).ok());
    REQUIRE(eventually([&] { return std::filesystem::exists(dir.path / "out2"); }));
}

TEST_CASE("file source reads, splits batches and moves files after storing", "[core][channel]") {
    TempDir dir;
    dir.write("in/batch.hl7", readFile(kSamples + "batch.hl7"));
    dir.write("in/skip.txt", "not matched");
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: files
source: { type: file, directory: in, pattern: "*.hl7", poll_interval: 50ms }
destinations:
  - { name: out, type: file, directory: out, filename: "${MSH-10}.hl7" }
)"));
    engine.start();
    REQUIRE(eventually([&] { return engine.channel("files")->destinations[0].counters.sent == 3; }));
    for (const char* id : {"BAT0001", "BAT0002", "BAT0003"})
        CHECK(std::filesystem::exists(dir.path / "out" / (std::string(id) + ".hl7")));
    CHECK(std::filesystem::exists(dir.path / "in/processed/batch.hl7"));
    CHECK_FALSE(std::filesystem::exists(dir.path / "in/batch.hl7"));
    CHECK(std::filesystem::exists(dir.path / "in/skip.txt"));
}

TEST_CASE("channel destination hands off to another channel durably", "[core][channel]") {
    TempDir dir;
    int port = freePort();
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: front
source: { type: mllp, port: )" + std::to_string(port) + R"( }
destinations:
  - { name: next, type: channel, channel: back }
)"));
    engine.addChannel(channel(dir, R"(
channel: back
source: { type: channel }
destinations:
  - { name: out, type: file, directory: out, filename: "${MSH-10}.hl7" }
)"));
    engine.start();
    REQUIRE(send(port, readFile(kSamples + "orm_o01_nw.hl7")).ok());
    REQUIRE(eventually([&] { return std::filesystem::exists(dir.path / "out/ORM0001.hl7"); }));
    CHECK(engine.channel("back")->counters.received == 1);
    CHECK(engine.channel("front")->destinations[0].counters.sent == 1);
}

TEST_CASE("back-pressure: a full queue holds the source", "[core][channel]") {
    TempDir dir;
    int port = freePort();
    MllpPeer peer;
    peer.silent = true;
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: bp
queue_limit: 3
source: { type: mllp, port: )" + std::to_string(port) + R"( }
destinations:
  - { name: stuck, type: mllp, host: 127.0.0.1, port: )" + std::to_string(peer.port()) +
                                      R"(, response_timeout: 30s }
)"));
    engine.start();
    std::atomic<int> acked{0};
    std::thread sender([&] {
        mllp::ClientOptions o;
        o.port = port;
        o.responseTimeout = std::chrono::seconds(20);
        mllp::Client c(o);
        for (int i = 0; i < 8; ++i) {
            if (!c.send(withControlId(readFile(kSamples + "adt_a04.hl7"), "BP" + std::to_string(i))).ok()) break;
            ++acked;
        }
    });
    REQUIRE(eventually([&] { return engine.channel("bp")->backPressure; }, std::chrono::seconds(5)));
    int held = acked.load();
    CHECK(held <= 5);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(acked.load() == held);
    // Stopping does not wait out the 30 s response timeout of the send in flight,
    // and releases the held sender (its connection is closed).
    auto t0 = std::chrono::steady_clock::now();
    engine.stopChannel("bp");
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
    sender.join();
    engine.store().flush();
    CHECK(countStatus(engine, "bp", store::Status::Queued) >= 1);  // still queued, not lost
}

TEST_CASE("pruning drops finished messages older than the channel's age", "[core][channel]") {
    TempDir dir;
    int port = freePort();
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: short
prune: 50ms
source: { type: mllp, port: )" + std::to_string(port) + R"( }
destinations:
  - { name: out, type: file, directory: out }
)"));
    engine.start();
    REQUIRE(send(port, readFile(kSamples + "adt_a04.hl7")).ok());
    REQUIRE(eventually([&] { return engine.channel("short")->destinations[0].counters.sent == 1; }));
    engine.store().flush();
    CHECK(countStatus(engine, "short", store::Status::Sent) == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(engine.pruneNow() == 1);
    CHECK(countStatus(engine, "short", store::Status::Sent) == 0);
}

TEST_CASE("json, xml and raw data types through Lua", "[core][channel]") {
    TempDir dir;
    dir.write("t.lua", R"(
function enrich(msg) msg.seen = true; msg.count = (msg.count or 0) + 1 end
function rename(doc) doc.attrs = doc.attrs or {}; doc.attrs.checked = "yes" end
function upper(text) return string.upper(text) end
)");
    dir.write("in-json/a.json", R"({"patient":"DOE","count":41})");
    dir.write("in-xml/a.xml", R"(<order id="7"><patient>DOE</patient></order>)");
    dir.write("in-raw/a.txt", "plain text");
    core::Engine engine(options(dir), connectorRegistry());
    for (auto [name, type, fn, ext] : {std::tuple{"json", "json", "enrich", "json"}, std::tuple{"xml", "xml", "rename", "xml"},
                                       std::tuple{"raw", "raw", "upper", "txt"}}) {
        engine.addChannel(channel(dir, std::string("channel: ") + name + "\nsource: { type: file, directory: in-" + name +
                                           ", poll_interval: 50ms, data_type: " + type + " }\nscript: t.lua\ntransform: " +
                                           fn + "\ndestinations:\n  - { name: out, type: file, directory: out-" + name +
                                           ", filename: \"${id}." + ext + "\" }\n"));
    }
    engine.start();
    auto firstFile = [&](const std::string& d) {
        std::string found;
        if (std::filesystem::exists(dir.path / d))
            for (auto& e : std::filesystem::directory_iterator(dir.path / d)) found = readFile(e.path().string());
        return found;
    };
    REQUIRE(eventually([&] { return !firstFile("out-json").empty() && !firstFile("out-xml").empty() && !firstFile("out-raw").empty(); }));
    std::string json = firstFile("out-json");
    CHECK(json.find("\"count\":42") != std::string::npos);
    CHECK(json.find("\"seen\":true") != std::string::npos);
    CHECK(json.find("\"patient\":\"DOE\"") != std::string::npos);
    std::string xml = firstFile("out-xml");
    CHECK(xml.find("checked=\"yes\"") != std::string::npos);
    CHECK(xml.find("<patient>DOE</patient>") != std::string::npos);
    CHECK(firstFile("out-raw") == "PLAIN TEXT");
}

TEST_CASE("several workers process in parallel and lose nothing", "[core][channel]") {
    TempDir dir;
    int port = freePort();
    dir.write("t.lua", "function tag(msg) msg:set('ZJN-1', 'w') end\n");
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: par
workers: 3
source: { type: mllp, port: )" + std::to_string(port) + R"( }
script: t.lua
transform: tag
destinations:
  - { name: out, type: file, directory: out, filename: "${MSH-10}.hl7" }
)"));
    engine.start();
    std::vector<std::thread> senders;
    for (int t = 0; t < 4; ++t)
        senders.emplace_back([&, t] {
            mllp::ClientOptions o;
            o.port = port;
            mllp::Client c(o);
            for (int i = 0; i < 25; ++i)
                c.send(withControlId(readFile(kSamples + "adt_a04.hl7"), "P" + std::to_string(t) + "-" + std::to_string(i)));
        });
    for (auto& s : senders) s.join();
    REQUIRE(eventually([&] { return engine.channel("par")->destinations[0].counters.sent == 100; }));
    std::size_t files = 0;
    for (auto& e : std::filesystem::directory_iterator(dir.path / "out")) {
        ++files;
        CHECK(readFile(e.path().string()).find("ZJN|w") != std::string::npos);
    }
    CHECK(files == 100);
}

TEST_CASE("MLLP over TLS", "[core][channel]") {
    TempDir dir;
    std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost -keyout " + dir.str() +
                      "/key.pem -out " + dir.str() + "/cert.pem >/dev/null 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
    int port = freePort();
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: secure
source: { type: mllp, port: )" + std::to_string(port) + R"(, tls: { cert: cert.pem, key: key.pem } }
destinations:
  - { name: out, type: file, directory: out }
)"));
    engine.start();
    mllp::ClientOptions o;
    o.port = port;
    o.tls = true;
    o.caFile = dir.str() + "/cert.pem";
    mllp::Client tls(o);
    auto r = tls.send(readFile(kSamples + "orm_o01_nw.hl7"));
    INFO(r.error);
    REQUIRE(r.ok());
    CHECK(hl7::Message::parseOrThrow(r.response).get("MSA-1") == "AA");
    // A plain-text client gets no ACK from a TLS listener.
    mllp::ClientOptions plainOpts;
    plainOpts.port = port;
    plainOpts.responseTimeout = std::chrono::milliseconds(500);
    mllp::Client plain(plainOpts);
    CHECK_FALSE(plain.send(readFile(kSamples + "orm_o01_nw.hl7")).ok());
    CHECK(engine.channel("secure")->counters.received == 1);
}

TEST_CASE("a paused file channel stops promptly", "[core][channel]") {
    TempDir dir;
    dir.write("in/a.hl7", readFile(kSamples + "adt_a04.hl7"));
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: held
source: { type: file, directory: in, poll_interval: 20ms }
destinations:
  - { name: out, type: file, directory: out }
)"));
    engine.start();
    REQUIRE(eventually([&] { return engine.channel("held")->counters.received == 1; }));
    engine.pauseChannel("held");
    dir.write("in/b.hl7", readFile(kSamples + "adt_a08.hl7"));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the poller is now held
    auto t0 = std::chrono::steady_clock::now();
    engine.stopChannel("held");
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
    CHECK(engine.channel("held")->state == core::ChannelState::Stopped);
    CHECK(std::filesystem::exists(dir.path / "in/b.hl7"));  // not read, not lost
}

TEST_CASE("loading reports duplicate names and port clashes with the file, the rest run", "[core][channel]") {
    TempDir dir;
    int port = freePort();
    std::string mllp = "source: { type: mllp, port: " + std::to_string(port) + " }\ndestinations: []\n";
    dir.write("channels/a.yaml", "channel: first\n" + mllp);
    dir.write("channels/b.yaml", "channel: first\nsource: { type: file, directory: x }\ndestinations: []\n");
    dir.write("channels/c.yaml", "channel: clash\n" + mllp);
    dir.write("channels/d.yaml", "channel: dupdest\nsource: { type: file, directory: y }\ndestinations:\n"
                                 "  - { name: o, type: file, directory: o }\n  - { name: o, type: file, directory: p }\n");
    dir.write("channels/e.yaml", "channel: fine\nsource: { type: file, directory: z }\ndestinations: []\n");
    core::Engine engine(options(dir), connectorRegistry());
    auto problems = engine.loadChannels();
    REQUIRE(problems.size() == 3);
    CHECK(problems[0].error.find("b.yaml:1:1: duplicate channel name 'first'") != std::string::npos);
    CHECK(problems[1].error.find("c.yaml:") != std::string::npos);
    CHECK(problems[1].error.find("already used by channel first") != std::string::npos);
    CHECK(problems[2].error.find("d.yaml:5:") != std::string::npos);
    CHECK(problems[2].error.find("duplicate destination name 'o'") != std::string::npos);
    CHECK(engine.channels().size() == 2);
}

TEST_CASE("destination threads send over several connections and keep order per order_by key", "[core][channel]") {
    TempDir dir;
    MllpPeer peer;
    int port = freePort();
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: fanout
source: { type: mllp, port: )" + std::to_string(port) + R"( }
destinations:
  - { name: emr, type: mllp, host: 127.0.0.1, port: )" + std::to_string(peer.port()) + R"(, threads: 4, order_by: PID-3.1 }
)"));
    engine.start();
    const int kMessages = 240, kPatients = 8;
    std::string base = readFile(kSamples + "orm_o01_nw.hl7");
    mllp::ClientOptions o;
    o.port = port;
    o.responseTimeout = std::chrono::seconds(10);
    mllp::Client client(o);
    for (int i = 0; i < kMessages; ++i) {
        hl7::Message m = hl7::Message::parseOrThrow(base);
        m.set("MSH-10", "C" + std::to_string(i));
        m.set("PID-3.1", "P" + std::to_string(i % kPatients));
        auto r = client.send(m.serialize());
        REQUIRE(r.ok());
    }
    REQUIRE(eventually([&] { return peer.count() == static_cast<std::size_t>(kMessages); }));
    CHECK(peer.connections() >= 2);
    CHECK(peer.connections() <= 4);
    std::map<std::string, int> last;
    for (const auto& raw : peer.received()) {
        hl7::Message m = hl7::Message::parseOrThrow(raw);
        std::string patient = m.get("PID-3.1");
        int n = std::stoi(m.get("MSH-10").substr(1));
        CHECK(n % kPatients == std::stoi(patient.substr(1)));
        auto it = last.find(patient);
        if (it != last.end()) CHECK(n > it->second);  // each patient's messages arrive in order
        last[patient] = n;
    }
    CHECK(last.size() == static_cast<std::size_t>(kPatients));
    engine.stop();
    CHECK(countStatus(engine, "fanout", store::Status::Sent) == static_cast<std::size_t>(kMessages));
}

TEST_CASE("order_by must be an HL7 path", "[core][channel]") {
    TempDir dir;
    CHECK_THROWS_WITH(channel(dir, R"(
channel: bad
source: { type: mllp, port: 7000 }
destinations:
  - { name: emr, type: mllp, host: 127.0.0.1, port: 7001, threads: 2, order_by: "not a path" }
)"),
                      Catch::Contains("order_by") && Catch::Contains("test.yaml:5"));
}

TEST_CASE("a pipelined MLLP destination sends its queue in windows, a refused message is retried after the rest of its window", "[core][channel]") {
    TempDir dir;
    int port = freePort();
    int peerPort = freePort();  // nothing listens there at first: everything queues
    auto yaml = R"(
channel: piped
source: { type: mllp, port: )" + std::to_string(port) + R"( }
destinations:
  - name: emr
    type: mllp
    host: 127.0.0.1
    port: )" + std::to_string(peerPort) + R"(
    window: 8
    retry: { attempts: 1000, backoff: 50ms, max_backoff: 50ms, jitter: 0, on_reject: true }
)";
    std::string base = readFile(kSamples + "orm_o01_nw.hl7");
    {
        core::Engine engine(options(dir), connectorRegistry());
        engine.addChannel(channel(dir, yaml));
        engine.start();
        for (int i = 0; i < 10; ++i) REQUIRE(send(port, withControlId(base, "W" + std::to_string(i))).ok());
        REQUIRE(eventually([&] { return engine.channel("piped")->destinations[0].counters.retried >= 1; }));
        engine.stop();
    }
    // The receiver refuses W3 once. At the restart the ten are queued: the first
    // window is W0..W7 in one go; W3 is sent again after it, with W8 and W9.
    MllpPeer peer(peerPort);
    std::atomic<int> refusals{0};
    peer.reply = [&](const std::string& msg) {
        std::string id = MllpPeer::controlId(msg);
        std::string code = id == "W3" && refusals++ == 0 ? "AR" : "AA";
        return "MSH|^~\\&|PEER|PEER|||20260101000000||ACK|A" + id + "|P|2.5.1\rMSA|" + code + "|" + id + "\r";
    };
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, yaml));
    engine.start();
    REQUIRE(eventually([&] { return engine.channel("piped")->destinations[0].counters.sent == 10; }));
    std::vector<std::string> order;
    for (const auto& m : peer.received()) order.push_back(MllpPeer::controlId(m));
    CHECK(order == std::vector<std::string>{"W0", "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W3", "W8", "W9"});
    CHECK(peer.connections() == 1);
    engine.stop();
    CHECK(countStatus(engine, "piped", store::Status::Sent) == 10);
}

TEST_CASE("a down destination queues in the store: intake goes on, memory holds the head, all is delivered in order", "[core][channel]") {
    TempDir dir;
    int port = freePort(), peerPort = freePort();
    const int kCount = 12000;  // more than the 10,000 that once stopped the channel, and than 4,096 held
    std::string yaml = R"(
channel: backlog
storage: production
source: { type: mllp, port: )" + std::to_string(port) + R"( }
destinations:
  - { name: ris, type: mllp, host: 127.0.0.1, port: )" + std::to_string(peerPort) +
                       R"(, connect_timeout: 1s, retry: { attempts: 1000000, backoff: 50ms, max_backoff: 200ms } }
)";
    std::string sample = readFile(kSamples + "adt_a04.hl7");
    {
        core::Engine engine(options(dir), connectorRegistry());
        engine.addChannel(channel(dir, yaml));
        engine.start();
        mllp::ClientOptions o;
        o.port = port;
        o.responseTimeout = std::chrono::seconds(10);
        mllp::Client c(o);
        int acked = 0;
        for (int i = 0; i < kCount; ++i) {
            if (!c.send(withControlId(sample, "Q" + std::to_string(i))).ok()) break;
            ++acked;
        }
        REQUIRE(acked == kCount);  // no back-pressure: the queue is on disk
        auto info = engine.channel("backlog")->destinations.at(0);
        CHECK(info.queued == kCount);
        CHECK(info.held <= 4096);
        CHECK_FALSE(engine.channel("backlog")->backPressure);
    }
    // After a restart: only the head is read back; then everything goes, in order.
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, yaml));
    engine.start();
    CHECK(engine.channel("backlog")->destinations.at(0).held <= 4096);
    MllpPeer peer(peerPort);
    std::vector<std::string> ids;
    REQUIRE(eventually(
        [&] {
            ids.clear();
            std::set<std::string> seen;
            for (const auto& m : peer.received())
                if (seen.insert(MllpPeer::controlId(m)).second) ids.push_back(MllpPeer::controlId(m));
            return ids.size() == static_cast<std::size_t>(kCount);
        },
        std::chrono::seconds(60)));
    bool inOrder = true;
    for (int i = 0; i < kCount; ++i) inOrder = inOrder && ids[static_cast<std::size_t>(i)] == "Q" + std::to_string(i);
    CHECK(inOrder);
    REQUIRE(eventually([&] { return engine.channel("backlog")->destinations.at(0).queued == 0; }));
    engine.store().flush();
    CHECK(countStatus(engine, "backlog", store::Status::Sent) == static_cast<std::size_t>(kCount));
    CHECK(countStatus(engine, "backlog", store::Status::Queued) == 0);
}

TEST_CASE("a redeploy that cannot deploy the new version keeps the running one", "[core][channel]") {
    TempDir dir;
    int p1 = freePort(), p2 = freePort();
    auto listener = [](const std::string& name, int port) {
        return "channel: " + name + "\nsource: { type: mllp, port: " + std::to_string(port) + " }\ndestinations: []\n";
    };
    dir.write("channels/a.yaml", listener("a", p1));
    dir.write("channels/b.yaml", listener("b", p2));
    core::Engine engine(options(dir), connectorRegistry());
    REQUIRE(engine.loadChannels().empty());
    engine.start();
    dir.write("channels/b.yaml", listener("b", p1));  // a's port
    CHECK_THROWS_WITH(engine.redeployChannel("b"), Catch::Contains("is already used by channel a"));
    REQUIRE(engine.channel("b"));
    CHECK(engine.channel("b")->state == core::ChannelState::Running);
    CHECK(send(p2, readFile(kSamples + "adt_a04.hl7")).ok());
}

TEST_CASE("a schedule source runs at start, every interval, and when triggered", "[core][channel]") {
    TempDir dir;
    dir.write("t.lua", R"(
function tag(run) run.tagged = run.reason .. "#" .. run.run end
)");
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: ticks
source: { type: schedule, interval: 1h }
script: t.lua
transform: tag
destinations:
  - { name: out, type: file, directory: out, filename: "${id}.json" }
)"));
    engine.addChannel(channel(dir, R"(
channel: quiet
source: { type: schedule, interval: 1h, run_at_start: false, message: "sync now", data_type: raw }
destinations:
  - { name: out, type: file, directory: quiet, filename: "${id}.txt" }
)"));
    engine.addChannel(channel(dir, R"(
channel: every
source: { type: schedule, interval: 1s }
destinations:
  - { name: out, type: file, directory: every, filename: "${id}.json" }
)"));
    CHECK_FALSE(engine.triggerChannel("ticks"));  // not running yet
    engine.start();
    REQUIRE(eventually([&] { return engine.channel("ticks")->destinations[0].counters.sent == 1; }));
    auto files = [&](const std::string& d) {
        std::vector<std::string> out;
        if (std::filesystem::exists(dir.path / d))
            for (auto& e : std::filesystem::directory_iterator(dir.path / d)) out.push_back(readFile(e.path().string()));
        std::sort(out.begin(), out.end());
        return out;
    };
    CHECK(files("out")[0].find("\"tagged\":\"start#1\"") != std::string::npos);
    CHECK(files("quiet").empty());  // no run at start; the next is an hour away
    REQUIRE(engine.triggerChannel("ticks"));
    REQUIRE(engine.triggerChannel("quiet"));
    REQUIRE(eventually([&] {
        return engine.channel("ticks")->destinations[0].counters.sent == 2 &&
               engine.channel("quiet")->destinations[0].counters.sent == 1;
    }));
    auto ticks = files("out");
    CHECK(std::count_if(ticks.begin(), ticks.end(),
                        [](const std::string& t) { return t.find("\"tagged\":\"trigger#2\"") != std::string::npos; }) == 1);
    CHECK(files("quiet") == std::vector<std::string>{"sync now"});
    CHECK_FALSE(engine.triggerChannel("nosuch"));
    REQUIRE(eventually([&] { return files("every").size() >= 2; }));
    CHECK(files("every")[1].find("\"reason\": \"interval\"") != std::string::npos);
    engine.pauseChannel("ticks");
    CHECK_FALSE(engine.triggerChannel("ticks"));  // paused: nothing runs
}

TEST_CASE("a script's store values outlive the engine", "[core][channel]") {
    TempDir dir;
    dir.write("t.lua", R"(
function count(run)
  local n = tonumber(store.get("test.runs") or "0") + 1
  store.put("test.runs", n)
  run.count = n
end
)");
    const std::string yaml = R"(
channel: counting
source: { type: schedule, interval: 1h }
script: t.lua
transform: count
destinations:
  - { name: out, type: file, directory: out, filename: "${id}.json" }
)";
    for (int round = 1; round <= 2; ++round) {
        core::Engine engine(options(dir), connectorRegistry());
        engine.addChannel(channel(dir, yaml));
        engine.start();
        REQUIRE(eventually([&] { return engine.channel("counting")->destinations[0].counters.sent == 1; }));
        engine.stop();
    }
    bool sawSecond = false;
    for (auto& e : std::filesystem::directory_iterator(dir.path / "out"))
        if (readFile(e.path().string()).find("\"count\":2") != std::string::npos) sawSecond = true;
    CHECK(sawSecond);
}

TEST_CASE("a channel's vars reach its scripts, and vars that are not a mapping are refused at their line", "[core][channel]") {
    TempDir dir;
    dir.write("t.lua", "function stamp(run) run.site = vars.site; run.none = vars.none == nil end\n");
    core::Engine engine(options(dir), connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: stamped
vars: { site: CITYHOSP, port: 8042 }
source: { type: schedule, interval: 1h }
script: t.lua
transform: stamp
destinations:
  - { name: out, type: file, directory: out, filename: "${id}.json" }
)"));
    engine.start();
    REQUIRE(eventually([&] { return engine.channel("stamped")->destinations[0].counters.sent == 1; }));
    std::string out;
    for (auto& e : std::filesystem::directory_iterator(dir.path / "out")) out = readFile(e.path().string());
    CHECK(out.find("\"site\":\"CITYHOSP\"") != std::string::npos);
    CHECK(out.find("\"none\":true") != std::string::npos);
    try {
        channel(dir, "channel: bad\nvars: [a, b]\nsource: { type: schedule }\ndestinations: []\n");
        FAIL("vars as a list was accepted");
    } catch (const config::ConfigError& e) {
        CHECK(std::string(e.what()).find("test.yaml:2:") != std::string::npos);
        CHECK(std::string(e.what()).find("vars must be a mapping") != std::string::npos);
    }
}
