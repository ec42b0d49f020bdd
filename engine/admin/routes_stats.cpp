// The admin API's statistics and probes: counters per channel and
// destination with queue depths, /metrics in Prometheus' text format,
// /health and /ready, and the OpenAPI document of every route.
#include <algorithm>

#include "engine/admin/admin_server.h"
#include "engine/admin/metrics.h"
#include "engine/admin/route_support.h"
#include "engine/core/engine.h"

namespace junction::admin {

namespace {

Schema windowsSchema() {
    return object({{"1m", countersSchema(), true}, {"1h", countersSchema(), true}, {"24h", countersSchema(), true}},
                  "the current minute and the 0, 59 and 1439 minutes before it");
}

// "total" and "windows" of one channel (destination) from the persisted figures.
void writePersisted(JsonWriter& w, const std::map<core::StatsRecorder::Key, core::PersistedStats>& figures,
                    const std::string& channel, const std::string& destination) {
    auto it = figures.find({channel, destination});
    core::PersistedStats none;
    const core::PersistedStats& p = it == figures.end() ? none : it->second;
    w.key("total");
    writeCounters(w, p.total.counters);
    w.key("windows").beginObject().key("1m");
    writeCounters(w, p.last1m);
    w.key("1h");
    writeCounters(w, p.last1h);
    w.key("24h");
    writeCounters(w, p.last24h);
    w.endObject();
}

}  // namespace

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
                        {"total", countersSchema("counts since the channel was created, kept across restarts"), true},
                        {"windows", windowsSchema(), true},
                        {"destinations", array(object({{"name", string(), true},
                                                       {"queued", integer("deliveries waiting"), true},
                                                       {"counters", countersSchema(), true},
                                                       {"latency", latencySchema(), true},
                                                       {"total", countersSchema("counts since the destination was created"), true},
                                                       {"windows", windowsSchema(), true}})),
                         true}})),
          true}});
    stats.handler = [&ctx](const ApiRequest&) {
        auto channels = ctx.engine.channels();
        auto figures = ctx.engine.statsRecorder().figures(channels, true);
        JsonWriter w;
        w.beginObject().key("channels").beginArray();
        for (const auto& c : channels) {
            w.beginObject().field("name", c.name).field("state", core::toString(c.state)).key("counters");
            writeCounters(w, c.counters);
            w.key("latency");
            writeLatency(w, c.latency);
            writePersisted(w, figures, c.name, {});
            w.key("destinations").beginArray();
            for (const auto& d : c.destinations) {
                w.beginObject().field("name", d.name).field("queued", static_cast<std::uint64_t>(d.queued)).key("counters");
                writeCounters(w, d.counters);
                w.key("latency");
                writeLatency(w, d.latency);
                writePersisted(w, figures, c.name, d.name);
                w.endObject();
            }
            w.endArray().endObject();
        }
        w.endArray().endObject();
        return jsonAnswer(w);
    };
    routes.push_back(std::move(stats));

    Route series{"GET", "/api/v1/stats/series", Role::Viewer, "stats",
                 "A channel's (destination's) counts per minute, oldest first, zeros included: the dashboard's sparkline"};
    series.query = object({{"channel", string("channel name"), true},
                           {"destination", string("one of its destinations (default: the channel itself)")},
                           {"minutes", integer("1 to 1440, default 60")}});
    series.response = object({{"minutes", array(object({{"time", string("ISO 8601, the minute's start"), true},
                                                         {"received", integer(), true},
                                                         {"filtered", integer(), true},
                                                         {"sent", integer(), true},
                                                         {"errored", integer(), true}})),
                               true}});
    series.errors = {404};
    series.handler = [&ctx](const ApiRequest& req) {
        const std::string channel = req.query.str("channel");
        const std::string destination = req.query.str("destination");
        auto minutes = req.query.integer("minutes", 60);
        if (minutes < 1 || minutes > 1440) throw ApiError(400, "minutes is from 1 to 1440");
        auto info = ctx.engine.channel(channel);
        if (!info) throw ApiError(404, "no channel " + channel);
        if (!destination.empty() &&
            std::none_of(info->destinations.begin(), info->destinations.end(),
                         [&](const core::DestinationInfo& d) { return d.name == destination; }))
            throw ApiError(404, "channel " + channel + " has no destination " + destination);
        JsonWriter w;
        w.beginObject().key("minutes").beginArray();
        for (const auto& m : ctx.engine.statsRecorder().series(channel, destination, static_cast<int>(minutes)))
            w.beginObject()
                .field("time", isoTime(m.start))
                .field("received", m.counters.received)
                .field("filtered", m.counters.filtered)
                .field("sent", m.counters.sent)
                .field("errored", m.counters.errored)
                .endObject();
        w.endArray().endObject();
        return jsonAnswer(w);
    };
    routes.push_back(std::move(series));

    Route metrics{"GET", "/metrics", Role::Viewer, "stats", "Counters, queue depths and states in Prometheus' text format"};
    metrics.contentType = "text/plain; version=0.0.4; charset=utf-8";
    metrics.response = string("Prometheus text exposition format 0.0.4");
    metrics.handler = [&ctx](const ApiRequest&) {
        auto channels = ctx.engine.channels();
        auto totals = ctx.engine.statsRecorder().figures(channels, false);
        return ApiResponse{200, prometheusText(channels, totals), "text/plain; version=0.0.4; charset=utf-8", {}};
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
