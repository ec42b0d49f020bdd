// The Lua orthanc module against a real Orthanc: lookups that come back as
// tables, bytes that come back as strings, errors that name the server, and
// calls bounded by the script's time limit.
#include <fstream>
#include <sstream>

#include "engine/orthanc/server.h"
#include "tests/lua/lua_test_util.h"
#include "tests/orthanc/orthanc_fixture.h"

using namespace junction;
using namespace junction::lua;
using namespace junction::lua::test;

namespace {

orthanc_test::OrthancProcess& peer() {
    static orthanc_test::OrthancProcess p;
    return p;
}

orthanc::ServerOptions options(const std::string& name, const std::string& url, const std::string& password) {
    orthanc::ServerOptions o;
    o.name = name;
    o.url = url;
    o.username = peer().user();
    o.password = password;
    return o;
}

// The CT sample uploaded once; its instance id.
const std::string& uploaded() {
    static const std::string id = [] {
        std::ifstream in(std::string(JUNCTION_SOURCE_DIR) + "/samples/dicom/ct_small.dcm", std::ios::binary);
        std::ostringstream s;
        s << in.rdbuf();
        orthanc::Server server(options("main", peer().url(), peer().password()));
        http::Result r = server.call("POST", "/instances", s.str(), "application/dicom");
        REQUIRE(r.response.status == 200);
        auto at = r.response.body.find("\"ID\" : \"");
        REQUIRE(at != std::string::npos);
        return r.response.body.substr(at + 8, r.response.body.find('"', at + 8) - at - 8);
    }();
    return id;
}

// A call given `servers` as the engine's orthanc.
CallResult callWith(Harness& h, orthanc::Servers* servers, std::string_view fn) {
    h.orthanc = servers;
    return h.call(fn);
}

}  // namespace

TEST_CASE("scripts look things up in Orthanc through the orthanc module", "[orthanc][lua]") {
    orthanc::Servers servers;
    servers.add(options("main", peer().url(), peer().password()));
    const std::string id = uploaded();
    Harness h(R"(
function lookups(msg)
  local system = orthanc.get("/system")
  assert(type(system) == "table" and system.Version, "GET /system as a table")
  local studies = orthanc.find({ Level = "Study", Query = { PatientID = "1CT1" }, Expand = true })
  assert(#studies == 1, "one study found, not " .. #studies)
  local study = studies[1]
  assert(study.MainDicomTags.StudyInstanceUID, "the study's tags")
  local instances = orthanc.get("/studies/" .. study.ID .. "/instances")
  local png = orthanc.preview(instances[1].ID)
  assert(png:sub(2, 4) == "PNG", "preview is a PNG")
  local dcm = orthanc.file(instances[1].ID)
  assert(dcm:sub(129, 132) == "DICM", "file is DICOM")
  local same = orthanc.server("main").get("/instances/" .. instances[1].ID)
  assert(same.ID == instances[1].ID)
  local labels = orthanc.post("/tools/lookup", same.MainDicomTags.SOPInstanceUID)
  assert(#labels == 1 and labels[1].Type == "Instance", "lookup: " .. json.encode(labels))
  local qido = orthanc.qido("studies?PatientID=1CT1")
  assert(#qido == 1 and qido[1]["0020000D"].Value[1] == study.MainDicomTags.StudyInstanceUID, "QIDO-RS")
  msg:set("ZDS-1", study.MainDicomTags.StudyInstanceUID)
end
function missing(msg) orthanc.get("/studies/not-there") end
function unnamed(msg) orthanc.server("research").get("/system") end
function badid(msg) orthanc.preview("../../system") end
)");
    CallResult r = callWith(h, &servers, "lookups");
    INFO(r.error);
    REQUIRE(r.ok);
    CHECK(h.payload.hl7->get("ZDS-1") == "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322");

    r = callWith(h, &servers, "missing");
    CHECK_FALSE(r.ok);
    CHECK(r.error.find("transforms/test.lua:") == 0);
    CHECK(r.error.find("orthanc.get: orthanc server 'main' (" + peer().url() + "): GET /studies/not-there: 404") !=
          std::string::npos);
    r = callWith(h, &servers, "unnamed");
    CHECK(r.error.find("no orthanc server named 'research'") != std::string::npos);
    r = callWith(h, &servers, "badid");
    CHECK(r.error.find("'../../system' is not an Orthanc id") != std::string::npos);
    r = callWith(h, nullptr, "missing");
    CHECK(r.error.find("no orthanc server is configured") != std::string::npos);

    orthanc::Servers two;
    two.add(options("main", peer().url(), peer().password()));
    two.add(options("research", peer().url(), "wrong"));
    r = callWith(h, &two, "missing");
    CHECK(r.error.find("several orthanc servers are configured: name one") != std::string::npos);
    r = callWith(h, &two, "unnamed");
    CHECK(r.error.find("401") != std::string::npos);
    CHECK(r.error.find("wrong username or password") != std::string::npos);
}

TEST_CASE("an Orthanc call from a script is bounded by the script's time limit", "[orthanc][lua]") {
    // A server that accepts connections and never answers.
    Poco::Net::ServerSocket silent(Poco::Net::SocketAddress("127.0.0.1", 0));
    orthanc::Servers servers;
    servers.add(options("main", "http://127.0.0.1:" + std::to_string(silent.address().port()), "x"));
    Limits limits;
    limits.time = std::chrono::milliseconds(700);
    Harness h("function slow(msg) orthanc.get('/system') end", limits);
    auto began = std::chrono::steady_clock::now();
    CallResult r = callWith(h, &servers, "slow");
    auto took = std::chrono::steady_clock::now() - began;
    CHECK_FALSE(r.ok);
    CHECK(took < std::chrono::milliseconds(2500));  // not the server's 30 s
    CHECK((r.error.find("timed out") != std::string::npos || r.error.find("time limit") != std::string::npos));
}
