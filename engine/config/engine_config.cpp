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

const Map<EngineConfig>& engineMap() {
    static const Map<EngineConfig> map{
        {"store", &EngineConfig::store, storeMap(), "{ type, path, sync, max_size, min_free, text_index }"},
        {"channels", &EngineConfig::channelsDir, path, byDefault("channels"), "folder of channel files"},
        {"admin", &EngineConfig::admin, adminMap(), "{ port, bind, tls, session_timeout }"},
        {"orthanc", Kind::Map, "Orthanc servers by name: { main: { url, username, password, timeout, tls } }"},
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

}  // namespace

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
