// The admin API's read routes over stored data: messages searched and paged
// by id (keyset), one message with its content stages, the worklist listed,
// changed and cancelled, /metrics in Prometheus' text format (parsed here),
// the statistics, /ready, and the OpenAPI document holding every route.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <set>

#include "tests/admin/admin_test_support.h"

using namespace junction;
using namespace junction::testing;
using admin::Role;

namespace {

// Stores `n` messages of channel `channel` directly, control ids C0..C(n-1).
void storeMessages(AdminFixture& f, const std::string& channel, int n) {
    for (int i = 0; i < n; ++i) {
        store::NewMessage m;
        m.channel = channel;
        m.raw = "MSH|^~\\&|A|B|C|D|20260101000000||ADT^A04|C" + std::to_string(i) + "|P|2.5.1\rPID|||P" +
                std::to_string(i % 3) + "\r";
        m.meta = {"ADT^A04", "C" + std::to_string(i), "P" + std::to_string(i % 3), ""};
        m.receivedAt = store::Clock::time_point(std::chrono::hours(24 * 365 * 56)) + std::chrono::minutes(i);
        f.engine->store().insert(std::move(m), [](store::MessageId, const std::string&) {});
    }
    f.engine->store().flush();
}

}  // namespace

TEST_CASE("messages are searched and paged by id, newest first, and shown with their content", "[admin]") {
    AdminFixture f;
    storeMessages(f, "archive", 7);
    std::vector<std::int64_t> ids;
    std::string next = "first";
    int pages = 0;
    while (!next.empty()) {
        std::string path = "/api/v1/messages?channel=archive&limit=3" + (next == "first" ? "" : "&before=" + next);
        auto r = f.as(Role::Viewer, "GET", path);
        REQUIRE(r.status == 200);
        auto o = jsonObject(r.body);
        auto page = o->getArray("messages");
        for (std::size_t i = 0; i < page->size(); ++i) ids.push_back(page->getObject(static_cast<unsigned>(i))->getValue<std::int64_t>("id"));
        next = o->isNull("next") ? "" : std::to_string(o->getValue<std::int64_t>("next"));
        REQUIRE(++pages <= 3);
    }
    CHECK(pages == 3);
    REQUIRE(ids.size() == 7);
    for (std::size_t i = 1; i < ids.size(); ++i) CHECK(ids[i] < ids[i - 1]);

    auto byControl = jsonObject(f.as(Role::Viewer, "GET", "/api/v1/messages?control_id=C4").body)->getArray("messages");
    REQUIRE(byControl->size() == 1);
    auto m = byControl->getObject(0);
    CHECK(m->getValue<std::string>("patient_id") == "P1");
    CHECK(m->getValue<std::string>("type") == "ADT^A04");
    CHECK(m->getValue<std::string>("received") == "2025-12-18T00:04:00.000Z");
    auto byPatient = jsonObject(f.as(Role::Viewer, "GET", "/api/v1/messages?patient_id=P0&channel=archive").body);
    CHECK(byPatient->getArray("messages")->size() == 3);  // C0, C3, C6
    auto inRange = jsonObject(f.as(Role::Viewer, "GET",
                                   "/api/v1/messages?from=2025-12-18T00:02:00Z&to=2025-12-18T00:05:00Z").body);
    CHECK(inRange->getArray("messages")->size() == 3);  // C2, C3, C4
    auto received = jsonObject(f.as(Role::Viewer, "GET", "/api/v1/messages?status=RECEIVED&type=ADT%5EA04").body);
    CHECK(received->getArray("messages")->size() == 7);

    auto detail = f.as(Role::Viewer, "GET", "/api/v1/messages/" + std::to_string(m->getValue<std::int64_t>("id")));
    REQUIRE(detail.status == 200);
    auto d = jsonObject(detail.body);
    CHECK(d->getValue<std::string>("raw").find("|C4|") != std::string::npos);
    CHECK(d->getValue<std::string>("control_id") == "C4");
    CHECK(d->getArray("deliveries")->size() == 0);
    CHECK(f.as(Role::Viewer, "GET", "/api/v1/messages/999999").status == 404);

    // By a destination's state: C4 failed at "out" and waits for "copy".
    store::ProcessedMessage pm;
    pm.id = m->getValue<std::int64_t>("id");
    pm.channel = "archive";
    pm.deliveries = {{"out", store::Status::Error, "e", "refused"}, {"copy", store::Status::Queued, "e", ""}};
    f.engine->store().recordProcessed(pm);
    f.engine->store().flush();
    auto found = [&](const std::string& query) {
        auto r = f.as(Role::Viewer, "GET", "/api/v1/messages?" + query);
        INFO(query << ": " << r.body);
        REQUIRE(r.status == 200);
        auto list = jsonObject(r.body)->getArray("messages");
        std::vector<std::int64_t> out;
        for (std::size_t i = 0; i < list->size(); ++i) out.push_back(list->getObject(static_cast<unsigned>(i))->getValue<std::int64_t>("id"));
        return out;
    };
    const std::vector<std::int64_t> c4{pm.id};
    CHECK(found("destination_status=ERROR") == c4);
    CHECK(found("destination_status=ERROR&destination=out&channel=archive") == c4);
    CHECK(found("destination_status=ERROR&destination=copy").empty());
    CHECK(found("destination_status=QUEUED&destination=copy") == c4);
    CHECK(found("destination=copy") == c4);
    CHECK(found("destination_status=SENT").empty());
    CHECK(found("destination_status=ERROR&channel=other").empty());
    CHECK(f.as(Role::Viewer, "GET", "/api/v1/messages?destination_status=RECEIVED").status == 400);
    CHECK(f.as(Role::Viewer, "GET", "/api/v1/messages?destination_status=error%27--").status == 400);
}

