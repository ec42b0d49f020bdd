// The `orthanc` source and destination against real Orthanc servers (the
// Debian package, started by the test): messages made of changes and the
// position stored with them; uploads, stores to a peer and a modality,
// metadata, labels, deletes, and what each refusal or outage makes of a send.
#include <catch2/catch.hpp>

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "connectors/dicom/store_json.h"
#include "engine/core/channel_config.h"
#include "engine/core/engine.h"
#include "engine/http/client.h"
#include "engine/orthanc/server.h"
#include "tests/core/test_support.h"
#include "tests/orthanc/orthanc_fixture.h"
#include "tests/support/connectors.h"

using namespace junction;
using namespace junction::testing;
using Poco::JSON::Array;
using Poco::JSON::Object;

namespace {

const std::string kCt = std::string(JUNCTION_SOURCE_DIR) + "/samples/dicom/ct_small.dcm";

Object::Ptr parseObject(const std::string& text) {
    return Poco::JSON::Parser().parse(text).extract<Object::Ptr>();
}

// REST calls to a test Orthanc, as its test user.
struct Rest {
    const orthanc_test::OrthancProcess& o;
    http::Result call(const std::string& method, const std::string& path, const std::string& body = {},
                      const std::string& type = "application/json") const {
        http::Client c;
        http::Request r{method, o.url() + path, {{"Authorization", http::basicAuth(o.user(), o.password())}}, body};
        if (!body.empty()) r.headers.push_back({"Content-Type", type});
        return c.send(r);
    }
    Object::Ptr json(const std::string& method, const std::string& path, const std::string& body = {}) const {
        http::Result r = call(method, path, body);
        INFO(method << " " << path << ": " << r.error << r.response.body);
        REQUIRE(r.answered);
        REQUIRE(r.response.status == 200);
        return parseObject(r.response.body);
    }
    int status(const std::string& path) const { return call("GET", path).response.status; }
    // A new instance of a new study of patient `patient`; its answer (ID, ParentStudy ...).
    Object::Ptr newStudy(const std::string& patient) const {
        return json("POST", "/tools/create-dicom",
                    R"({"Tags": {"PatientID": ")" + patient + R"(", "PatientName": "TEST^)" + patient +
                        R"(", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7", "Modality": "OT"}})");
    }
    std::int64_t lastChange() const { return json("GET", "/changes?last")->getValue<std::int64_t>("Last"); }
    // Whether the change log holds a change of `type` about `id`.
    bool hasChange(const std::string& type, const std::string& id) const {
        auto answer = json("GET", "/changes?since=0&limit=10000");
        auto changes = answer->getArray("Changes");
        for (std::size_t i = 0; i < changes->size(); ++i) {
            auto c = changes->getObject(static_cast<unsigned>(i));
            if (c->getValue<std::string>("ChangeType") == type && c->getValue<std::string>("ID") == id) return true;
        }
        return false;
    }
};

config::OrthancServerConfig serverConfig(const std::string& name, const orthanc_test::OrthancProcess& o) {
    config::OrthancServerConfig c;
    c.name = name;
    c.url = o.url();
    c.username = o.user();
    c.password = o.password();
    c.timeout = std::chrono::seconds(10);
    return c;
}

core::EngineOptions options(const TempDir& dir, const orthanc_test::OrthancProcess& o) {
    core::EngineOptions opts;
    opts.config.baseDir = dir.str();
    opts.config.store.path = dir.str() + "/var/junction.db";
    opts.config.channelsDir = dir.str() + "/channels";
    opts.config.admin.port = 0;
    opts.config.orthanc = {serverConfig("main", o)};
    opts.store.synchronousFull = false;
    return opts;
}

core::ChannelConfig channel(const TempDir& dir, const std::string& yaml) {
    return core::parseChannel(config::loadYamlString(yaml, "test.yaml"), dir.str() + "/test.yaml", dir.str(),
                              connectorRegistry());
}

std::vector<store::MessageDetail> messages(core::Engine& e, const std::string& ch) {
    store::SearchQuery q;
    q.channel = ch;
    q.limit = 1000;
    std::vector<store::MessageDetail> out;
    for (const auto& s : e.store().search(q)) out.push_back(*e.store().get(s.id));
    std::reverse(out.begin(), out.end());  // oldest first
    return out;
}

std::int64_t storedSeq(core::Engine& e, const std::string& key) {
    auto mark = e.store().sourceMark(key);
    return mark ? parseObject(*mark)->getValue<std::int64_t>("seq") : -1;
}

