// Runs every ```lua block of docs/lua.md: each defines `function example(msg)`
// and checks its own results with assert(). Also checks that every documented
// API function has an example. The worklist module works on a temporary SQLite
// worklist, the orthanc module on a real Orthanc holding the CT sample.
#include "tests/lua/lua_test_util.h"

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <unistd.h>

#include "engine/http/server.h"
#include "engine/orthanc/server.h"
#include "engine/store/key_value_store.h"
#include "engine/store/worklist_store.h"
#include "engine/util/json_text.h"
#include "tests/orthanc/orthanc_fixture.h"

using namespace junction::lua;
using namespace junction::lua::test;

namespace {

struct Block {
    int line;  // line of the opening fence in docs/lua.md
    std::string code;
};

std::vector<Block> luaBlocks(const std::string& text) {
    std::vector<Block> blocks;
    std::istringstream in(text);
    std::string line;
    int n = 0;
    bool inside = false;
    Block cur;
    while (std::getline(in, line)) {
        ++n;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!inside && line == "```lua") {
            inside = true;
            cur = Block{n, {}};
            // keep line numbers of errors equal to docs/lua.md lines
            cur.code.assign(static_cast<std::size_t>(n), '\n');
        } else if (inside && line.rfind("```", 0) == 0) {
            inside = false;
            blocks.push_back(cur);
        } else if (inside) {
            cur.code += line + "\n";
        }
    }
    return blocks;
}

// The documented API: each must appear in at least one example.
const std::vector<std::string> kApi = {
    "msg:get(", "msg:set(", "msg:getRaw(", "msg:setRaw(", "msg:segments(", "msg:add(", "msg:insert(",
    "msg:remove(", "msg:type(", "msg:control_id(", "tostring(msg)",
    "msg.PID", ":S()", "tostring(msg.PID", ":raw()", " .. msg.PID", ":rep(", ":reps()", "#msg.PID",
    ":is_null()", ":is_empty()", ":name()", ":path()", "msg.PID[5][1] =",
    "hl7.parse(", "hl7.new(", "hl7.ack(", "hl7.escape(", "hl7.unescape(",
    "json.encode(", "json.decode(", "json.null", "json.array(",
    "xml.parse(", "xml.encode(",
    "log.info(", "log.warn(", "log.error(", "print(",
    "maps.channel", "maps.global", "maps.response", ":incr(", ":get(", ":set(", "pairs(maps.",
    "route(", "filter(", "ack(",
    "uuid()", "dicom.uid()", "dicom.keywords(", "dicom.json(", "now(",
    "require(", "load(",
    "worklist.upsert", "worklist.find", "worklist.complete(", "worklist.cancel(", "worklist.set_status(",
    "orthanc.get(", "orthanc.delete(", "orthanc.post(", "orthanc.find", "orthanc.preview(", "orthanc.file(",
    "orthanc.qido(", "orthanc.server(", "dicom.text_sr(", "dicom.wrap_pdf(",
    "vars.", "pairs(vars)",
    "store.get(", "store.put(", "store.delete(", "store.keys(",
    "http.get(", "http.delete(", "http.post(", "http.put(", "http.multipart", "http.urlencode(",
    "base64.encode(", "base64.decode(",
};

}  // namespace