TEST_CASE("worklist items are listed, changed and cancelled", "[admin]") {
    AdminFixture f;
    store::WorklistItem item;
    item.accessionNumber = "ACC7";
    item.patientId = "P7";
    item.patientName = "DOE^JANE";
    item.modality = "MR";
    item.spsStartDate = "20261207";
    item.dataset = R"({"00080050":{"vr":"SH","Value":["ACC7"]}})";
    auto id = std::to_string(f.engine->worklist().upsert(item));
    item.accessionNumber = "ACC8";
    item.modality = "CT";
    f.engine->worklist().upsert(item);

    auto list = jsonObject(f.as(Role::Viewer, "GET", "/api/v1/worklist?modality=MR").body)->getArray("items");
    REQUIRE(list->size() == 1);
    CHECK(list->getObject(0)->getValue<std::string>("accession") == "ACC7");
    CHECK(jsonObject(f.as(Role::Viewer, "GET", "/api/v1/worklist?patient_name=DOE*").body)->getArray("items")->size() == 2);
    auto one = jsonObject(f.as(Role::Viewer, "GET", "/api/v1/worklist/" + id).body);
    CHECK(one->getObject("dataset")->has("00080050"));

    auto r = f.as(Role::Operator, "PUT", "/api/v1/worklist/" + id + "/status", R"({"status": "IN PROGRESS"})");
    REQUIRE(r.status == 200);
    CHECK(jsonObject(r.body)->getValue<std::string>("status") == "IN PROGRESS");
    CHECK(f.as(Role::Operator, "PUT", "/api/v1/worklist/" + id + "/status", R"({"status": "DONE"})").status == 400);
    r = f.as(Role::Operator, "POST", "/api/v1/worklist/" + id + "/cancel");
    CHECK(jsonObject(r.body)->getValue<std::string>("status") == "CANCELLED");
    CHECK(f.engine->worklist().get(std::stoll(id))->status == store::WorklistStatus::Cancelled);
    // The other item of the same patient is untouched; finished items are listed only when asked.
    CHECK(jsonObject(f.as(Role::Viewer, "GET", "/api/v1/worklist").body)->getArray("items")->size() == 1);
    CHECK(jsonObject(f.as(Role::Viewer, "GET", "/api/v1/worklist?include_finished=true").body)->getArray("items")->size() == 2);
    CHECK(f.as(Role::Operator, "POST", "/api/v1/worklist/424242/cancel").status == 404);
}

