// The admin API's channel routes on a running engine: list and show (state,
// connectors, counters, YAML and script), stop, start, pause, resume,
// trigger (a schedule run now; 409 where there is nothing to run), redeploy
// one or all after the files changed (errors with file:line:column) and
// validate a proposal without deploying it.
#include <catch2/catch.hpp>

#include "engine/util/json_text.h"
#include "tests/admin/admin_test_support.h"

using namespace junction;
using namespace junction::testing;
using admin::Role;

namespace {

std::string state(AdminFixture& f, const std::string& name) {
    return jsonObject(f.as(Role::Viewer, "GET", "/api/v1/channels/" + name).body)->getValue<std::string>("state");
}

std::size_t messagesOf(AdminFixture& f, const std::string& channel) {
    f.engine->store().flush();
    store::SearchQuery q;
    q.channel = channel;
    return f.engine->store().search(q).size();
}

}  // namespace

TEST_CASE("channels are listed and shown with their state, connectors, counters and files", "[admin]") {
    AdminFixture f;
    auto r = f.as(Role::Viewer, "GET", "/api/v1/channels");
    REQUIRE(r.status == 200);
    auto list = jsonObject(r.body)->getArray("channels");
    REQUIRE(list->size() == 2);
    std::map<std::string, Poco::JSON::Object::Ptr> byName;
    for (std::size_t i = 0; i < list->size(); ++i) {
        auto c = list->getObject(static_cast<unsigned>(i));
        byName[c->getValue<std::string>("name")] = c;
    }
    auto files = byName.at("files");
    CHECK(files->getValue<std::string>("state") == "running");
    CHECK(files->getObject("source")->getValue<std::string>("type") == "file");
    CHECK(files->getObject("source")->getValue<bool>("back_pressure") == false);
    auto dest = files->getArray("destinations")->getObject(0);
    CHECK(dest->getValue<std::string>("name") == "out");
    CHECK(dest->getValue<std::string>("state") == "ok");
    CHECK(dest->getValue<std::uint64_t>("queued") == 0);
    CHECK(dest->getObject("counters")->getValue<std::uint64_t>("sent") == 0);
    CHECK_FALSE(files->has("yaml"));  // the texts come with one channel only

    auto one = jsonObject(f.as(Role::Viewer, "GET", "/api/v1/channels/sched").body);
    CHECK(one->getValue<std::string>("yaml") == kScheduleChannel);
    CHECK(one->getValue<std::string>("script") == kScheduleScript);
    CHECK(one->getValue<std::string>("script_file") == f.dir.str() + "/sched.lua");
    CHECK(one->getValue<std::string>("description") == "runs when asked");
}

TEST_CASE("channels are stopped, started, paused, resumed and triggered through the API", "[admin]") {
    AdminFixture f;
    auto post = [&](const std::string& path) { return f.as(Role::Operator, "POST", path); };
    REQUIRE(post("/api/v1/channels/files/stop").status == 200);
    CHECK(state(f, "files") == "stopped");
    CHECK(f.engine->channel("files")->state == core::ChannelState::Stopped);
    CHECK(post("/api/v1/channels/files/pause").status == 409);  // not running
    REQUIRE(post("/api/v1/channels/files/start").status == 200);
    CHECK(state(f, "files") == "running");
    auto paused = post("/api/v1/channels/files/pause");
    CHECK(jsonObject(paused.body)->getValue<std::string>("state") == "paused");
    CHECK(f.engine->channel("files")->state == core::ChannelState::Paused);
    CHECK(jsonObject(post("/api/v1/channels/files/resume").body)->getValue<std::string>("state") == "running");

    // trigger: a schedule source runs at once; a file source has nothing to run.
    CHECK(messagesOf(f, "sched") == 0);  // run_at_start: false, interval 1h
    REQUIRE(post("/api/v1/channels/sched/trigger").status == 200);
    CHECK(eventually([&] { return messagesOf(f, "sched") == 1; }));
    REQUIRE(post("/api/v1/channels/sched/trigger").status == 200);
    CHECK(eventually([&] { return messagesOf(f, "sched") == 2; }));
    auto r = post("/api/v1/channels/files/trigger");
    CHECK(r.status == 409);
    CHECK(jsonErrorText(r).find("nothing to run on demand") != std::string::npos);
    post("/api/v1/channels/sched/stop");
    CHECK(post("/api/v1/channels/sched/trigger").status == 409);
    CHECK(post("/api/v1/channels/nope/trigger").status == 404);
    CHECK(messagesOf(f, "sched") == 2);
}