TEST_CASE("every lua example of docs/lua.md runs and passes", "[lua][docs]") {
    const std::string path = std::string(JUNCTION_SOURCE_DIR) + "/docs/lua.md";
    std::ifstream f(path, std::ios::binary);
    REQUIRE(f);
    std::stringstream ss;
    ss << f.rdbuf();
    std::vector<Block> blocks = luaBlocks(ss.str());

    // One example per documented function (sections may share none).
    CHECK(blocks.size() >= 50);
    for (const auto& name : kApi) {
        bool found = false;
        for (const auto& b : blocks)
            if (b.code.find(name) != std::string::npos) found = true;
        INFO("no example uses " << name);
        CHECK(found);
    }

    // The worklist examples run against a real (temporary) SQLite worklist shared by all blocks.
    char tmpl[] = "/tmp/junction-docs-worklist-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    const std::string wlDir = tmpl;
    struct Cleanup {
        std::string dir;
        ~Cleanup() {
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
        }
    } cleanup{wlDir};
    auto worklist = junction::store::openSqliteWorklist(wlDir + "/junction.db", false);
    auto keyValues = junction::store::openSqliteKeyValues(wlDir + "/junction.db", false);
    const std::map<std::string, std::string> vars{{"site", "CITYHOSP"}};

    // The orthanc examples: a real Orthanc, named "main", holding pydicom's
    // CT_small.dcm given the sample order's accession number (ACC20261123001).
    orthanc_test::OrthancProcess orthancPeer;
    junction::orthanc::Servers orthancServers;
    {
        junction::orthanc::ServerOptions o;
        o.name = "main";
        o.url = orthancPeer.url();
        o.username = orthancPeer.user();
        o.password = orthancPeer.password();
        orthancServers.add(o);
        junction::orthanc::Server& main = *orthancServers.find("main");
        std::ifstream ct(std::string(JUNCTION_SOURCE_DIR) + "/samples/dicom/ct_small.dcm", std::ios::binary);
        std::ostringstream bytes;
        bytes << ct.rdbuf();
        auto up = main.call("POST", "/instances", bytes.str(), "application/dicom");
        REQUIRE(up.response.status == 200);
        std::smatch id;
        REQUIRE(std::regex_search(up.response.body, id, std::regex(R"re("ID"\s*:\s*"([0-9a-f-]+)")re")));
        const std::string instance = "/instances/" + id[1].str();
        auto modified = main.call("POST", instance + "/modify",
                                  R"({"Replace": {"AccessionNumber": "ACC20261123001"}, "Force": true,)"
                                  R"( "Keep": ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]})",
                                  "application/json", {}, "application/dicom");
        REQUIRE(modified.response.status == 200);
        REQUIRE(main.call("DELETE", instance).response.status == 200);
        REQUIRE(main.call("POST", "/instances", modified.response.body, "application/dicom").response.status == 200);
    }

    // The http examples: `emr` is a server answering with an account of each request.
    junction::http::ServerOptions ho;
    ho.host = "127.0.0.1";
    junction::http::Server emr(ho, [](const junction::http::ServerRequest& r) {
        junction::http::ServerResponse out;
        if (r.path.rfind("/status/", 0) == 0) out.status = std::stoi(r.path.substr(8));
        auto q = [](const std::string& s) { return junction::util::jsonString(s); };
        out.body = "{\"method\": " + q(r.method) + ", \"path\": " + q(r.path) + ", \"query\": " + q(r.query) +
                   ", \"authorization\": " + q(r.header("Authorization")) + ", \"content_type\": " +
                   q(r.header("Content-Type")) + ", \"body\": " + q(r.body) + "}";
        return out;
    });
    emr.start();
    const std::string emrPrelude = "emr = 'http://127.0.0.1:" + std::to_string(emr.port()) + "' ";

    // Chunks are named after a file in tests/lua/scripts so require() finds helpers.lua.
    const std::string chunk = std::string(JUNCTION_SOURCE_DIR) + "/tests/lua/scripts/docs_lua_md.lua";
    for (const auto& b : blocks) {
        INFO("docs/lua.md block at line " << b.line);
        std::string err;
        // `emr` is set on the first line, which is blank (line numbers stay those of docs/lua.md).
        auto rt = ScriptRuntime::loadString(emrPrelude + b.code, chunk, {}, &err);
        INFO(err);
        REQUIRE(rt);
        REQUIRE(rt->hasFunction("example"));
        auto channel = std::make_shared<SharedMap>();
        auto global = std::make_shared<SharedMap>();
        auto response = std::make_shared<SharedMap>();
        Payload p = hl7Payload();
        Invocation inv;
        inv.channel = "docs";
        inv.message = &p;
        inv.channelMap = channel;
        inv.globalMap = global;
        inv.responseMap = response;
        inv.worklist = worklist.get();
        inv.orthanc = &orthancServers;
        inv.keyValues = keyValues.get();
        inv.vars = &vars;
        CallResult r = rt->call("example", inv);
        INFO(r.error);
        CHECK(r.ok);
        CHECK_FALSE(r.returnedFalse);
    }
}
