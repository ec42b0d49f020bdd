// DICOM storage: DICOM JSON of instances and edits applied back, and the
// `dicom` destination against real peers (DCMTK's storescp, Junction's own
// storage server): C-ECHO, association reuse, reconnection, transfer syntax
// conversion and how peer answers map to Ok / Retry / Error.
#include <catch2/catch.hpp>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <mutex>
#include <thread>
#include <vector>

#include "connectors/dicom/dicom_connectors.h"
#include "connectors/dicom/store_client.h"
#include "connectors/dicom/store_connectors.h"
#include "connectors/dicom/store_json.h"
#include "connectors/dicom/store_server.h"
#include "engine/config/node.h"
#include "engine/core/registry.h"
#include "../dicom/dicom_test_support.h"

extern char** environ;

namespace fs = std::filesystem;
using namespace junction;
using Poco::JSON::Array;
using Poco::JSON::Object;

namespace {

const std::string kSamples = "/usr/lib/python3/dist-packages/pydicom/data/test_files/";

struct Tmp {
    fs::path path;
    Tmp() {
        static std::atomic<int> n{0};
        path = fs::temp_directory_path() / ("junction-dicom-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~Tmp() { fs::remove_all(path); }
    std::string str(const std::string& sub = {}) const { return sub.empty() ? path.string() : (path / sub).string(); }
};

Object::Ptr parse(const std::string& json) { return Poco::JSON::Parser().parse(json).extract<Object::Ptr>(); }

std::string stringify(const Object::Ptr& o) {
    std::ostringstream s;
    Poco::JSON::Stringifier::stringify(o, s);
    return s.str();
}

Object::Ptr datasetOf(const std::string& path) {
    auto r = dicom::datasetJsonFromFile(path);
    REQUIRE(r.ok);
    return parse(r.json);
}

std::string firstValue(const Object::Ptr& ds, const std::string& tag) {
    if (!ds->has(tag)) return "<absent>";
    auto e = ds->getObject(tag);
    if (!e->has("Value")) return "";
    auto v = e->getArray("Value")->get(0);
    if (v.type() == typeid(Object::Ptr)) return v.extract<Object::Ptr>()->getValue<std::string>("Alphabetic");
    return v.convert<std::string>();
}

std::string fileBytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// A child process (a real DICOM peer) stopped with SIGTERM when it goes out of scope.
class Process {
public:
    explicit Process(std::vector<std::string> argv) {
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(a.data());
        args.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        REQUIRE(posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), environ) == 0);
        posix_spawn_file_actions_destroy(&fa);
    }
    ~Process() { stop(); }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }

private:
    pid_t pid_ = -1;
};

bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return cond();
}

// A storage server called ARCHIVE on `port`, storing under `t`/store.
dicom::StoreServerOptions archive(const Tmp& t, int port) {
    dicom::StoreServerOptions o;
    o.aeTitle = "ARCHIVE";
    o.port = port;
    o.storageDir = t.str("store");
    return o;
}

// The DICOM connector types, registered as the app does.
const core::ConnectorRegistry& dicomConnectors() {
    static const core::ConnectorRegistry registry = [] {
        core::ConnectorRegistry r;
        connectors::registerDicom(r);
        return r;
    }();
    return registry;
}

std::unique_ptr<connectors::DicomStoreDestination> destination(int port, const std::string& called = "PACS") {
    auto node = config::loadYamlString("{ host: 127.0.0.1, port: " + std::to_string(port) + ", called_ae: " + called +
                                           ", timeout: 5s, connect_timeout: 2s }",
                                       "dest.yaml");
    core::BuildContext ctx;
    ctx.channel = "test";
    ctx.baseDir = "/tmp";
    const auto* factory = dicomConnectors().destination("dicom");
    REQUIRE(factory);
    factory->validate(node, ctx);
    auto d = factory->create(node, ctx);
    auto* typed = dynamic_cast<connectors::DicomStoreDestination*>(d.get());
    REQUIRE(typed);
    d.release();
    return std::unique_ptr<connectors::DicomStoreDestination>(typed);
}

// The channel message the dicom source makes of a file, with `edit` applied to it.
std::string message(const std::string& file, const std::function<void(Object::Ptr&)>& edit = {}) {
    auto ds = datasetOf(file);
    ds->set("file", file);
    ds->set("CallingAE", "MODALITY");
    if (edit) edit(ds);
    return stringify(ds);
}

