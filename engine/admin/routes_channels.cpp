// The admin API's channel routes: list and show channels (state, connectors,
// counters, the YAML and script text), start, stop, pause, resume, trigger,
// redeploy one or all from disk, and validate a proposed channel file.
#include <filesystem>

#include "engine/admin/admin_server.h"
#include "engine/admin/route_support.h"
#include "engine/config/node.h"
#include "engine/core/engine.h"
#include "engine/util/file_text.h"

namespace junction::admin {

namespace {

Schema destinationSchema() {
    return object({{"name", string(), true},
                   {"type", string("connector type"), true},
                   {"state", words({"ok", "failing"}, "failing: its last attempt failed"), true},
                   {"queued", integer("deliveries waiting in the store"), true},
                   {"held", integer("of those, held in memory"), true},
                   {"last_error", string(), true},
                   {"counters", countersSchema(), true},
                   {"latency", latencySchema(), true}});
}

Schema channelSchema() {
    return object({{"name", string(), true},
                   {"description", string(), true},
                   {"state", words({"stopped", "running", "paused", "failed"}), true},
                   {"enabled", boolean(), true},
                   {"error", string("why it failed to start"), true},
                   {"file", string("the channel file"), true},
                   {"source", object({{"type", string(), true},
                                      {"state", words({"stopped", "running", "paused", "failed"}), true},
                                      {"back_pressure", boolean("held because a queue is full"), true},
                                      {"problem", string("what keeps the source from working now (an unreachable "
                                                         "server), empty when nothing"),
                                       true},
                                      {"address", string("what the running source listens on or reads, e.g. "
                                                         "\"mllp 0.0.0.0:6661\"; empty when stopped"),
                                       true},
                                      {"connections", nullable(integer("a running listener's open connections")),
                                       true}}),
                    true},
                   {"counters", countersSchema(), true},
                   {"latency", latencySchema(), true},
                   {"destinations", array(destinationSchema()), true}});
}

void writeChannel(JsonWriter& w, const core::ChannelInfo& c, bool withText) {
    w.beginObject()
        .field("name", c.name)
        .field("description", c.description)
        .field("state", core::toString(c.state))
        .field("enabled", c.enabled)
        .field("error", c.error)
        .field("file", c.file);
    w.key("source")
        .beginObject()
        .field("type", c.sourceType)
        .field("state", core::toString(c.state))
        .field("back_pressure", c.backPressure)
        .field("problem", c.sourceProblem)
        .field("address", c.sourceAddress)
        .key("connections");
    if (c.sourceConnections) w.value(static_cast<std::int64_t>(*c.sourceConnections));
    else w.null();
    w.endObject();
    w.key("counters");
    writeCounters(w, c.counters);
    w.key("latency");
    writeLatency(w, c.latency);
    w.key("destinations").beginArray();
    for (const auto& d : c.destinations) {
        w.beginObject()
            .field("name", d.name)
            .field("type", d.type)
            .field("state", d.failing ? "failing" : "ok")
            .field("queued", static_cast<std::uint64_t>(d.queued))
            .field("held", static_cast<std::uint64_t>(d.held))
            .field("last_error", d.lastError);
        w.key("counters");
        writeCounters(w, d.counters);
        w.key("latency");
        writeLatency(w, d.latency);
        w.endObject();
    }
    w.endArray();
    if (withText) {
        w.field("yaml", util::readFileText(c.file));
        w.field("script_file", c.script);
        w.field("script", c.script.empty() ? std::string() : util::readFileText(c.script));
    }
    w.endObject();
}

core::ChannelInfo channelOf(AdminContext& ctx, const ApiRequest& r) {
    auto c = ctx.engine.channel(r.pathParam("name"));
    if (!c) throw ApiError(404, "no channel '" + r.pathParam("name") + "'");
    return *c;
}

ApiResponse channelAnswer(AdminContext& ctx, const std::string& name) {
    JsonWriter w;
    writeChannel(w, *ctx.engine.channel(name), false);
    return jsonAnswer(w);
}

// A route that acts on one channel and answers with its state afterwards.
Route action(AdminContext& ctx, const std::string& verb, std::string summary,
             std::function<void(core::Engine&, const core::ChannelInfo&)> act, Role role = Role::Operator) {
    Route r{"POST", "/api/v1/channels/{name}/" + verb, role, "channels", std::move(summary)};
    r.response = channelSchema();
    r.errors = {404, 409};
    r.handler = [&ctx, act](const ApiRequest& req) {
        core::ChannelInfo c = channelOf(ctx, req);
        try {
            act(ctx.engine, c);
        } catch (const config::ConfigError& e) {
            throw ApiError(422, e.what());
        } catch (const ApiError&) {
            throw;
        } catch (const std::exception& e) {
            throw ApiError(409, e.what());
        }
        return channelAnswer(ctx, c.name);
    };
    return r;
}

void writeProblems(JsonWriter& w, const std::vector<core::LoadProblem>& problems) {
    w.key("problems").beginArray();
    for (const auto& p : problems) w.beginObject().field("file", p.file).field("error", p.error).endObject();
    w.endArray();
}

Schema problemsSchema() {
    return array(object({{"file", string(), true}, {"error", string("file:line:column: message (hint)"), true}}));
}

// Checks a proposed channel file's text as `junction validate` checks a file.
ApiResponse validate(AdminContext& ctx, const ApiRequest& req) {
    const auto& cfg = ctx.engine.options().config;
    std::string label = req.body.str("file", "proposed.yaml");
    std::vector<core::LoadProblem> problems;
    std::string name;
    try {
        config::Node root = config::loadYamlString(req.body.str("yaml"), label);
        core::ChannelConfig c = core::parseChannel(root, label, cfg.baseDir, ctx.engine.connectors());
        name = c.name;
        // Only scripts of the configuration's folder are loaded for a proposal.
        namespace fs = std::filesystem;
        auto base = fs::path(cfg.baseDir).lexically_normal();
        auto rel = fs::path(c.script).lexically_normal().lexically_relative(base);
        if (!c.script.empty() && (rel.empty() || *rel.begin() == ".."))
            throw config::ConfigError(label, 0, 0, "script " + c.script + " is outside the configuration folder " +
                                                       base.string());
        ctx.engine.check(c);
    } catch (const config::ConfigError& e) {
        problems.push_back({label, e.what()});
    }
    JsonWriter w;
    w.beginObject().field("valid", problems.empty()).field("channel", name);
    writeProblems(w, problems);
    w.endObject();
    return jsonAnswer(w);
}

}  // namespace

std::vector<Route> channelRoutes(AdminContext& ctx) {
    std::vector<Route> routes;

    Route list{"GET", "/api/v1/channels", Role::Viewer, "channels", "Every channel: state, connectors and counters"};
    list.response = object({{"channels", array(channelSchema()), true}});
    list.handler = [&ctx](const ApiRequest&) {
        JsonWriter w;
        w.beginObject().key("channels").beginArray();
        for (const auto& c : ctx.engine.channels()) writeChannel(w, c, false);
        w.endArray().endObject();
        return jsonAnswer(w);
    };
    routes.push_back(std::move(list));

    Route one{"GET", "/api/v1/channels/{name}", Role::Viewer, "channels",
              "One channel, with the text of its YAML file and of its script"};
    Schema withText = channelSchema();
    withText.properties.push_back({"yaml", string("the channel file's text"), true});
    withText.properties.push_back({"script_file", string("the script's path, empty when none"), true});
    withText.properties.push_back({"script", string("the script's text"), true});
    one.response = withText;
    one.errors = {404};
    one.handler = [&ctx](const ApiRequest& req) {
        JsonWriter w;
        writeChannel(w, channelOf(ctx, req), true);
        return jsonAnswer(w);
    };
    routes.push_back(std::move(one));

    routes.push_back(action(ctx, "start", "Start a channel", [](core::Engine& e, const core::ChannelInfo& c) {
        e.startChannel(c.name);
    }));
    routes.push_back(action(ctx, "stop", "Stop a channel (its queued messages stay in the store)",
                            [](core::Engine& e, const core::ChannelInfo& c) { e.stopChannel(c.name); }));
    routes.push_back(action(ctx, "pause", "Pause a channel's source (its queues keep draining)",
                            [](core::Engine& e, const core::ChannelInfo& c) {
                                if (c.state != core::ChannelState::Running && c.state != core::ChannelState::Paused)
                                    throw ApiError(409, "channel '" + c.name + "' is " + core::toString(c.state));
                                e.pauseChannel(c.name);
                            }));
    routes.push_back(action(ctx, "resume", "Resume a paused channel's source",
                            [](core::Engine& e, const core::ChannelInfo& c) {
                                if (c.state != core::ChannelState::Running && c.state != core::ChannelState::Paused)
                                    throw ApiError(409, "channel '" + c.name + "' is " + core::toString(c.state));
                                e.resumeChannel(c.name);
                            }));
    routes.push_back(action(ctx, "trigger", "Run a channel's source now (a schedule source makes a run at once)",
                            [](core::Engine& e, const core::ChannelInfo& c) {
                                if (c.state != core::ChannelState::Running)
                                    throw ApiError(409, "channel '" + c.name + "' is " + core::toString(c.state));
                                if (!e.triggerChannel(c.name))
                                    throw ApiError(409, "channel '" + c.name + "' has a " + c.sourceType +
                                                            " source, which has nothing to run on demand");
                            }));
    Route redeploy = action(ctx, "redeploy", "Re-read a channel's file and script and redeploy it (its queue is kept)",
                            [](core::Engine& e, const core::ChannelInfo& c) { e.redeployChannel(c.name); }, Role::Admin);
    redeploy.errors.push_back(422);
    routes.push_back(std::move(redeploy));

    Route all{"POST", "/api/v1/channels/redeploy", Role::Admin, "channels",
              "Re-read the channel folder: changed channels redeployed, new ones started, removed ones stopped"};
    all.response = object({{"added", array(string()), true},
                           {"redeployed", array(string()), true},
                           {"removed", array(string()), true},
                           {"unchanged", integer(), true},
                           {"problems", problemsSchema(), true}});
    all.handler = [&ctx](const ApiRequest&) {
        core::ReloadResult r = ctx.engine.reloadChannels();
        JsonWriter w;
        w.beginObject();
        for (auto [key, names] : {std::pair{"added", &r.added}, std::pair{"redeployed", &r.redeployed},
                                  std::pair{"removed", &r.removed}}) {
            w.key(key).beginArray();
            for (const auto& n : *names) w.value(n);
            w.endArray();
        }
        w.field("unchanged", static_cast<std::uint64_t>(r.unchanged));
        writeProblems(w, r.problems);
        w.endObject();
        return jsonAnswer(w);
    };
    routes.push_back(std::move(all));

    Route check{"POST", "/api/v1/channels/validate", Role::Admin, "channels",
                "Check a proposed channel file as `junction validate` does, without deploying it"};
    check.request = object({{"yaml", string("the channel file's text"), true},
                            {"file", string("the name its problems are reported with (default proposed.yaml)")}});
    check.response = object({{"valid", boolean(), true},
                             {"channel", string("the channel's name, when it could be read"), true},
                             {"problems", problemsSchema(), true}});
    check.handler = [&ctx](const ApiRequest& req) { return validate(ctx, req); };
    routes.push_back(std::move(check));
    return routes;
}

}  // namespace junction::admin
