// The admin API's statistics and probes: counters per channel and
// destination with queue depths, /metrics in Prometheus' text format,
// /health and /ready, and the OpenAPI document of every route.
#include "engine/admin/admin_server.h"
#include "engine/admin/metrics.h"
#include "engine/admin/route_support.h"
#include "engine/core/engine.h"

namespace junction::admin {

std::vector<Route> statsRoutes(AdminContext& ctx) {
    std::vector<Route> routes;

    Route stats{"GET", "/api/v1/stats", Role::Viewer, "stats",
                "Counters and latency per channel and destination, queue depth per destination"};
    stats.response = object(
        {{"channels",
          array(object({{"name", string(), true},
                        {"state", string(), true},
                        {"counters", countersSchema(), true},
                        {"latency", latencySchema(), true},
                        {"destinations", array(object({{"name", string(), true},
                                                       {"queued", integer("deliveries waiting"), true},
                                                       {"counters", countersSchema(), true},
                                                       {"latency", latencySchema(), true}})),
                         true}})),
          true}});
    stats.handler = [&ctx](const ApiRequest&) {
        JsonWriter w;
        w.beginObject().key("channels").beginArray();
        for (const auto& c : ctx.engine.channels()) {
            w.beginObject().field("name", c.name).field("state", core::toString(c.state)).key("counters");
            writeCounters(w, c.counters);
            w.key("latency");
            writeLatency(w, c.latency);
            w.key("destinations").beginArray();
            for (const auto& d : c.destinations) {
                w.beginObject().field("name", d.name).field("queued", static_cast<std::uint64_t>(d.queued)).key("counters");
                writeCounters(w, d.counters);
                w.key("latency");
                writeLatency(w, d.latency);
                w.endObject();
            }
            w.endArray().endObject();
        }
        w.endArray().endObject();
        return jsonAnswer(w);
    };
    routes.push_back(std::move(stats));

    Route metrics{"GET", "/metrics", Role::Viewer, "stats", "Counters, queue depths and states in Prometheus' text format"};
    metrics.contentType = "text/plain; version=0.0.4; charset=utf-8";
    metrics.response = string("Prometheus text exposition format 0.0.4");
    metrics.handler = [&ctx](const ApiRequest&) {
        return ApiResponse{200, prometheusText(ctx.engine.channels()), "text/plain; version=0.0.4; charset=utf-8", {}};
    };
    routes.push_back(std::move(metrics));

    Route health{"GET", "/health", Role::Public, "stats", "The process is up"};
    health.response = object({{"status", words({"up"}), true}});
    health.handler = [](const ApiRequest&) {
        JsonWriter w;
        w.beginObject().field("status", "up").endObject();
        return jsonAnswer(w);
    };
    routes.push_back(std::move(health));

    Route ready{"GET", "/ready", Role::Public, "stats",
                "The store is open and the channels are deployed (503 until then and while stopping)"};
    ready.response = object({{"ready", boolean(), true}, {"channels", integer("channels running"), true}});
    ready.errors = {503};
    ready.handler = [&ctx](const ApiRequest&) {
        std::uint64_t running = 0;
        for (const auto& c : ctx.engine.channels()) running += c.state == core::ChannelState::Running ? 1 : 0;
        bool ok = ctx.ready.load();
        JsonWriter w;
        w.beginObject().field("ready", ok).field("channels", running).endObject();
        return jsonAnswer(w, ok ? 200 : 503);
    };
    routes.push_back(std::move(ready));

    Route openapi{"GET", "/api/v1/openapi.json", Role::Viewer, "stats",
                  "This API's OpenAPI 3.0 document, written from its route table"};
    openapi.response = object({{"openapi", string(), true}, {"paths", mapOf(object({})), true}});
    openapi.response.additionalProperties = true;
    openapi.handler = [&ctx](const ApiRequest&) { return ApiResponse{200, ctx.router.openApi(ctx.version), "application/json", {}}; };
    routes.push_back(std::move(openapi));
    return routes;
}

}  // namespace junction::admin