core::Outbound outbound(const std::string& content) {
    core::Outbound m;
    m.messageId = 1;
    m.channel = "test";
    m.destination = "pacs";
    m.content = content;
    return m;
}

Object::Ptr lo(const std::string& vr, const std::string& value) {
    Object::Ptr e = new Object;
    e->set("vr", vr);
    Array::Ptr a = new Array;
    a->add(value);
    e->set("Value", a);
    return e;
}

std::string findReceived(const std::string& dir, const std::string& sopInstance) {
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().find(sopInstance) != std::string::npos) return e.path().string();
    return {};
}

}  // namespace

TEST_CASE("DICOM JSON of an instance leaves pixel data out") {
    auto ds = datasetOf(kSamples + "CT_small.dcm");
    CHECK(firstValue(ds, "00100020") == "1CT1");
    CHECK(ds->getObject("00100020")->getValue<std::string>("vr") == "LO");
    CHECK(firstValue(ds, "00100010") == "CompressedSamples^CT1");
    CHECK(ds->getObject("00280010")->getArray("Value")->get(0).convert<int>() == 128);  // Rows, a number
    CHECK_FALSE(ds->has("7FE00010"));
    CHECK_FALSE(ds->has("00020010"));  // no meta header
    auto bad = dicom::datasetJsonFromFile(kSamples + "no_such_file.dcm");
    CHECK_FALSE(bad.ok);
    CHECK(bad.error.find("cannot read") != std::string::npos);
}

TEST_CASE("Unchanged DICOM JSON, even re-encoded, changes nothing") {
    Tmp t;
    for (const char* name : {"CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm"}) {
        auto json = dicom::datasetJsonFromFile(kSamples + name);
        REQUIRE(json.ok);
        auto r = dicom::applyJsonToFile(kSamples + name, json.json, t.str("out.dcm"));
        INFO(name << ": " << r.error);
        CHECK(r.ok);
        CHECK(r.changed == 0);
        // Through a JSON parser and back (keys reordered, numbers re-formatted).
        auto again = dicom::applyJsonToFile(kSamples + name, stringify(parse(json.json)), t.str("out.dcm"));
        CHECK(again.ok);
        CHECK(again.changed == 0);
    }
}

TEST_CASE("Edits in the JSON are applied to the dataset, pixel data untouched") {
    Tmp t;
    std::string in = kSamples + "CT_small.dcm";
    auto ds = datasetOf(in);
    ds->set("00100020", lo("LO", "NEW-ID"));
    Object::Ptr pn = new Object;
    pn->set("vr", "PN");
    Array::Ptr names = new Array;
    Object::Ptr name = new Object;
    name->set("Alphabetic", "Doe^Jane");
    names->add(name);
    pn->set("Value", names);
    ds->set("00100010", pn);
    ds->set("00081030", lo("LO", "Added"));
    REQUIRE(ds->has("00080090"));
    ds->remove("00080090");
    Object::Ptr spacing = new Object;
    spacing->set("vr", "DS");
    Array::Ptr sv = new Array;
    sv->add(0.5);
    sv->add(0.25);
    spacing->set("Value", sv);
    ds->set("00280030", spacing);
    Object::Ptr seq = new Object;
    seq->set("vr", "SQ");
    Array::Ptr items = new Array;
    Object::Ptr item = new Object;
    item->set("00081150", lo("UI", "1.2.840.10008.3.1.2.3.1"));
    item->set("00081155", lo("UI", "1.2.3.4.5"));
    items->add(item);
    seq->set("Value", items);
    ds->set("00081110", seq);

    auto r = dicom::applyJsonToFile(in, stringify(ds), t.str("out.dcm"));
    INFO(r.error);
    REQUIRE(r.ok);
    CHECK(r.changed == 6);
    auto out = datasetOf(t.str("out.dcm"));
    CHECK(firstValue(out, "00100020") == "NEW-ID");
    CHECK(firstValue(out, "00100010") == "Doe^Jane");
    CHECK(firstValue(out, "00081030") == "Added");
    CHECK_FALSE(out->has("00080090"));
    auto px = out->getObject("00280030")->getArray("Value");
    CHECK(px->get(0).convert<double>() == Approx(0.5));
    CHECK(px->get(1).convert<double>() == Approx(0.25));
    auto outItem = out->getObject("00081110")->getArray("Value")->getObject(0);
    CHECK(firstValue(outItem, "00081155") == "1.2.3.4.5");
    // The pixel data (the file's last 32 KB) is carried over byte for byte.
    std::string a = fileBytes(in), b = fileBytes(t.str("out.dcm"));
    REQUIRE(a.size() > 32768);
    REQUIRE(b.size() > 32768);
    CHECK(a.substr(a.size() - 32768) == b.substr(b.size() - 32768));
}