// A destination built as a channel builds it, on the servers of `servers`.
std::unique_ptr<core::Destination> destination(orthanc::Servers& servers, const std::string& yaml) {
    core::BuildContext ctx;
    ctx.channel = "test";
    ctx.orthanc = &servers;
    return connectorRegistry().destination("orthanc")->create(config::loadYamlString(yaml, "test.yaml"), ctx);
}

core::Outbound outbound(std::string content) {
    core::Outbound m;
    m.messageId = 1;
    m.content = std::move(content);
    return m;
}

orthanc::ServerOptions serverOptions(const std::string& name, const std::string& url, const orthanc_test::OrthancProcess& o) {
    orthanc::ServerOptions s;
    s.name = name;
    s.url = url;
    s.username = o.user();
    s.password = o.password();
    s.timeout = std::chrono::seconds(10);
    return s;
}

}  // namespace

TEST_CASE("the orthanc source makes a message of each stable study and goes on after the stored position",
          "[orthanc_connectors][source]") {
    orthanc_test::OrthancProcess orthanc;
    Rest rest{orthanc};
    TempDir dir;
    const std::string yaml = R"(
channel: studies
source: { type: orthanc, server: main, changes: [StableStudy], expand: instances, from: start, poll_interval: 200ms }
destinations:
  - { name: out, type: file, directory: out, filename: "${id}.json" }
)";
    auto first = rest.newStudy("PA");
    std::string studyA = first->getValue<std::string>("ParentStudy");
    {
        core::Engine engine(options(dir, orthanc), connectorRegistry());
        engine.addChannel(channel(dir, yaml));
        engine.start();
        REQUIRE(eventually([&] { return messages(engine, "studies").size() == 1; }, std::chrono::seconds(30)));
        auto m = messages(engine, "studies").front();
        CHECK(m.summary.dataType == "json");
        auto msg = parseObject(m.raw);
        CHECK(msg->getValue<std::string>("server") == "main");
        auto change = msg->getObject("change");
        CHECK(change->getValue<std::string>("ChangeType") == "StableStudy");
        CHECK(change->getValue<std::string>("ID") == studyA);
        CHECK(m.summary.source == "orthanc main change " + std::to_string(change->getValue<std::int64_t>("Seq")));
        auto study = msg->getObject("resource");
        CHECK(study->getValue<std::string>("Type") == "Study");
        CHECK(study->getObject("PatientMainDicomTags")->getValue<std::string>("PatientID") == "PA");
        auto series = study->getArray("Series");
        REQUIRE(series->size() == 1);
        CHECK(series->getObject(0)->getValue<std::string>("Type") == "Series");
        auto instances = series->getObject(0)->getArray("Instances");
        REQUIRE(instances->size() == 1);
        CHECK(instances->getObject(0)->getValue<std::string>("ID") == first->getValue<std::string>("ID"));
        CHECK(instances->getObject(0)->getObject("MainDicomTags")->has("SOPInstanceUID"));
        // The position: at least that change's, stored with it or past it (the changes after it are filtered).
        CHECK(storedSeq(engine, "studies/orthanc") >= change->getValue<std::int64_t>("Seq"));
        REQUIRE(eventually([&] { return std::filesystem::exists(dir.path / "out"); }));
    }
    // While Junction is stopped a second study arrives: the next run makes its
    // message only, after the stored position.
    std::string studyB = rest.newStudy("PB")->getValue<std::string>("ParentStudy");
    REQUIRE(eventually([&] { return rest.hasChange("StableStudy", studyB); }, std::chrono::seconds(30)));
    core::Engine engine(options(dir, orthanc), connectorRegistry());
    engine.addChannel(channel(dir, yaml));
    engine.start();
    REQUIRE(eventually([&] { return storedSeq(engine, "studies/orthanc") == rest.lastChange(); }, std::chrono::seconds(30)));
    auto all = messages(engine, "studies");
    REQUIRE(all.size() == 2);
    CHECK(parseObject(all[0].raw)->getObject("change")->getValue<std::string>("ID") == studyA);
    CHECK(parseObject(all[1].raw)->getObject("change")->getValue<std::string>("ID") == studyB);
}

