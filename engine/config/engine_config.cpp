// junction.yaml read and checked with its config maps (engine_config.h): the
// store, channel folder and admin settings, paths resolved against the file's
// folder; ConfigError; the channel files of the folder and the name each one
// declares.
#include "engine/config/engine_config.h"

#include <algorithm>
#include <filesystem>

#include "engine/config/config_map.h"
#include "engine/config/node.h"

namespace fs = std::filesystem;

namespace junction::config {

ConfigError::ConfigError(std::string file, int line, int column, const std::string& message, std::string hint)
    : std::runtime_error(file + (line > 0 ? ":" + std::to_string(line) + ":" + std::to_string(column) : std::string()) +
                         ": " + message + (hint.empty() ? std::string() : " (" + hint + ")")),
      file_(std::move(file)),
      line_(line),
      column_(column),
      hint_(std::move(hint)) {}

ConfigError::ConfigError(const ConfigError& first, const std::string& text)
    : std::runtime_error(text), file_(first.file_), line_(first.line_), column_(first.column_), hint_(first.hint_) {}

ConfigError ConfigError::several(const std::vector<ConfigError>& problems) {
    if (problems.size() == 1) return problems.front();
    std::string text;
    for (const auto& p : problems) text += (text.empty() ? "" : "\n") + std::string(p.what());
    return ConfigError(problems.front(), text);
}

namespace {

std::string resolve(const std::string& base, const std::string& p) {
    fs::path path(p);
    return (path.is_absolute() ? path : fs::path(base) / path).lexically_normal().string();
}

const Map<StoreConfig>& storeMap() {
    static const Map<StoreConfig> map(
        {
            {"type", &StoreConfig::type, oneOf({"sqlite", "postgres"}), "the kind of store"},
            {"path", &StoreConfig::path, path, byDefault("var/junction.db"), "SQLite database file"},
            {"url", &StoreConfig::url, "postgresql://user@host/db"},
            {"sync", &StoreConfig::sync, oneOf({"full", "normal"}), "when commits are flushed to disk"},
            {"max_size", &StoreConfig::maxSize, bytes, byDefault("no bound"), "disk budget of the store's files, e.g. 10GB"},
            {"min_free", &StoreConfig::minFree, bytes, byDefault("no bound"),
             "free space to leave on the store's disk, e.g. 1GB"},
            {"text_index", &StoreConfig::textIndex, byDefault("true"),
             "index the raw content kept for searches by text (docs/operations.md)"},
        },
        [](StoreConfig& s, const Node& n) {
            if (s.type == "postgres")
                n.find("type")->fail("store type 'postgres' is not available in this build",
                                     "use type: sqlite; a PostgreSQL store for several nodes is planned");
        });
    return map;
}

const Map<AdminConfig::Tls>& adminTlsMap() {
    using Tls = AdminConfig::Tls;
    static const Map<Tls> map{
        {"cert", &Tls::cert, path, required, "PEM file of the server's certificate (and its chain)"},
        {"key", &Tls::key, path, required, "PEM file of its private key"},
    };
    return map;
}

const Map<AdminConfig>& adminMap() {
    static const Map<AdminConfig> map{
        {"port", &AdminConfig::port, range(0, 65535), "port of the admin API (0: none)"},
        {"bind", &AdminConfig::bind, "address to listen on"},
        {"tls", &AdminConfig::tls, adminTlsMap(), "{ cert, key }: HTTPS"},
        {"session_timeout", &AdminConfig::sessionTimeout, range(std::chrono::milliseconds(60000), std::chrono::hours(24 * 30)),
         "idle time after which a console login ends (default 8h)"},
    };
    return map;
}

const Map<OrthancServerConfig::Tls>& orthancTlsMap() {
    using Tls = OrthancServerConfig::Tls;
    static const Map<Tls> map{
        {"ca", &Tls::ca, path, byDefault("the system's CAs"), "PEM file of the CAs to trust"},
        {"verify", &Tls::verify, "check the server's certificate and name"},
    };
    return map;
}

// One server of the `orthanc:` section.
const Map<OrthancServerConfig>& orthancServerMap() {
    using O = OrthancServerConfig;
    static const Map<O> map(
        {
            {"url", &O::url, required, "http(s)://host:port of the server's REST API"},
            {"username", &O::username, "a user of the server's RegisteredUsers"},
            {"password", &O::password, "that user's password"},
            {"timeout", &O::timeout, range(std::chrono::milliseconds(100), std::chrono::hours(1)), "per request"},
            {"tls", &O::tls, orthancTlsMap(), "{ ca, verify }"},
        },
        [](O& o, const Node& n) {
            if (o.url.rfind("http://", 0) != 0 && o.url.rfind("https://", 0) != 0)
                n.find("url")->fail("url: '" + o.url + "' is not an http:// or https:// URL", "e.g. url: http://127.0.0.1:8042");
            if (o.username.empty() != o.password.empty()) n.fail("username and password go together");
        });
    return map;
}

const Map<LogConfig>& logMap() {
    static const Map<LogConfig> map{
        {"file", &LogConfig::file, path, byDefault("stdout and stderr"),
         "file the log is appended to (reopened on SIGUSR1)"},
        {"level", &LogConfig::level, oneOf({"error", "warn", "info", "debug"}), "the least level written"},
        {"format", &LogConfig::format, oneOf({"text", "json"}), "text lines, or one JSON object per line"},
    };
    return map;
}

const Map<EventsConfig>& eventsMap() {
    static const Map<EventsConfig> map{
        {"keep", &EventsConfig::keep, range(std::chrono::hours(1), std::chrono::hours(24 * 3650)),
         "events older than this are pruned"},
    };
    return map;
}

const Map<AlertWebhookConfig>& alertWebhookMap() {
    using W = AlertWebhookConfig;
    static const Map<W> map(
        {
            {"url", &W::url, required, "http(s):// URL the alert's JSON is POSTed to"},
            {"headers", &W::headers, "extra request headers, e.g. { Authorization: Bearer ... }"},
            {"timeout", &W::timeout, range(std::chrono::milliseconds(100), std::chrono::minutes(1)), "per request"},
        },
        [](W& w, const Node& n) {
            if (w.url.rfind("http://", 0) != 0 && w.url.rfind("https://", 0) != 0)
                n.find("url")->fail("url: '" + w.url + "' is not an http:// or https:// URL",
                                    "e.g. url: https://hooks.example.org/junction");
        });
    return map;
}

const Map<AlertRuleConfig>& alertRuleMap() {
    using A = AlertRuleConfig;
    static const Map<A> map(
        {
            {"name", &A::name, required, "names the alert in logs, events and the API"},
            {"when", &A::when, required,
             oneOf({"errors", "queue_depth", "channel_stopped", "destination_retrying", "no_messages"}),
             "the condition"},
            {"channel", &A::channel, byDefault("every channel"), "the channel watched (required for no_messages)"},
            {"destination", &A::destination, byDefault("every destination"),
             "the destination watched (queue_depth, destination_retrying, errors)"},
            {"over", &A::over, range(0, 1000000000), "errors, queue_depth: fires above this"},
            {"window", &A::window, range(std::chrono::seconds(1), std::chrono::hours(24 * 30)),
             "errors: counted over this; no_messages: no message for this long"},
            {"for", &A::forTime, range(std::chrono::seconds(1), std::chrono::hours(24 * 30)).orZero("at once"),
             "the condition holds this long before the alert fires"},
            {"actions", Kind::List, "log, and/or { webhook: { url, headers, timeout } }"},
        },
        [](A& a, const Node& n) {
            if (a.when == "no_messages" && a.channel.empty())
                n.fail("alert '" + a.name + "': no_messages needs a channel", "add channel: NAME");
            if (!a.destination.empty() && (a.when == "channel_stopped" || a.when == "no_messages"))
                n.find("destination")->fail("alert '" + a.name + "': " + a.when + " takes no destination");
            if (!a.destination.empty() && a.channel.empty())
                n.find("destination")->fail("alert '" + a.name + "': a destination is named with its channel",
                                            "add channel: NAME");
            if (n.find("over") && a.when != "errors" && a.when != "queue_depth")
                n.find("over")->fail("alert '" + a.name + "': " + a.when + " takes no 'over'");
        });
    return map;
}

const Map<EngineConfig>& engineMap() {
    static const Map<EngineConfig> map{
        {"store", &EngineConfig::store, storeMap(), "{ type, path, sync, max_size, min_free, text_index }"},
        {"channels", &EngineConfig::channelsDir, path, byDefault("channels"), "folder of channel files"},
        {"admin", &EngineConfig::admin, adminMap(), "{ port, bind, tls, session_timeout }"},
        {"orthanc", Kind::Map, "Orthanc servers by name: { main: { url, username, password, timeout, tls } }"},
        {"log", &EngineConfig::log, logMap(), "{ file, level, format }"},
        {"events", &EngineConfig::events, eventsMap(), "{ keep }"},
        {"alerts", Kind::List, "alert rules: [{ name, when, channel, destination, over, window, for, actions }]"},
    };
    return map;
}

// The `orthanc:` section: servers by name, each read with its map.
std::vector<OrthancServerConfig> readOrthancServers(const Node& root, const std::string& baseDir) {
    std::vector<OrthancServerConfig> out;
    const Node* section = root.find("orthanc");
    if (!section || section->isNull()) return out;
    if (!section->isMap())
        section->fail("orthanc must be a mapping of servers by name", "orthanc: { main: { url: http://127.0.0.1:8042 } }");
    ConfigProblems problems;
    for (const auto& [name, n] : section->map) {
        problems.attempt([&] {
            OrthancServerConfig o = orthancServerMap().read(n, {"orthanc." + name, baseDir});
            o.name = name;
            out.push_back(std::move(o));
        });
    }
    problems.finish();
    return out;
}

// The actions of a rule: `log`, or { webhook: { url, headers, timeout } }.
void readAlertActions(AlertRuleConfig& rule, const Node& actions, const std::string& baseDir) {
    const char* hint = "actions: [log, { webhook: { url: https://hooks.example.org/junction } }]";
    if (actions.kind != Node::Kind::List) actions.fail("actions must be a list", hint);
    ConfigProblems problems;
    for (const Node& a : actions.list) {
        problems.attempt([&] {
            if (a.kind == Node::Kind::Scalar) {
                if (a.scalar != "log") a.fail("unknown action '" + a.scalar + "'", hint);
                rule.logAction = true;
            } else if (a.isMap() && a.map.size() == 1 && a.map.front().first == "webhook") {
                rule.webhooks.push_back(alertWebhookMap().read(a.map.front().second, {"webhook", baseDir}));
            } else {
                a.fail("an action is `log` or { webhook: { url } }", hint);
            }
        });
    }
    problems.finish();
}

// The `alerts:` section: a list of rules, each read with its map.
std::vector<AlertRuleConfig> readAlerts(const Node& root, const std::string& baseDir) {
    std::vector<AlertRuleConfig> out;
    const Node* section = root.find("alerts");
    if (!section || section->isNull()) return out;
    if (section->kind != Node::Kind::List)
        section->fail("alerts must be a list of rules", "alerts: [{ name: ris-down, when: destination_retrying }]");
    ConfigProblems problems;
    for (const Node& n : section->list) {
        problems.attempt([&] {
            AlertRuleConfig a = alertRuleMap().read(n, {"alert", baseDir});
            if (const Node* actions = n.find("actions")) readAlertActions(a, *actions, baseDir);
            else a.logAction = true;
            for (const auto& other : out)
                if (other.name == a.name) n.find("name")->fail("alert name '" + a.name + "' is used twice");
            a.file = n.mark.file;
            a.line = n.mark.line;
            a.column = n.mark.column;
            out.push_back(std::move(a));
        });
    }
    problems.finish();
    return out;
}

}  // namespace

std::string AlertRuleConfig::text() const {
    std::string t = when;
    if (when == "errors") t += " over " + std::to_string(over) + " in " + detail::durationText(window);
    else if (when == "queue_depth") t += " over " + std::to_string(over);
    else if (when == "no_messages") t += " for " + detail::durationText(window);
    if (!channel.empty()) t += " on channel " + channel;
    if (!destination.empty()) t += " destination " + destination;
    if (forTime.count() > 0) t += " for " + detail::durationText(forTime);
    return t;
}

EngineConfig loadEngineConfig(const std::optional<std::string>& path) {
    EngineConfig cfg;
    std::string file;
    if (path) {
        file = *path;
        if (!fs::exists(file)) throw ConfigError(file, 0, 0, "config file not found");
    } else if (fs::exists("junction.yaml")) {
        file = "junction.yaml";
    }
    cfg.baseDir = file.empty() ? fs::current_path().string() : fs::absolute(file).parent_path().string();
    if (!file.empty()) {
        cfg.file = file;
        Node root = loadYamlFile(file);
        if (root.isNull()) root.kind = Node::Kind::Map;
        engineMap().readInto(cfg, root, {"the engine config", cfg.baseDir});
        cfg.orthanc = readOrthancServers(root, cfg.baseDir);
        cfg.alerts = readAlerts(root, cfg.baseDir);
    }
    if (cfg.store.path.empty()) cfg.store.path = resolve(cfg.baseDir, "var/junction.db");
    if (cfg.channelsDir.empty()) cfg.channelsDir = resolve(cfg.baseDir, "channels");
    return cfg;
}

std::vector<std::string> listChannelFiles(const EngineConfig& config) {
    std::vector<std::string> out;
    std::error_code ec;
    if (!fs::is_directory(config.channelsDir, ec)) return out;
    for (const auto& e : fs::directory_iterator(config.channelsDir, ec)) {
        auto ext = e.path().extension().string();
        if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml")) out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string readChannelName(const std::string& file) {
    Node root = loadYamlFile(file);
    if (!root.isMap()) root.fail("a channel file must be a mapping", "start with 'channel: NAME'");
    const Node* name = root.find("channel");
    if (!name) root.fail("missing key 'channel'", "every channel file names its channel");
    return name->asString("channel");
}

}  // namespace junction::config