TEST_CASE("Bad message JSON is reported, not applied") {
    Tmp t;
    std::string in = kSamples + "CT_small.dcm";
    for (std::string bad : {"not json", "[1,2]", "{\"00100020\": \"text\"}", "{\"00100020\": {\"vr\": \"XX\"}}"}) {
        auto r = dicom::applyJsonToFile(in, bad, t.str("out.dcm"));
        INFO(bad);
        CHECK_FALSE(r.ok);
        CHECK_FALSE(r.error.empty());
    }
    std::vector<std::string> files;
    bool single = false;
    std::string error;
    CHECK(dicom::messageFiles("{\"file\":\"/a.dcm\"}", files, single, error));
    CHECK((single && files == std::vector<std::string>{"/a.dcm"}));
    CHECK(dicom::messageFiles("{\"files\":[\"/a.dcm\",\"/b.dcm\"]}", files, single, error));
    CHECK((!single && files.size() == 2));
    CHECK_FALSE(dicom::messageFiles("{\"00100020\":{}}", files, single, error));
    CHECK(error.find("names no DICOM file") != std::string::npos);
    CHECK_FALSE(dicom::messageFiles("garbage", files, single, error));
}

TEST_CASE("dicom destination against storescp: echo, kept association, edits, reconnect, retry") {
    Tmp t;
    const int port = 28440;
    fs::create_directories(t.str("pacs"));
    auto d = destination(port);
    auto scp = std::make_unique<Process>(
        std::vector<std::string>{"storescp", "-aet", "PACS", "+xa", "-od", t.str("pacs"), std::to_string(port)});
    REQUIRE(eventually([&] { return d->echo().kind == core::SendResult::Kind::Ok; }));

    std::string ct = kSamples + "CT_small.dcm";
    auto r1 = d->send(outbound(message(ct, [](Object::Ptr& ds) { ds->set("00100020", lo("LO", "EDITED")); })));
    INFO(r1.error);
    CHECK(r1.kind == core::SendResult::Kind::Ok);
    auto r2 = d->send(outbound(message(ct)));
    CHECK(r2.kind == core::SendResult::Kind::Ok);
    CHECK(d->associationsOpened() == 1);  // the second send reused the association
    // Another SOP class and transfer syntax: a new association proposing it.
    std::string jls = kSamples + "MR_small_jpeg_ls_lossless.dcm";
    CHECK(d->send(outbound(message(jls))).kind == core::SendResult::Kind::Ok);
    CHECK(d->associationsOpened() == 2);
    std::string got = findReceived(t.str("pacs"), "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457");
    REQUIRE_FALSE(got.empty());
    CHECK(fileBytes(got).find("1.2.840.10008.1.2.4.80") != std::string::npos);  // sent as JPEG-LS

    // The peer goes away and comes back: the kept association is re-opened.
    scp->stop();
    scp = std::make_unique<Process>(
        std::vector<std::string>{"storescp", "-aet", "PACS", "+xa", "-od", t.str("pacs2"), std::to_string(port)});
    fs::create_directories(t.str("pacs2"));
    REQUIRE(eventually([&] { return d->echo().kind == core::SendResult::Kind::Ok; }));
    auto r3 = d->send(outbound(message(ct, [](Object::Ptr& ds) { ds->set("00100020", lo("LO", "AGAIN")); })));
    INFO(r3.error);
    CHECK(r3.kind == core::SendResult::Kind::Ok);
    std::string again = findReceived(t.str("pacs2"), "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322");
    REQUIRE_FALSE(again.empty());
    CHECK(firstValue(datasetOf(again), "00100020") == "AGAIN");

    // No peer: Retry, for sends and echoes alike.
    scp->stop();
    auto r4 = d->send(outbound(message(ct)));
    CHECK(r4.kind == core::SendResult::Kind::Retry);
    CHECK_FALSE(r4.error.empty());
    CHECK(d->echo().kind == core::SendResult::Kind::Retry);
    // A message that names no file, or a file that is not there: Error (no retry helps).
    CHECK(d->send(outbound("{\"x\":1}")).kind == core::SendResult::Kind::Error);
    CHECK(d->send(outbound("{\"file\":\"/nonexistent/x.dcm\"}")).kind == core::SendResult::Kind::Error);
    d->stop();
}

