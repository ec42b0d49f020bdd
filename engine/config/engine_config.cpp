#include "engine/config/engine_config.h"

#include <algorithm>
#include <filesystem>

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

using T = Setting::Type;

std::string resolve(const std::string& base, const std::string& p) {
    fs::path path(p);
    return (path.is_absolute() ? path : fs::path(base) / path).lexically_normal().string();
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
    std::string storePath = "var/junction.db";
    std::string channels = "channels";
    if (!file.empty()) {
        cfg.file = file;
        Node root = loadYamlFile(file);
        if (root.isNull()) root.kind = Node::Kind::Map;
        checkSettings(root, {{T::Map, "store", false, "{ type, path, sync, max_size, min_free }"},
                             {T::String, "channels", false, "folder of channel files"},
                             {T::Map, "admin", false, "{ port, bind }"}},
                      "the engine config");
        if (const Node* s = root.find("store")) {
            checkSettings(*s, {{T::String, "type", false, "", 0, 0, {"sqlite", "postgres"}},
                               {T::String, "path", false, "SQLite database file"},
                               {T::String, "url", false, "postgresql://user@host/db"},
                               {T::String, "sync", false, "", 0, 0, {"full", "normal"}},
                               {T::Bytes, "max_size", false, "disk budget of the store's files, e.g. 10GB"},
                               {T::Bytes, "min_free", false, "free space to leave on the store's disk, e.g. 1GB"}},
                          "store");
            if (auto n = s->find("max_size")) cfg.store.maxSize = n->asBytes("store.max_size");
            if (auto n = s->find("min_free")) cfg.store.minFree = n->asBytes("store.min_free");
            if (auto n = s->find("type")) cfg.store.type = n->asString("store.type");
            if (auto n = s->find("path")) storePath = n->asString("store.path");
            if (auto n = s->find("url")) cfg.store.url = n->asString("store.url");
            if (auto n = s->find("sync")) cfg.store.sync = n->asString("store.sync");
            if (cfg.store.type == "postgres")
                s->find("type")->fail("store type 'postgres' is not available in this build",
                                      "use type: sqlite; a PostgreSQL store for several nodes is planned");
        }
        if (auto n = root.find("channels")) channels = n->asString("channels");
        if (const Node* a = root.find("admin")) {
            checkSettings(*a, {{T::Int, "port", false, "", 0, 65535}, {T::String, "bind", false, "address to bind"}},
                          "admin");
            if (auto n = a->find("port")) cfg.admin.port = static_cast<int>(n->asInt("admin.port", 0, 65535));
            if (auto n = a->find("bind")) cfg.admin.bind = n->asString("admin.bind");
        }
    }
    cfg.store.path = resolve(cfg.baseDir, storePath);
    cfg.channelsDir = resolve(cfg.baseDir, channels);
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