TEST_CASE("channels are redeployed from their files, and a broken file is told with file:line:column", "[admin]") {
    AdminFixture f;
    f.dir.write("sched.lua", "function run(msg) msg = msg end\n");
    auto r = f.as(Role::Admin, "POST", "/api/v1/channels/sched/redeploy");
    REQUIRE(r.status == 200);
    CHECK(jsonObject(f.as(Role::Viewer, "GET", "/api/v1/channels/sched").body)->getValue<std::string>("script") ==
          "function run(msg) msg = msg end\n");

    std::string file = f.dir.write("channels/files.yaml", "channel: files\nsource: { type: file, directory: in, bogus: 1 }\ndestinations: []\n");
    r = f.as(Role::Admin, "POST", "/api/v1/channels/files/redeploy");
    CHECK(r.status == 422);
    CHECK(jsonErrorText(r).find(file + ":2:") != std::string::npos);
    CHECK(jsonErrorText(r).find("bogus") != std::string::npos);
    CHECK(state(f, "files") == "running");  // the old version keeps running

    f.dir.write("channels/third.yaml", "channel: third\nsource: { type: schedule, run_at_start: false }\ndestinations: []\n");
    r = f.as(Role::Admin, "POST", "/api/v1/channels/redeploy");
    REQUIRE(r.status == 200);
    auto o = jsonObject(r.body);
    CHECK(o->getArray("added")->getElement<std::string>(0) == "third");
    auto problems = o->getArray("problems");
    REQUIRE(problems->size() == 1);
    CHECK(problems->getObject(0)->getValue<std::string>("error").find(file + ":2:") != std::string::npos);
    CHECK(state(f, "third") == "running");
}

TEST_CASE("a proposed channel file is validated without being deployed", "[admin]") {
    AdminFixture f;
    auto validate = [&](const std::string& yaml) {
        std::string body = "{\"file\": \"channels/new.yaml\", \"yaml\": " + util::jsonString(yaml) + "}";
        auto r = f.as(Role::Admin, "POST", "/api/v1/channels/validate", body);
        REQUIRE(r.status == 200);
        return jsonObject(r.body);
    };
    auto ok = validate("channel: new\nsource: { type: schedule }\nscript: sched.lua\ntransform: run\ndestinations: []\n");
    CHECK(ok->getValue<bool>("valid"));
    CHECK(ok->getValue<std::string>("channel") == "new");
    CHECK_FALSE(f.engine->channel("new"));  // not deployed

    auto bad = validate("channel: new\nsource: { type: schedule }\nscript: sched.lua\ntransform: missing_function\ndestinations: []\n");
    CHECK_FALSE(bad->getValue<bool>("valid"));
    std::string error = bad->getArray("problems")->getObject(0)->getValue<std::string>("error");
    CHECK(error.find("channels/new.yaml:4:") != std::string::npos);
    CHECK(error.find("missing_function") != std::string::npos);

    auto outside = validate("channel: new\nsource: { type: schedule }\nscript: /etc/passwd\ntransform: run\ndestinations: []\n");
    CHECK_FALSE(outside->getValue<bool>("valid"));

    auto syntax = validate("channel: [new\n");
    CHECK_FALSE(syntax->getValue<bool>("valid"));
}