TEST_CASE("dicom destination converts only when the peer needs it and it can") {
    Tmp t;
    const int port = 28441;
    fs::create_directories(t.str("pacs"));
    auto d = destination(port);
    // storescp without +xa accepts uncompressed transfer syntaxes only.
    Process scp({"storescp", "-aet", "PACS", "-od", t.str("pacs"), std::to_string(port)});
    REQUIRE(eventually([&] { return d->echo().kind == core::SendResult::Kind::Ok; }));
    auto r = d->send(outbound(message(kSamples + "MR_small_jpeg_ls_lossless.dcm")));
    INFO(r.error);
    CHECK(r.kind == core::SendResult::Kind::Ok);
    std::string got = findReceived(t.str("pacs"), "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457");
    REQUIRE_FALSE(got.empty());
    std::string bytes = fileBytes(got);
    CHECK(bytes.find("1.2.840.10008.1.2.4.80") == std::string::npos);  // decompressed
    // JPEG 2000 cannot be decoded here: a clear, permanent error.
    auto j2k = d->send(outbound(message(kSamples + "JPEG2000.dcm")));
    CHECK(j2k.kind == core::SendResult::Kind::Error);
    CHECK(j2k.error.find("cannot convert") != std::string::npos);
}

TEST_CASE("A peer that refuses the association is retried later") {
    const int port = 28443;
    auto d = destination(port);
    Process scp({"storescp", "-aet", "PACS", "--refuse", std::to_string(port)});
    REQUIRE(eventually([&] {
        auto r = d->echo();
        return r.kind == core::SendResult::Kind::Retry && r.error.find("rejected") != std::string::npos;
    }));
    auto r = d->send(outbound(message(kSamples + "CT_small.dcm")));
    CHECK(r.kind == core::SendResult::Kind::Retry);
    CHECK(r.error.find("association rejected") != std::string::npos);
    CHECK(d->associationsOpened() == 0);
}

TEST_CASE("Peer statuses map to Ok, Retry and Error, the source answers only after its handler") {
    Tmp t;
    const int port = 28442;
    std::atomic<std::uint16_t> answer{dicom::kStoreSuccess};
    std::atomic<int> handled{0};
    dicom::StoreServerOptions o = archive(t, port);
    o.allowedAEs = {"JUNCTION"};
    o.respondAfterHandler = true;
    dicom::StoreServer server(
        o,
        [&](const dicom::ReceivedInstance& r) {
            ++handled;
            CHECK(fs::exists(r.path));
            CHECK(r.callingAE == "JUNCTION");
            return dicom::StoreOutcome{answer.load(), answer == 0 ? "" : "refused by the test's handler"};
        },
        {});
    server.start();
    auto d = destination(port, "ARCHIVE");
    std::string ct = kSamples + "CT_small.dcm";
    CHECK(d->echo().kind == core::SendResult::Kind::Ok);
    CHECK(d->send(outbound(message(ct))).kind == core::SendResult::Kind::Ok);
    CHECK(handled == 1);
    CHECK(fs::exists(t.str("store") + "/1.3.6.1.4.1.5962.1.2.1.20040119072730.12322/"
                                      "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322/"
                                      "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322.dcm"));
    answer = dicom::kStoreOutOfResources;
    auto busy = d->send(outbound(message(ct)));
    CHECK(busy.kind == core::SendResult::Kind::Retry);
    CHECK(busy.error.find("0xA700") != std::string::npos);
    answer = dicom::kStoreCannotUnderstand;
    auto refused = d->send(outbound(message(ct)));
    CHECK(refused.kind == core::SendResult::Kind::Error);
    CHECK(refused.error.find("0xC000") != std::string::npos);
    // A dataset without a Series Instance UID is refused by the server itself.
    answer = dicom::kStoreSuccess;
    int before = handled;
    auto noSeries = d->send(outbound(message(ct, [](Object::Ptr& ds) { ds->remove("0020000E"); })));
    CHECK(noSeries.kind == core::SendResult::Kind::Error);
    CHECK(handled == before);
    auto c = server.counters();
    CHECK(c.stored == 1);
    CHECK(c.failed == 3);
    CHECK(c.echoes == 1);
    d->stop();
    server.stop();
}