TEST_CASE("/metrics is Prometheus text with the counters of every channel and destination", "[admin]") {
    AdminFixture f;
    REQUIRE(f.engine->triggerChannel("sched"));
    REQUIRE(eventually([&] { return f.engine->channel("sched")->counters.received == 1; }));
    auto r = f.as(Role::Viewer, "GET", "/metrics");
    REQUIRE(r.status == 200);
    CHECK(r.header("Content-Type").find("text/plain; version=0.0.4") == 0);

    // Every line: a HELP or TYPE comment, or `name{label="value",...} number`,
    // each sample's family declared by a TYPE line before it.
    const std::regex sample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$)");
    const std::regex type(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|summary|histogram|untyped)$)");
    std::set<std::string> families;
    std::map<std::string, double> values;
    std::istringstream in(r.body);
    std::string line;
    int samples = 0;
    while (std::getline(in, line)) {
        INFO(line);
        std::smatch m;
        if (std::regex_match(line, m, type)) {
            CHECK(families.insert(m[1]).second);
            continue;
        }
        if (line.rfind("# HELP ", 0) == 0) continue;
        REQUIRE(std::regex_match(line, m, sample));
        std::string name = m[1];
        for (const char* suffix : {"_sum", "_count", "_bucket"})
            if (!families.count(name) && name.size() > std::strlen(suffix) && name.ends_with(suffix))
                name = name.substr(0, name.size() - std::strlen(suffix));
        CHECK(families.count(name) == 1);
        values[line.substr(0, line.rfind(' '))] = std::stod(line.substr(line.rfind(' ') + 1));
        ++samples;
    }
    CHECK(samples > 20);
    CHECK(values.at(R"(junction_messages_total{channel="sched",status="received"})") == 1);
    CHECK(values.at(R"(junction_messages_total{channel="files",status="received"})") == 0);
    CHECK(values.at(R"(junction_destination_queue_depth{channel="files",destination="out"})") == 0);
    CHECK(values.at(R"(junction_channel_state{channel="sched",state="running"})") == 1);
    CHECK(values.at(R"(junction_channel_state{channel="sched",state="stopped"})") == 0);
    CHECK(values.at("junction_up") == 1);
    // Latency histograms: cumulative buckets up to +Inf, the count the same.
    CHECK(values.at(R"(junction_channel_latency_seconds_bucket{channel="sched",le="+Inf"})") == 1);
    CHECK(values.at(R"(junction_channel_latency_seconds_count{channel="sched"})") == 1);
    CHECK(values.at(R"(junction_channel_latency_seconds_bucket{channel="sched",le="33.554432"})") == 1);
    CHECK(values.at(R"(junction_channel_latency_seconds_bucket{channel="sched",le="1e-06"})") == 0);
    CHECK(values.count(R"(junction_destination_latency_seconds_count{channel="files",destination="out"})") == 1);

    auto stats = jsonObject(f.as(Role::Viewer, "GET", "/api/v1/stats").body)->getArray("channels");
    bool seen = false;
    for (std::size_t i = 0; i < stats->size(); ++i) {
        auto c = stats->getObject(static_cast<unsigned>(i));
        if (c->getValue<std::string>("name") != "sched") continue;
        seen = true;
        CHECK(c->getObject("counters")->getValue<std::uint64_t>("received") == 1);
        CHECK(c->getObject("total")->getValue<std::uint64_t>("received") == 1);
        for (const char* w : {"1m", "1h", "24h"})
            CHECK(c->getObject("windows")->getObject(w)->getValue<std::uint64_t>("received") == 1);
    }
    CHECK(seen);
}

TEST_CASE("/api/v1/stats/series gives a channel's counts per minute, zeros included", "[admin]") {
    AdminFixture f;
    REQUIRE(f.engine->triggerChannel("sched"));
    REQUIRE(eventually([&] { return f.engine->channel("sched")->counters.received == 1; }));
    f.engine->statsRecorder().flush();
    auto r = f.as(Role::Viewer, "GET", "/api/v1/stats/series?channel=sched&minutes=5");
    REQUIRE(r.status == 200);
    auto minutes = jsonObject(r.body)->getArray("minutes");
    REQUIRE(minutes->size() == 5);
    std::uint64_t received = 0;
    std::string previous;
    for (std::size_t i = 0; i < minutes->size(); ++i) {
        auto m = minutes->getObject(static_cast<unsigned>(i));
        received += m->getValue<std::uint64_t>("received");
        CHECK(m->getValue<std::string>("time") > previous);
        previous = m->getValue<std::string>("time");
        CHECK(m->has("filtered"));
        CHECK(m->has("sent"));
        CHECK(m->has("errored"));
    }
    CHECK(received == 1);
    CHECK(jsonObject(f.as(Role::Viewer, "GET", "/api/v1/stats/series?channel=sched").body)->getArray("minutes")->size() == 60);
    CHECK(f.as(Role::Viewer, "GET", "/api/v1/stats/series?channel=files&destination=out&minutes=1440").status == 200);
    CHECK(f.as(Role::Viewer, "GET", "/api/v1/stats/series?channel=nope").status == 404);
    CHECK(f.as(Role::Viewer, "GET", "/api/v1/stats/series?channel=files&destination=nope").status == 404);
    CHECK(f.as(Role::Viewer, "GET", "/api/v1/stats/series?channel=sched&minutes=0").status == 400);
    CHECK(f.as(Role::Viewer, "GET", "/api/v1/stats/series?channel=sched&minutes=1441").status == 400);
    CHECK(f.as(Role::Viewer, "GET", "/api/v1/stats/series").status == 400);
}