TEST_CASE("from: now begins after the server's last change, only the change types asked for are messages, and a trigger polls at once",
          "[orthanc_connectors][source]") {
    orthanc_test::OrthancProcess orthanc;
    Rest rest{orthanc};
    TempDir dir;
    auto old = rest.newStudy("OLD");
    std::string before = old->getValue<std::string>("ParentStudy");
    // Its last change made: the log stays as it is until the next study.
    REQUIRE(eventually([&] { return rest.hasChange("StablePatient", old->getValue<std::string>("ParentPatient")); },
                       std::chrono::seconds(30)));
    core::Engine engine(options(dir, orthanc), connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: new-studies
source: { type: orthanc, server: main, changes: [NewStudy], poll_interval: 1h }
destinations: []
)"));
    engine.start();
    // The starting position is stored at once (a restart goes on from there).
    std::int64_t last = rest.lastChange();
    REQUIRE(eventually([&] { return storedSeq(engine, "new-studies/orthanc") == last; }));
    // Polled at start, then an hour later: or at once, when triggered.
    auto after = rest.newStudy("NEW");
    auto lastPoll = std::chrono::steady_clock::now();
    auto poll = [&] {  // a trigger every 100 ms
        if (std::chrono::steady_clock::now() - lastPoll < std::chrono::milliseconds(100)) return true;
        lastPoll = std::chrono::steady_clock::now();
        return engine.triggerChannel("new-studies");
    };
    REQUIRE(eventually([&] { return poll() && messages(engine, "new-studies").size() == 1; }));
    // Changes are read in order: the new study's message came after any of the old one.
    auto msg = parseObject(messages(engine, "new-studies").front().raw);
    CHECK(msg->getObject("change")->getValue<std::string>("ChangeType") == "NewStudy");
    CHECK(msg->getObject("change")->getValue<std::string>("ID") == after->getValue<std::string>("ParentStudy"));
    CHECK(msg->getObject("change")->getValue<std::string>("ID") != before);
    CHECK(msg->getObject("resource")->getArray("Series")->size() == 1);
    // The changes after it (its patient, the stable ones) move the position without a message.
    REQUIRE(eventually([&] { return rest.hasChange("StablePatient", after->getValue<std::string>("ParentPatient")); },
                       std::chrono::seconds(30)));
    REQUIRE(eventually([&] { return poll() && storedSeq(engine, "new-studies/orthanc") == rest.lastChange(); }));
    CHECK(messages(engine, "new-studies").size() == 1);
}