TEST_CASE("A called AE title other than the source's is rejected at association time, with who called") {
    Tmp t;
    const int port = testing::freeDicomPort();
    std::atomic<int> handled{0};
    std::mutex mu;
    std::vector<std::string> logs;
    dicom::StoreServerOptions o = archive(t, port);
    dicom::StoreServer server(
        o,
        [&](const dicom::ReceivedInstance&) {
            ++handled;
            return dicom::StoreOutcome{};
        },
        [&](const std::string& level, const std::string& text) {
            std::lock_guard<std::mutex> lock(mu);
            logs.push_back(level + ": " + text);
        });
    server.start();
    const std::string to = " 127.0.0.1 " + std::to_string(port) + " " + kSamples + "CT_small.dcm";
    testing::CommandResult wrong = testing::run("storescu -aet MODALITY -aec WRONGAE" + to);
    INFO(wrong.output);
    CHECK(wrong.exitCode != 0);
    CHECK_THAT(wrong.output, Catch::Contains("Called AE Title Not Recognized"));
    CHECK(server.counters().rejected == 1);
    CHECK(server.counters().associations == 0);
    CHECK(server.counters().stored == 0);
    {
        std::lock_guard<std::mutex> lock(mu);
        for (const auto& l : logs) UNSCOPED_INFO(l);
        CHECK(testing::anyLineHas(logs, {"MODALITY", "'WRONGAE'", "127.0.0.1", "called AE title"}));
    }
    // Its own title is served.
    testing::CommandResult right = testing::run("storescu -aet MODALITY -aec ARCHIVE" + to);
    INFO(right.output);
    CHECK(right.exitCode == 0);
    CHECK(eventually([&] { return handled == 1; }));
    server.stop();
}

TEST_CASE("With host 127.0.0.1 the source listens there only, and an address it cannot use fails its start") {
    Tmp t;
    dicom::StoreServerOptions o = archive(t, testing::freeDicomPort());
    o.host = "127.0.0.1";
    {
        dicom::StoreServer server(o, [](const dicom::ReceivedInstance&) { return dicom::StoreOutcome{}; }, {});
        server.start();
        CHECK(testing::listeningAddresses(o.port) == std::vector<std::string>{"127.0.0.1"});
        testing::CommandResult echo = testing::run("echoscu -aec ARCHIVE 127.0.0.1 " + std::to_string(o.port));
        INFO(echo.output);
        CHECK(echo.exitCode == 0);
    }
    o.host = "192.0.2.1";  // TEST-NET-1: no interface of this machine has it
    dicom::StoreServer elsewhere(o, [](const dicom::ReceivedInstance&) { return dicom::StoreOutcome{}; }, {});
    CHECK_THROWS_WITH(elsewhere.start(), Catch::Contains("cannot listen on 192.0.2.1:" + std::to_string(o.port)));
}

