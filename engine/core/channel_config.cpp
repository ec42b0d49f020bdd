#include "engine/core/channel_config.h"

#include "engine/hl7/message.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "engine/core/registry.h"
#include "engine/util/json_text.h"

namespace fs = std::filesystem;

namespace junction::core {

using config::Node;
using config::Setting;
using T = config::Setting::Type;

std::chrono::milliseconds RetryPolicy::delay(int attempt, double random01) const {
    double base = static_cast<double>(backoff.count());
    for (int i = 2; i < attempt && base < static_cast<double>(maxBackoff.count()); ++i) base *= 2;
    base = std::min(base, static_cast<double>(maxBackoff.count()));
    double factor = 1.0 + jitter * (2.0 * random01 - 1.0);
    return std::chrono::milliseconds(static_cast<long long>(std::max(0.0, base * factor)));
}

namespace {

const std::vector<Setting>& channelSettings() {
    static const std::vector<Setting> s = {
        {T::String, "channel", true, "the channel's unique name"},
        {T::String, "description", false, "free text"},
        {T::Bool, "enabled", false, "false: loaded but not started"},
        {T::Map, "source", true, "where messages come from: { type: mllp, port: 6661 }"},
        {T::String, "script", false, "Lua file with the channel's functions"},
        {T::String, "preprocessor", false, "Lua function run first on the raw message"},
        {T::String, "filter", false, "Lua function; false filters the message"},
        {T::String, "transform", false, "Lua function that may rewrite the message and route it"},
        {T::String, "postprocessor", false, "Lua function run after all destinations"},
        {T::Int, "workers", false, "parallel workers (order kept only with 1)", 1, 64},
        {T::String, "storage", false, "content kept per message", 0, 0,
         {"development", "production", "metadata", "disabled"}},
        {T::Duration, "prune", false, "drop finished messages older than this (e.g. 30d)"},
        {T::Int, "queue_limit", false, "queued deliveries per destination before back-pressure", 1, 100000000},
        {T::Any, "destinations", true, "list of destinations"},
    };
    return s;
}

const std::vector<Setting>& sourceCommon() {
    static const std::vector<Setting> s = {
        {T::String, "type", true, "the source connector type"},
        {T::String, "data_type", false, "how messages are parsed", 0, 0, {"hl7v2", "json", "xml", "raw"}},
        {T::String, "ack", false, "when the sender is answered", 0, 0, {"after_commit", "after_destinations", "script"}},
        {T::String, "ack_from", false, "after_destinations: destination whose response is relayed"},
    };
    return s;
}

const std::vector<Setting>& destinationCommon() {
    static const std::vector<Setting> s = {
        {T::String, "name", true, "unique within the channel"},
        {T::String, "type", true, "the destination connector type"},
        {T::Bool, "enabled", false, ""},
        {T::String, "filter", false, "Lua function; false skips this destination"},
        {T::String, "transform", false, "Lua function preparing the message for this destination"},
        {T::String, "response", false, "Lua function run on the destination's response"},
        {T::Map, "retry", false, "{ attempts, backoff, max_backoff, jitter, on_reject }"},
        {T::Int, "queue_limit", false, "queued deliveries before back-pressure", 1, 100000000},
        {T::Int, "threads", false, "deliveries at a time, one connection each (order kept per order_by)", 1, 64},
        {T::String, "order_by", false, "with threads: HL7 path whose value keeps its messages in order, e.g. PID-3.1"},
    };
    return s;
}

const std::vector<Setting>& retrySettings() {
    static const std::vector<Setting> s = {
        {T::Int, "attempts", false, "total tries including the first", 1, 1000000},
        {T::Duration, "backoff", false, "first wait, doubled each retry"},
        {T::Duration, "max_backoff", false, "longest wait"},
        {T::String, "jitter", false, "0..1 fraction of randomness"},
        {T::Bool, "on_reject", false, "retry AE/AR answers too"},
    };
    return s;
}

std::vector<Setting> merged(const std::vector<Setting>& a, const std::vector<Setting>& b) {
    std::vector<Setting> out = a;
    out.insert(out.end(), b.begin(), b.end());
    return out;
}

std::string resolve(const std::string& base, const std::string& p) {
    fs::path path(p);
    return (path.is_absolute() ? path : fs::path(base) / path).lexically_normal().string();
}

bool validName(const std::string& n) {
    if (n.empty() || n.size() > 64) return false;
    return std::all_of(n.begin(), n.end(), [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_' || c == '.'; });
}

template <class Types>
[[noreturn]] void failUnknownType(const Node& at, const std::string& kind, const std::string& type, const Types& known) {
    std::string types;
    for (const auto& t : known) types += (types.empty() ? "" : ", ") + t;
    at.fail("unknown " + kind + " type '" + type + "'", "known: " + types);
}

DestinationConfig parseDestination(const Node& d, std::set<std::string>& names, const BuildContext& bctx,
                                   const ConnectorRegistry& registry, bool& needsScript) {
    if (!d.isMap()) d.fail("a destination must be a mapping");
    const Node* dt = d.find("type");
    if (!dt) d.fail("missing key 'type' in destination");
    DestinationConfig dc;
    dc.type = dt->asString("destination.type");
    const DestinationFactory* df = registry.destination(dc.type);
    if (!df) failUnknownType(*dt, "destination", dc.type, registry.destinationTypes());
    config::checkSettings(d, merged(destinationCommon(), df->settings()), "destination (" + dc.type + ")");
    dc.name = d.find("name")->asString("destination.name");
    if (!validName(dc.name)) d.find("name")->fail("invalid destination name '" + dc.name + "'");
    if (!names.insert(dc.name).second)
        d.find("name")->fail("duplicate destination name '" + dc.name + "'", "names are unique within a channel");
    if (auto n = d.find("enabled")) dc.enabled = n->asBool("enabled");
    for (auto [key, field] : {std::pair{"filter", &dc.filter}, std::pair{"transform", &dc.transform},
                              std::pair{"response", &dc.response}}) {
        if (auto n = d.find(key)) {
            *field = n->asString(key);
            needsScript = true;
        }
    }
    if (auto r = d.find("retry")) {
        config::checkSettings(*r, retrySettings(), "retry");
        if (auto n = r->find("attempts")) dc.retry.attempts = static_cast<int>(n->asInt("retry.attempts", 1, 1000000));
        if (auto n = r->find("backoff")) dc.retry.backoff = n->asDuration("retry.backoff");
        if (auto n = r->find("max_backoff")) dc.retry.maxBackoff = n->asDuration("retry.max_backoff");
        if (auto n = r->find("jitter")) {
            std::string j = n->asString("retry.jitter");
            char* end = nullptr;
            double v = std::strtod(j.c_str(), &end);
            if (end == j.c_str() || *end || v < 0 || v > 1) n->fail("retry.jitter must be a number from 0 to 1");
            dc.retry.jitter = v;
        }
        if (auto n = r->find("on_reject")) dc.retryOnReject = n->asBool("retry.on_reject");
        if (dc.retry.maxBackoff < dc.retry.backoff) dc.retry.maxBackoff = dc.retry.backoff;
    }
    if (auto n = d.find("queue_limit")) dc.queueLimit = static_cast<std::size_t>(n->asInt("queue_limit", 1, 100000000));
    if (auto n = d.find("threads")) dc.threads = static_cast<int>(n->asInt("threads", 1, 64));
    if (auto n = d.find("order_by")) {
        dc.orderBy = n->asString("order_by");
        std::string why;
        if (!hl7::Path::parse(dc.orderBy, &why))
            n->fail("order_by '" + dc.orderBy + "' is not an HL7 path: " + why, "e.g. order_by: PID-3.1");
    }
    df->validate(d, bctx);
    dc.settings = d;
    dc.mark = d.mark;
    return dc;
}

}  // namespace

ChannelConfig parseChannelFile(const std::string& file, const std::string& baseDir, const ConnectorRegistry& registry) {
    return parseChannel(config::loadYamlFile(file), file, baseDir, registry);
}

ChannelConfig parseChannel(const Node& root, const std::string& file, const std::string& baseDir,
                           const ConnectorRegistry& registry) {
    if (!root.isMap()) root.fail("a channel file must be a mapping", "start with 'channel: NAME'");
    // Each part is checked on its own, so that one pass reports every problem.
    config::ConfigProblems problems;
    problems.attempt([&] { config::checkSettings(root, channelSettings(), "the channel"); });
    ChannelConfig c;
    c.file = file;
    c.baseDir = baseDir;
    bool needsScript = false;
    problems.attempt([&] {
        if (auto n = root.find("channel")) {
            c.name = n->asString("channel");
            if (!validName(c.name))
                n->fail("invalid channel name '" + c.name + "'", "letters, digits, '-', '_' and '.', at most 64");
        }
    });
    problems.attempt([&] {
        if (auto n = root.find("description")) c.description = n->asString("description");
        if (auto n = root.find("enabled")) c.enabled = n->asBool("enabled");
        if (auto n = root.find("workers")) c.workers = static_cast<int>(n->asInt("workers", 1, 64));
        if (auto n = root.find("storage")) c.storage = *store::parseStorageMode(n->asString("storage"));
        if (auto n = root.find("prune")) c.pruneAfter = n->asDuration("prune");
        if (auto n = root.find("queue_limit")) c.queueLimit = static_cast<std::size_t>(n->asInt("queue_limit", 1, 100000000));
        for (auto [key, field] : {std::pair{"preprocessor", &c.preprocessor}, std::pair{"filter", &c.filter},
                                  std::pair{"transform", &c.transform}, std::pair{"postprocessor", &c.postprocessor}}) {
            if (auto n = root.find(key)) {
                *field = n->asString(key);
                c.functionMarks[key] = n->mark;
                needsScript = true;
            }
        }
    });
    problems.attempt([&] {
        if (auto n = root.find("script")) {
            c.script = resolve(baseDir, n->asString("script"));
            if (!fs::is_regular_file(c.script))
                n->fail("script file not found: " + c.script, "paths are relative to " + baseDir);
        }
    });

    // source
    BuildContext bctx{c.name, baseDir};
    const Node* srcNode = root.find("source");
    bool sourceOk = srcNode && problems.attempt([&] {
        const Node& src = *srcNode;
        if (!src.isMap()) src.fail("source must be a mapping", "e.g. { type: mllp, port: 6661 }");
        const Node* typeNode = src.find("type");
        if (!typeNode) src.fail("missing key 'type' in source");
        c.sourceType = typeNode->asString("source.type");
        const SourceFactory* sf = registry.source(c.sourceType);
        if (!sf) failUnknownType(*typeNode, "source", c.sourceType, registry.sourceTypes());
        config::checkSettings(src, merged(sourceCommon(), sf->settings()), "source (" + c.sourceType + ")");
        sf->validate(src, bctx);
        c.sourceSettings = src;
        c.dataType = sf->defaultDataType();
        if (auto n = src.find("data_type")) c.dataType = n->asString("source.data_type");
        if (auto n = src.find("ack")) {
            std::string a = n->asString("source.ack");
            c.ack = a == "after_destinations" ? AckMode::AfterDestinations : a == "script" ? AckMode::Script : AckMode::AfterCommit;
        }
        if (auto n = src.find("ack_from")) c.ackFrom = n->asString("source.ack_from");
    });

    // destinations
    std::set<std::string> names;
    bool destinationsOk = false;
    if (const Node* dests = root.find("destinations")) destinationsOk = problems.attempt([&] {
        if (dests->kind != Node::Kind::List) dests->fail("destinations must be a list", "- { name: out, type: mllp, ... }");
        for (const Node& d : dests->list) problems.attempt([&] { c.destinations.push_back(parseDestination(d, names, bctx, registry, needsScript)); });
    });
    problems.attempt([&] {
        if (needsScript && c.script.empty() && !root.find("script"))
            root.fail("the channel names Lua functions but has no 'script'", "add script: transforms/NAME.lua");
    });
    if (sourceOk && destinationsOk) problems.attempt([&] {
        const Node& src = *srcNode;
        if (c.ack == AckMode::AfterDestinations) {
            if (c.destinations.empty()) src.fail("ack: after_destinations needs at least one destination");
            if (c.ackFrom.empty()) c.ackFrom = c.destinations.front().name;
            if (!names.count(c.ackFrom)) src.find("ack_from")->fail("ack_from names no destination of this channel");
        }
    });
    problems.finish();
    return c;
}

namespace {

std::string schemaFor(const Setting& s) {
    std::string out = "{";
    switch (s.type) {
        case T::String:
            out += "\"type\":\"string\"";
            if (!s.choices.empty()) {
                out += ",\"enum\":[";
                for (std::size_t i = 0; i < s.choices.size(); ++i) out += (i ? ",\"" : "\"") + s.choices[i] + "\"";
                out += "]";
            }
            break;
        case T::Int:
            out += "\"type\":\"integer\"";
            if (s.min || s.max) out += ",\"minimum\":" + std::to_string(s.min) + ",\"maximum\":" + std::to_string(s.max);
            break;
        case T::Bool: out += "\"type\":\"boolean\""; break;
        case T::Duration:
            out += "\"type\":[\"string\",\"number\"],\"pattern\":\"^[0-9.]+(ms|s|m|h|d)?$\"";
            break;
        case T::Bytes: out += "\"type\":[\"string\",\"number\"],\"pattern\":\"^[0-9.]+([KMG]i?B?|B)?$\""; break;
        case T::StringList: out += "\"type\":[\"string\",\"array\"],\"items\":{\"type\":\"string\"}"; break;
        case T::Map: out += "\"type\":\"object\""; break;
        case T::Any: break;
    }
    if (!s.help.empty()) out += std::string(out.size() > 1 ? "," : "") + "\"description\":" + util::jsonString(s.help);
    return out + "}";
}

std::string objectSchema(const std::vector<Setting>& settings, const std::string& extra = {}) {
    std::string props, required;
    for (const auto& s : settings) {
        props += (props.empty() ? "" : ",") + std::string("\"") + s.name + "\":" + schemaFor(s);
        if (s.required) required += (required.empty() ? "\"" : ",\"") + s.name + "\"";
    }
    return "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{" + props + "}" +
           (required.empty() ? "" : ",\"required\":[" + required + "]") + extra + "}";
}

}  // namespace

std::string channelJsonSchema(const ConnectorRegistry& registry) {
    std::string sources, dests;
    for (const auto& t : registry.sourceTypes()) {
        auto settings = merged(sourceCommon(), registry.source(t)->settings());
        std::string obj = objectSchema(settings);
        // pin the type
        obj.insert(obj.find("\"type\":{") + 8, "\"const\":\"" + t + "\",");
        sources += (sources.empty() ? "" : ",") + obj;
    }
    for (const auto& t : registry.destinationTypes()) {
        auto settings = merged(destinationCommon(), registry.destination(t)->settings());
        std::string obj = objectSchema(settings);
        obj.insert(obj.find("\"type\":{") + 8, "\"const\":\"" + t + "\",");
        dests += (dests.empty() ? "" : ",") + obj;
    }
    std::string top;
    for (const auto& s : channelSettings()) {
        std::string v;
        if (s.name == "source") v = "{\"oneOf\":[" + sources + "]}";
        else if (s.name == "destinations") v = "{\"type\":\"array\",\"items\":{\"oneOf\":[" + dests + "]}}";
        else v = schemaFor(s);
        top += (top.empty() ? "" : ",") + std::string("\"") + s.name + "\":" + v;
    }
    return "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"title\":\"Junction channel\","
           "\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"channel\",\"source\",\"destinations\"],"
           "\"properties\":{" + top + "}}";
}

}  // namespace junction::core