TEST_CASE("credentials the server refuses are the channel's source problem, shown while it keeps trying", "[orthanc_connectors][source]") {
    orthanc_test::OrthancProcess orthanc;
    TempDir dir;
    auto opts = options(dir, orthanc);
    auto late = serverConfig("late", orthanc);
    late.password = "not-the-password";
    opts.config.orthanc.push_back(late);
    core::Engine engine(opts, connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: locked
source: { type: orthanc, server: late, poll_interval: 100ms }
destinations: []
)"));
    engine.addChannel(channel(dir, R"(
channel: open
source: { type: orthanc, server: main, poll_interval: 100ms }
destinations: []
)"));
    engine.start();
    REQUIRE(eventually([&] { return !engine.channel("locked")->sourceProblem.empty(); }));
    auto info = engine.channel("locked");
    CHECK(info->state == core::ChannelState::Running);  // it keeps trying
    CHECK(info->sourceProblem.find("orthanc server 'late'") != std::string::npos);
    CHECK(info->sourceProblem.find("wrong username or password") != std::string::npos);
    CHECK(engine.channel("open")->sourceProblem.empty());
}

TEST_CASE("an orthanc connector naming a server junction.yaml lacks fails to start, naming it", "[orthanc_connectors]") {
    orthanc_test::OrthancProcess orthanc;
    TempDir dir;
    core::Engine engine(options(dir, orthanc), connectorRegistry());
    engine.addChannel(channel(dir, R"(
channel: typo
source: { type: orthanc, server: mian }
destinations: []
)"));
    engine.start();
    auto info = engine.channel("typo");
    REQUIRE(info);
    CHECK(info->state == core::ChannelState::Failed);
    CHECK(info->error.find("server 'mian' is not named in junction.yaml's orthanc section (it names main)") !=
          std::string::npos);
    CHECK_THROWS_WITH(channel(dir, R"(
channel: bad
source: { type: orthanc, server: main, changes: [StableStudies] }
destinations: []
)"),
                      Catch::Contains("unknown Orthanc change type 'StableStudies'"));
    CHECK_THROWS_WITH(channel(dir, R"(
channel: bad
source: { type: channel }
destinations: [ { name: fwd, type: orthanc, server: main, action: store_to_peer } ]
)"),
                      Catch::Contains("action store_to_peer needs target"));
}

TEST_CASE("the orthanc destination uploads instances, with the tags a script changed", "[orthanc_connectors][destination]") {
    orthanc_test::OrthancProcess orthanc;
    Rest rest{orthanc};
    orthanc::Servers servers;
    servers.add(serverOptions("main", orthanc.url(), orthanc));
    auto upload = destination(servers, "{ name: up, type: orthanc, server: main }");

    SECTION("a DICOM file as the message") {
        core::SendResult r = upload->send(outbound(readFile(kCt)));
        INFO(r.error);
        REQUIRE(r.kind == core::SendResult::Kind::Ok);
        auto answer = parseObject(r.response);
        CHECK(answer->getValue<std::string>("Status") == "Success");
        CHECK(rest.status("/instances/" + answer->getValue<std::string>("ID")) == 200);
    }
    SECTION("a dicom source's message naming its file, a tag edited") {
        auto json = dicom::datasetJsonFromFile(kCt);
        REQUIRE(json.ok);
        auto msg = parseObject(json.json);
        Object::Ptr patientId = new Object;
        Array::Ptr value = new Array;
        value->add("EDITED-1");
        patientId->set("vr", "LO");
        patientId->set("Value", value);
        msg->set("00100020", patientId);
        msg->set("file", kCt);
        std::ostringstream text;
        msg->stringify(text);
        core::SendResult r = upload->send(outbound(text.str()));
        INFO(r.error);
        REQUIRE(r.kind == core::SendResult::Kind::Ok);
        std::string id = parseObject(r.response)->getValue<std::string>("ID");
        CHECK(rest.json("GET", "/instances/" + id + "/simplified-tags")->getValue<std::string>("PatientID") == "EDITED-1");
    }
    SECTION("what Orthanc refuses is an error with its answer; what is not DICOM, an error at once") {
        std::string notDicom = std::string(128, '\0') + "DICM" + std::string(64, 'x');
        core::SendResult r = upload->send(outbound(notDicom));
        CHECK(r.kind == core::SendResult::Kind::Error);
        // "...: POST /instances: 400 Bad Request: " and what Orthanc says (its Message and Details).
        CHECK(r.error.find("orthanc server 'main' (" + orthanc.url() + "): POST /instances: 400 Bad Request: ") == 0);
        auto answer = parseObject(r.response);
        CHECK(answer->getValue<int>("HttpStatus") == 400);
        CHECK(r.error.find(answer->getValue<std::string>("Details")) != std::string::npos);
        r = upload->send(outbound("{\"no\": \"file\"}"));
        CHECK(r.kind == core::SendResult::Kind::Error);
        CHECK(r.error.find("names none") != std::string::npos);
    }
    SECTION("no answer is tried again") {
        orthanc::Servers gone;
        gone.add(serverOptions("main", "http://127.0.0.1:" + std::to_string(orthanc_test::freePort()), orthanc));
        core::SendResult r = destination(gone, "{ name: up, type: orthanc, server: main }")->send(outbound(readFile(kCt)));
        CHECK(r.kind == core::SendResult::Kind::Retry);
        CHECK(r.error.find("connection refused") != std::string::npos);
    }
}

TEST_CASE("the orthanc destination sets metadata and labels and deletes the resource a message names",
          "[orthanc_connectors][destination]") {
    orthanc_test::OrthancProcess orthanc;
    Rest rest{orthanc};
    orthanc::Servers servers;
    servers.add(serverOptions("main", orthanc.url(), orthanc));
    auto created = rest.newStudy("META");
    std::string instance = created->getValue<std::string>("ID"), study = created->getValue<std::string>("ParentStudy");

    auto metadata = destination(servers, "{ name: m, type: orthanc, server: main, action: set_metadata }");
    core::SendResult r = metadata->send(outbound(R"({"level": "instance", "id": ")" + instance +
                                                 R"(", "metadata": {"1024": "seen", "1025": 7}})"));
    INFO(r.error);
    REQUIRE(r.kind == core::SendResult::Kind::Ok);
    CHECK(rest.call("GET", "/instances/" + instance + "/metadata/1024").response.body == "seen");
    CHECK(rest.call("GET", "/instances/" + instance + "/metadata/1025").response.body == "7");
    // An orthanc source's message names its resource by its change.
    r = metadata->send(outbound(R"({"change": {"ChangeType": "StableStudy", "ResourceType": "Study", "ID": ")" + study +
                                R"("}, "metadata": {"1024": "forwarded"}})"));
    REQUIRE(r.kind == core::SendResult::Kind::Ok);
    CHECK(rest.call("GET", "/studies/" + study + "/metadata/1024").response.body == "forwarded");
    r = metadata->send(outbound(R"({"id": ")" + study + R"(", "metadata": {"1024": "x"}})"));
    CHECK(r.kind == core::SendResult::Kind::Error);
    CHECK(r.error.find("does not say the level") != std::string::npos);

    // Labels came with Orthanc 1.12: an older one's refusal says so.
    auto label = destination(servers, "{ name: l, type: orthanc, server: main, action: label, label: forwarded }");
    r = label->send(outbound(R"({"level": "study", "id": ")" + study + R"("})"));
    std::string version = rest.json("GET", "/system")->getValue<std::string>("Version");
    if (version.rfind("1.10.", 0) == 0 || version.rfind("1.11.", 0) == 0) {
        CHECK(r.kind == core::SendResult::Kind::Error);
        CHECK(r.error.find("labels need Orthanc 1.12 or later; server 'main' runs " + version) != std::string::npos);
    } else {
        CHECK(r.kind == core::SendResult::Kind::Ok);
    }

    auto remove = destination(servers, "{ name: d, type: orthanc, server: main, action: delete }");
    r = remove->send(outbound(R"({"level": "study", "id": ")" + study + R"("})"));
    INFO(r.error);
    REQUIRE(r.kind == core::SendResult::Kind::Ok);
    CHECK(r.response.find("RemainingAncestor") != std::string::npos);
    CHECK(rest.status("/studies/" + study) == 404);
    r = remove->send(outbound(R"({"level": "study", "id": ")" + study + R"("})"));
    CHECK(r.kind == core::SendResult::Kind::Error);
    CHECK(r.error.find("DELETE /studies/" + study + ": 404") != std::string::npos);
    r = remove->send(outbound(R"({"nothing": "named"})"));
    CHECK(r.kind == core::SendResult::Kind::Error);
    CHECK(r.error.find("names no Orthanc resource") != std::string::npos);
}