TEST_CASE("By default the source answers once the instance is on disk, refused ones wait across a restart") {
    Tmp t;
    const int port = 28443;
    std::atomic<bool> accept{false};
    std::atomic<int> attempts{0};
    std::mutex mu;
    std::vector<dicom::ReceivedInstance> handled;
    dicom::StoreServerOptions o = archive(t, port);
    o.maxBacklog = 1;
    auto handler = [&](const dicom::ReceivedInstance& r) {
        ++attempts;
        if (!accept && r.error.empty()) return dicom::StoreOutcome{dicom::kStoreOutOfResources, "the test's channel is full"};
        std::lock_guard<std::mutex> lock(mu);
        handled.push_back(r);
        return dicom::StoreOutcome{};
    };
    const std::string ready = t.str("store") + "/.incoming/" + std::to_string(port) + "/ready";
    const std::string target = t.str("store") + "/1.3.6.1.4.1.5962.1.2.1.20040119072730.12322/"
                                                "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322/"
                                                "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322.dcm";
    auto readyFiles = [&] {
        std::size_t n = 0;
        for (const auto& e : fs::directory_iterator(ready)) n += e.path().extension() == ".dcm";
        return n;
    };
    {
        dicom::StoreServer server(o, handler, {});
        server.start();
        auto d = destination(port, "ARCHIVE");
        // Answered although the handler refuses it: the instance is on disk.
        CHECK(d->send(outbound(message(kSamples + "CT_small.dcm"))).kind == core::SendResult::Kind::Ok);
        CHECK(eventually([&] { return attempts >= 1; }));
        CHECK(fs::exists(target));
        CHECK(readyFiles() == 1);
        CHECK(server.counters().backlog == 1);
        // The backlog is full (max 1): the next instance is refused for now.
        auto busy = d->send(outbound(message(kSamples + "MR_small.dcm")));
        CHECK(busy.kind == core::SendResult::Kind::Retry);
        CHECK(busy.error.find("0xA700") != std::string::npos);
        // Tried again every second, still refused.
        CHECK(eventually([&] { return attempts >= 2; }, std::chrono::seconds(5)));
        d->stop();
        server.stop();
    }
    CHECK(readyFiles() == 1);  // kept for the next start
    CHECK(handled.empty());
    // A file in the ready folder DCMTK cannot read becomes an error message.
    { std::ofstream(ready + "/00000000000000000001-00000000_" + std::string("4d4f44") + "_" + "41" + "_" + "31" + ".dcm") << "no DICOM at all"; }
    accept = true;
    {
        dicom::StoreServer server(o, handler, {});
        server.start();
        CHECK(eventually([&] {
            std::lock_guard<std::mutex> lock(mu);
            return handled.size() == 2;
        }));
        std::lock_guard<std::mutex> lock(mu);
        REQUIRE(handled.size() == 2);
        // Oldest first: the unreadable one (its name sorts first), then CT_small.
        CHECK(!handled[0].error.empty());
        CHECK(handled[0].callingAE == "MOD");
        CHECK(handled[0].path.find("/.failed/") != std::string::npos);
        CHECK(fs::exists(handled[0].path));
        CHECK(handled[1].error.empty());
        CHECK(handled[1].path == target);
        CHECK(handled[1].callingAE == "JUNCTION");
        CHECK(handled[1].calledAE == "ARCHIVE");
        CHECK(handled[1].peer == "127.0.0.1");
        CHECK(handled[1].sopInstanceUid == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322");
        CHECK(handled[1].json.find("\"00100020\"") != std::string::npos);
        CHECK(eventually([&] { return readyFiles() == 0; }));
        CHECK(fs::exists(target));
        CHECK(server.counters().backlog == 0);
    }
    {
        // An instance over 4 MiB (checked through a mapping, parsed from the file):
        // CT_small with 6 MB of pixel data instead of its own.
        std::string bytes = fileBytes(kSamples + "CT_small.dcm");
        const std::string header("\xe0\x7f\x10\x00OW\x00\x00", 8);
        std::size_t at = bytes.rfind(header);
        REQUIRE(at != std::string::npos);
        const std::uint32_t big = 6u << 20;
        bytes.resize(at + 12);
        for (int i = 0; i < 4; ++i) bytes[at + 8 + i] = static_cast<char>((big >> (8 * i)) & 0xFF);
        bytes += std::string(big, '\x01');
        std::ofstream(t.str("big.dcm"), std::ios::binary) << bytes;
        dicom::StoreServer server(o, handler, {});
        server.start();
        auto d = destination(port, "ARCHIVE");
        CHECK(d->send(outbound(message(t.str("big.dcm")))).kind == core::SendResult::Kind::Ok);
        CHECK(eventually([&] {
            std::lock_guard<std::mutex> lock(mu);
            return handled.size() == 3;
        }));
        std::lock_guard<std::mutex> lock(mu);
        REQUIRE(handled.size() == 3);
        CHECK(handled[2].error.empty());
        CHECK(handled[2].path == target);
        CHECK(fs::file_size(target) > big);
        d->stop();
        server.stop();
    }
}

TEST_CASE("A study folder on another filesystem (no hard link possible) gets its instances by copy") {
    const bool afterHandler = GENERATE(false, true);  // respond_after: file | message
    Tmp t;
    const int port = 28444;
    // The study's folder is a link to /dev/shm: link() from the ready folder fails with EXDEV there.
    const std::string study = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";
    fs::path elsewhere = fs::path("/dev/shm") / ("junction-dicom-test-" + std::to_string(::getpid()));
    fs::remove_all(elsewhere);
    fs::create_directories(elsewhere);
    struct Gone {
        fs::path p;
        ~Gone() { fs::remove_all(p); }
    } gone{elsewhere};
    struct stat a {}, b {};
    REQUIRE(::stat(t.str().c_str(), &a) == 0);
    REQUIRE(::stat(elsewhere.c_str(), &b) == 0);
    REQUIRE(a.st_dev != b.st_dev);
    fs::create_directories(t.str("store"));
    fs::create_directory_symlink(elsewhere, t.str("store") + "/" + study);

    std::mutex mu;
    std::vector<dicom::ReceivedInstance> handled;
    std::vector<std::string> logs;
    dicom::StoreServerOptions o = archive(t, port);
    o.syncFiles = true;
    o.respondAfterHandler = afterHandler;
    auto handler = [&](const dicom::ReceivedInstance& r) {
        std::lock_guard<std::mutex> lock(mu);
        handled.push_back(r);
        return dicom::StoreOutcome{};
    };
    dicom::StoreServer server(o, handler, [&](const std::string&, const std::string& text) {
        std::lock_guard<std::mutex> lock(mu);
        logs.push_back(text);
    });
    server.start();
    auto d = destination(port, "ARCHIVE");
    CHECK(d->send(outbound(message(kSamples + "CT_small.dcm"))).kind == core::SendResult::Kind::Ok);
    CHECK(eventually([&] {
        std::lock_guard<std::mutex> lock(mu);
        return handled.size() == 1;
    }));
    const std::string ready = t.str("store") + "/.incoming/" + std::to_string(port) + "/ready";
    CHECK(eventually([&] { return fs::is_empty(ready); }));
    d->stop();
    server.stop();
    std::lock_guard<std::mutex> lock(mu);
    REQUIRE(handled.size() == 1);
    CHECK(handled[0].error.empty());
    fs::path filed = elsewhere / "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322" /
                     "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322.dcm";
    CHECK(fs::exists(filed));
    CHECK(firstValue(datasetOf(filed.string()), "00080018") == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322");
    CHECK(fs::path(handled[0].path) == fs::path(t.str("store")) / study / filed.parent_path().filename() / filed.filename());
    bool said = false;
    for (const auto& l : logs) said = said || l.find("takes no hard links") != std::string::npos;
    CHECK(said == !afterHandler);  // a rename that crosses filesystems just copies
}

TEST_CASE("dicom connector settings are checked") {
    core::BuildContext ctx;
    ctx.channel = "test";
    ctx.baseDir = "/tmp";
    const auto* src = dicomConnectors().source("dicom");
    const auto* dst = dicomConnectors().destination("dicom");
    REQUIRE(src);
    REQUIRE(dst);
    CHECK(src->defaultDataType() == "json");
    auto bad = [&](const core::SourceFactory* f, const std::string& yaml) {
        auto n = config::loadYamlString(yaml, "x.yaml");
        CHECK_THROWS_AS(f->validate(n, ctx), config::ConfigError);
    };
    bad(src, "{ port: 28450, ae_title: THIS-AE-TITLE-IS-FAR-TOO-LONG }");
    bad(src, "{ port: 28450, max_pdu: 100 }");
    bad(src, "{ port: 28450, timeout: 10ms }");
    bad(src, "{ port: 28450, host: 300.1.1.1 }");
    auto badHost = config::loadYamlString("port: 28450\nhost: pacs.example\n", "x.yaml");
    CHECK_THROWS_WITH(src->validate(badHost, ctx), Catch::Contains("x.yaml:2:") && Catch::Contains("not an IPv4 address"));
    auto good = config::loadYamlString("{ port: 28450, host: 127.0.0.1, allowed_aes: [A, B], stable_study: 30s }", "x.yaml");
    CHECK_NOTHROW(src->validate(good, ctx));
    CHECK(src->listenPort(good) == 28450);
    CHECK(src->create(good, ctx)->describe() == "dicom JUNCTION 127.0.0.1:28450");
    auto badDst = config::loadYamlString("{ host: h, port: 104, called_ae: \"\" }", "x.yaml");
    CHECK_THROWS_AS(dst->validate(badDst, ctx), config::ConfigError);
}