TEST_CASE("/health and /ready answer without credentials, /ready only once the channels run", "[admin]") {
    AdminFixture f;
    CHECK(f.call("GET", "/health").status == 200);
    CHECK(f.call("GET", "/ready").status == 200);
    f.server->setReady(false);
    auto r = f.call("GET", "/ready");
    CHECK(r.status == 503);
    CHECK(jsonObject(r.body)->getValue<bool>("ready") == false);
}

TEST_CASE("the OpenAPI document holds every route with its role, parameters and schemas", "[admin]") {
    AdminFixture f;
    auto r = f.as(Role::Viewer, "GET", "/api/v1/openapi.json");
    REQUIRE(r.status == 200);
    auto doc = jsonObject(r.body);
    CHECK(doc->getValue<std::string>("openapi") == "3.0.3");
    auto paths = doc->getObject("paths");
    std::set<std::string> operationIds;
    std::size_t operations = 0;
    for (const auto& route : f.server->router().routes()) {
        INFO(route.method << " " << route.pattern);
        REQUIRE(paths->has(route.pattern));
        std::string method = route.method;
        for (auto& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        auto op = paths->getObject(route.pattern)->getObject(method);
        REQUIRE(op);
        ++operations;
        CHECK(operationIds.insert(op->getValue<std::string>("operationId")).second);
        CHECK(op->getValue<std::string>("x-junction-role") == admin::toString(route.role));
        CHECK(op->getObject("responses")->has(std::to_string(route.status)));
        // 401: credentials needed, or a public route that checks them itself (the console's login).
        const bool checksCredentials = std::find(route.errors.begin(), route.errors.end(), 401) != route.errors.end();
        CHECK(op->getObject("responses")->has("401") == (route.role != Role::Public || checksCredentials));
        CHECK(op->has("requestBody") == route.request.has_value());
        if (route.request) {
            auto schema = op->getObject("requestBody")->getObject("content")->getObject("application/json")->getObject("schema");
            CHECK(schema->getValue<bool>("additionalProperties") == false);
            CHECK(schema->getObject("properties")->size() == route.request->properties.size());
        }
        std::size_t params = route.query.properties.size();
        for (char c : route.pattern) params += c == '{' ? 1 : 0;
        CHECK(op->getArray("parameters")->size() == params);
    }
    std::size_t documented = 0;
    for (const auto& [path, item] : *paths) documented += item.extract<Poco::JSON::Object::Ptr>()->size();
    CHECK(documented == operations);
}

TEST_CASE("the docs' route table (docs/admin-api.md) names every route with its role", "[admin]") {
    AdminFixture f;
    std::ifstream in(std::string(JUNCTION_SOURCE_DIR) + "/docs/admin-api.md");
    REQUIRE(in);
    // | GET | `/api/v1/channels` | viewer | ... |
    const std::regex row(R"(^\| (GET|POST|PUT|DELETE) \| `([^`]+)` \| (none|viewer|operator|admin) \|.*)");
    std::map<std::pair<std::string, std::string>, std::string> documented;
    std::string line;
    while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_match(line, m, row)) documented[{m[1], m[2]}] = m[3] == "none" ? "public" : std::string(m[3]);
    }
    for (const auto& r : f.server->router().routes()) {
        INFO(r.method << " " << r.pattern);
        auto it = documented.find({r.method, r.pattern});
        REQUIRE(it != documented.end());
        CHECK(it->second == admin::toString(r.role));
    }
    CHECK(documented.size() == f.server->router().routes().size());
}