TEST_CASE("the orthanc destination stores resources to a peer and to a modality (another Orthanc)",
          "[orthanc_connectors][destination]") {
    orthanc_test::OrthancProcess orthanc, other;
    Rest rest{orthanc}, otherRest{other};
    orthanc::Servers servers;
    servers.add(serverOptions("main", orthanc.url(), orthanc));
    std::string instance = rest.json("POST", "/instances", readFile(kCt))->getValue<std::string>("ID");
    auto put = [&](const std::string& path, const std::string& body) { return rest.call("PUT", path, body).response.status; };
    REQUIRE(put("/peers/second", R"({"Url": ")" + other.url() + R"(", "Username": ")" + other.user() +
                                     R"(", "Password": ")" + other.password() + R"("})") == 200);
    REQUIRE(put("/modalities/pacs",
                R"({"AET": "ORTHANC", "Host": "127.0.0.1", "Port": )" + std::to_string(other.dicomPort()) + "}") == 200);
    REQUIRE(put("/modalities/down",
                R"({"AET": "DOWN", "Host": "127.0.0.1", "Port": )" + std::to_string(orthanc_test::freePort()) + "}") == 200);

    auto peer = destination(servers, "{ name: p, type: orthanc, server: main, action: store_to_peer, target: second }");
    core::SendResult r = peer->send(outbound(R"({"resources": [")" + instance + R"("]})"));
    INFO(r.error);
    REQUIRE(r.kind == core::SendResult::Kind::Ok);
    CHECK(parseObject(r.response)->getValue<int>("InstancesCount") == 1);
    CHECK(otherRest.status("/instances/" + instance) == 200);
    REQUIRE(otherRest.call("DELETE", "/instances/" + instance).response.status == 200);

    auto modality = destination(servers, "{ name: m, type: orthanc, server: main, action: store_to_modality, target: pacs }");
    r = modality->send(outbound(R"({"level": "instance", "id": ")" + instance + R"("})"));
    INFO(r.error);
    REQUIRE(r.kind == core::SendResult::Kind::Ok);
    CHECK(parseObject(r.response)->getValue<std::string>("RemoteAet") == "ORTHANC");
    CHECK(otherRest.status("/instances/" + instance) == 200);

    // A modality that does not answer: Orthanc's server error, tried again.
    auto down = destination(servers, "{ name: m, type: orthanc, server: main, action: store_to_modality, target: down }");
    r = down->send(outbound(R"({"resources": [")" + instance + R"("]})"));
    CHECK(r.kind == core::SendResult::Kind::Retry);
    CHECK(r.error.find("POST /modalities/down/store: 500") != std::string::npos);
    // A modality Orthanc does not know: refused.
    auto unknown = destination(servers, "{ name: m, type: orthanc, server: main, action: store_to_modality, target: nosuch }");
    r = unknown->send(outbound(R"({"resources": [")" + instance + R"("]})"));
    CHECK(r.kind == core::SendResult::Kind::Error);
    CHECK(r.error.find("No modality with symbolic name: nosuch") != std::string::npos);
}
