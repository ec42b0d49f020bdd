// A channel file parsed and checked with its config maps (channel_config.h):
// the channel's keys, the settings common to sources and to destinations and
// each connector's own, retry policies; the JSON Schema and the settings
// tables (Markdown) of channel files.
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
using config::Kind;

std::chrono::milliseconds RetryPolicy::delay(int attempt, double random01) const {
    double base = static_cast<double>(backoff.count());
    for (int i = 2; i < attempt && base < static_cast<double>(maxBackoff.count()); ++i) base *= 2;
    base = std::min(base, static_cast<double>(maxBackoff.count()));
    double factor = 1.0 + jitter * (2.0 * random01 - 1.0);
    return std::chrono::milliseconds(static_cast<long long>(std::max(0.0, base * factor)));
}

namespace {

bool validName(const std::string& n) {
    if (n.empty() || n.size() > 64) return false;
    return std::all_of(n.begin(), n.end(), [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_' || c == '.'; });
}

const config::Map<ChannelConfig>& channelMap() {
    static const config::Map<ChannelConfig> map{
        {"channel", &ChannelConfig::name, config::required,
         config::check([](const std::string& n) { return validName(n) ? std::string() : "invalid channel name '" + n + "'"; },
                       "letters, digits, '-', '_' and '.', at most 64"),
         "the channel's unique name"},
        {"description", &ChannelConfig::description, "free text"},
        {"enabled", &ChannelConfig::enabled, "false: loaded but not started"},
        {"source", Kind::Map, config::required, "where messages come from: { type: mllp, port: 6661 }"},
        {"script", &ChannelConfig::script, config::path, "Lua file with the channel's functions"},
        {"preprocessor", &ChannelConfig::preprocessor, "Lua function run first on the raw message"},
        {"filter", &ChannelConfig::filter, "Lua function; false filters the message"},
        {"transform", &ChannelConfig::transform, "Lua function that may rewrite the message and route it"},
        {"postprocessor", &ChannelConfig::postprocessor, "Lua function run after all destinations"},
        {"workers", &ChannelConfig::workers, config::range(1, 64), "parallel workers (order kept only with 1)"},
        {"storage", &ChannelConfig::storage,
         config::choices({store::StorageMode::Development, store::StorageMode::Production, store::StorageMode::Metadata,
                          store::StorageMode::Disabled},
                         [](store::StorageMode m) { return std::string(store::toString(m)); }),
         "content kept per message"},
        {"prune", &ChannelConfig::pruneAfter, config::byDefault("0: kept forever"),
         "drop finished messages older than this (e.g. 30d)"},
        {"queue_limit", &ChannelConfig::queueLimit, config::range(1, 100000000), config::byDefault("no limit"),
         "queued deliveries per destination before back-pressure"},
        {"destinations", Kind::List, config::required, "list of destinations"},
        {"vars", Kind::Map, config::byDefault("none"), "named text values the scripts read as vars.NAME"},
    };
    return map;
}

const config::Map<ChannelConfig>& sourceCommon() {
    static const config::Map<ChannelConfig> map{
        {"type", &ChannelConfig::sourceType, config::required, "the source connector type"},
        {"data_type", &ChannelConfig::dataType, config::oneOf({"hl7v2", "json", "xml", "raw"}),
         config::byDefault("the source type's (hl7v2 unless noted)"), "how messages are parsed"},
        {"ack", &ChannelConfig::ack,
         config::choices<AckMode>({{"after_commit", AckMode::AfterCommit},
                                   {"after_destinations", AckMode::AfterDestinations},
                                   {"script", AckMode::Script}}),
         "when the sender is answered"},
        {"ack_from", &ChannelConfig::ackFrom, config::byDefault("the first destination"),
         "after_destinations: destination whose response is relayed"},
    };
    return map;
}

const config::Map<RetryPolicy>& retryMap() {
    static const config::Map<RetryPolicy> map(
        {
            {"attempts", &RetryPolicy::attempts, config::range(1, 1000000), "total tries including the first"},
            {"backoff", &RetryPolicy::backoff, "first wait, doubled each retry"},
            {"max_backoff", &RetryPolicy::maxBackoff, "longest wait (at least backoff)"},
            {"jitter", &RetryPolicy::jitter, config::range(0.0, 1.0), "fraction of randomness in each wait"},
            {"on_reject", &RetryPolicy::onReject, "retry AE/AR answers too"},
        },
        [](RetryPolicy& r, const Node&) { r.maxBackoff = std::max(r.maxBackoff, r.backoff); });
    return map;
}

const config::Map<DestinationConfig>& destinationCommon() {
    static const config::Map<DestinationConfig> map{
        {"name", &DestinationConfig::name, config::required,
         config::check([](const std::string& n) { return validName(n) ? std::string() : "invalid destination name '" + n + "'"; }),
         "unique within the channel"},
        {"type", &DestinationConfig::type, config::required, "the destination connector type"},
        {"enabled", &DestinationConfig::enabled, "false: nothing is sent to it"},
        {"filter", &DestinationConfig::filter, "Lua function; false skips this destination"},
        {"transform", &DestinationConfig::transform, "Lua function preparing the message for this destination"},
        {"response", &DestinationConfig::response, "Lua function run on the destination's response"},
        {"retry", &DestinationConfig::retry, retryMap(), "how a delivery that failed is tried again"},
        {"queue_limit", &DestinationConfig::queueLimit, config::range(1, 100000000), config::byDefault("the channel's"),
         "queued deliveries before back-pressure"},
        {"threads", &DestinationConfig::threads, config::range(1, 64),
         "deliveries at a time, one connection each (order kept per order_by)"},
        {"order_by", &DestinationConfig::orderBy,
         config::check(
             [](const std::string& p) {
                 std::string why;
                 return hl7::Path::parse(p, &why) ? std::string() : "order_by '" + p + "' is not an HL7 path: " + why;
             },
             "e.g. order_by: PID-3.1"),
         "with threads: HL7 path whose value keeps its messages in order, e.g. PID-3.1"},
    };
    return map;
}

template <class Types>
[[noreturn]] void failUnknownType(const Node& at, const std::string& kind, const std::string& type, const Types& known) {
    std::string types;
    for (const auto& t : known) types += (types.empty() ? "" : ", ") + t;
    at.fail("unknown " + kind + " type '" + type + "'", "known: " + types);
}

// The connector type a source or destination mapping names (`what`: "source" or "destination").
std::string connectorType(const Node& n, const std::string& what, const std::string& hint) {
    if (!n.isMap()) n.fail(what == "source" ? "source must be a mapping" : "a destination must be a mapping", hint);
    const Node* t = n.find("type");
    if (!t) n.fail("missing key 'type' in " + what);
    return t->asString(what + ".type");
}

DestinationConfig parseDestination(const Node& d, std::set<std::string>& names, const BuildContext& bctx,
                                   const ConnectorRegistry& registry) {
    std::string type = connectorType(d, "destination", {});
    const DestinationFactory* df = registry.destination(type);
    if (!df) failUnknownType(*d.find("type"), "destination", type, registry.destinationTypes());
    DestinationConfig dc;
    config::ConfigProblems problems;
    problems.attempt([&] { destinationCommon().readInto(dc, d, {"destination (" + type + ")", bctx.baseDir, {}, false}); });
    problems.attempt([&] { df->validate(d, bctx); });
    problems.finish();
    if (!names.insert(dc.name).second)
        d.find("name")->fail("duplicate destination name '" + dc.name + "'", "names are unique within a channel");
    dc.settings = d;
    dc.mark = d.mark;
    return dc;
}

}  // namespace

const config::MapBase& sourceCommonSettings() { return sourceCommon(); }
const config::MapBase& destinationCommonSettings() { return destinationCommon(); }

config::ReadContext connectorReadContext(const Node& conf, const std::string& section, const BuildContext& ctx) {
    const Node* type = conf.isMap() ? conf.find("type") : nullptr;
    std::string where = type && type->kind == Node::Kind::Scalar ? section + " (" + type->scalar + ")" : section;
    return {where, ctx.baseDir, {section == "source" ? &sourceCommonSettings() : &destinationCommonSettings()}};
}

ChannelConfig parseChannelFile(const std::string& file, const std::string& baseDir, const ConnectorRegistry& registry) {
    return parseChannel(config::loadYamlFile(file), file, baseDir, registry);
}

ChannelConfig parseChannel(const Node& root, const std::string& file, const std::string& baseDir,
                           const ConnectorRegistry& registry) {
    if (!root.isMap()) root.fail("a channel file must be a mapping", "start with 'channel: NAME'");
    // Each part is checked on its own, so that one pass reports every problem.
    config::ConfigProblems problems;
    ChannelConfig c;
    c.file = file;
    c.baseDir = baseDir;
    problems.attempt([&] { channelMap().readInto(c, root, {"the channel", baseDir}); });
    problems.attempt([&] {
        if (auto n = root.find("script"); n && !fs::is_regular_file(c.script))
            n->fail("script file not found: " + c.script, "paths are relative to " + baseDir);
    });
    for (const char* key : {"preprocessor", "filter", "transform", "postprocessor"})
        if (auto n = root.find(key)) c.functionMarks[key] = n->mark;
    bool needsScript = !c.functionMarks.empty();

    if (const Node* vars = root.find("vars")) problems.attempt([&] {
        if (!vars->isMap()) vars->fail("vars must be a mapping of names to values", "vars: { openmrs_url: http://... }");
        for (const auto& [name, value] : vars->map) c.vars[name] = value.asString("vars." + name);
    });

    // source
    BuildContext bctx{c.name, baseDir};
    const Node* srcNode = root.find("source");
    bool sourceOk = srcNode && problems.attempt([&] {
        const Node& src = *srcNode;
        c.sourceType = connectorType(src, "source", "e.g. { type: mllp, port: 6661 }");
        const SourceFactory* sf = registry.source(c.sourceType);
        if (!sf) failUnknownType(*src.find("type"), "source", c.sourceType, registry.sourceTypes());
        c.dataType = sf->defaultDataType();
        config::ConfigProblems parts;
        parts.attempt([&] { sourceCommon().readInto(c, src, {"source (" + c.sourceType + ")", baseDir, {}, false}); });
        parts.attempt([&] { sf->validate(src, bctx); });
        parts.finish();
        c.sourceSettings = src;
    });

    // destinations
    std::set<std::string> names;
    bool destinationsOk = false;
    if (const Node* dests = root.find("destinations")) destinationsOk = problems.attempt([&] {
        if (dests->kind != Node::Kind::List) dests->fail("destinations must be a list", "- { name: out, type: mllp, ... }");
        for (const Node& d : dests->list) problems.attempt([&] {
            c.destinations.push_back(parseDestination(d, names, bctx, registry));
            for (const char* key : {"filter", "transform", "response"}) needsScript = needsScript || d.find(key);
        });
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

std::string channelJsonSchema(const ConnectorRegistry& registry) {
    std::string sources, dests;
    for (const auto& t : registry.sourceTypes())
        sources += (sources.empty() ? "" : ",") +
                   config::jsonSchema({&sourceCommon(), &registry.source(t)->settings()}, {{"type", t}});
    for (const auto& t : registry.destinationTypes())
        dests += (dests.empty() ? "" : ",") +
                 config::jsonSchema({&destinationCommon(), &registry.destination(t)->settings()}, {{"type", t}});
    std::string top, required;
    for (const auto& f : channelMap().fields()) {
        std::string v = f.name == "source"         ? "{\"oneOf\":[" + sources + "]}"
                        : f.name == "destinations" ? "{\"type\":\"array\",\"items\":{\"oneOf\":[" + dests + "]}}"
                                                   : config::jsonSchema(f);
        top += (top.empty() ? "" : ",") + util::jsonString(f.name) + ":" + v;
        if (f.required) required += (required.empty() ? "" : ",") + util::jsonString(f.name);
    }
    return "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"title\":\"Junction channel\","
           "\"type\":\"object\",\"additionalProperties\":false,\"required\":[" + required + "],"
           "\"properties\":{" + top + "}}";
}

namespace {

std::string markdownBlock(const std::string& name, const std::string& text) {
    return "<!-- generated: " + name + " settings (junction schema --markdown) -->\n" + text +
           "<!-- end of generated " + name + " settings -->\n";
}

template <class Factory>
std::string connectorTables(const std::string& kind, const config::MapBase& common, const std::vector<std::string>& types,
                            const std::function<const Factory*(const std::string&)>& factory,
                            const std::function<std::string(const Factory&)>& note) {
    std::string out = "Every " + kind + " takes:\n\n" + config::markdownTable({&common});
    for (const auto& t : types) {
        const Factory& f = *factory(t);
        std::string table = config::markdownTable({&f.settings()});
        out += "\n**`" + t + "`** " + kind + note(f) + (table.empty() ? ": no settings of its own.\n" : ":\n\n" + table);
    }
    return out;
}

}  // namespace

std::string channelSettingsMarkdown(const ConnectorRegistry& registry) {
    std::string sources = connectorTables<SourceFactory>(
        "source", sourceCommon(), registry.sourceTypes(), [&](const std::string& t) { return registry.source(t); },
        [](const SourceFactory& f) {
            return f.defaultDataType() == "hl7v2" ? std::string() : " (data type `" + f.defaultDataType() + "`)";
        });
    std::string dests = connectorTables<DestinationFactory>(
        "destination", destinationCommon(), registry.destinationTypes(),
        [&](const std::string& t) { return registry.destination(t); }, [](const DestinationFactory&) { return std::string(); });
    return markdownBlock("channel", config::markdownTable({&channelMap()})) + "\n" + markdownBlock("source", sources) +
           "\n" + markdownBlock("destination", dests);
}

}  // namespace junction::core
