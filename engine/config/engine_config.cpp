#include "engine/config/engine_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>

namespace fs = std::filesystem;

namespace junction::config {

ConfigError::ConfigError(std::string file, int line, int column, const std::string& message, std::string hint)
    : std::runtime_error(file + (line > 0 ? ":" + std::to_string(line) + ":" + std::to_string(column) : std::string()) +
                         ": " + message + (hint.empty() ? std::string() : " (" + hint + ")")),
      file_(std::move(file)),
      line_(line),
      column_(column),
      hint_(std::move(hint)) {}

namespace {

[[noreturn]] void fail(const std::string& file, const YAML::Node& node, const std::string& msg,
                       const std::string& hint = {}) {
    auto mark = node.Mark();
    throw ConfigError(file, mark.line + 1, mark.column + 1, msg, hint);
}

void checkKeys(const std::string& file, const YAML::Node& map, const std::string& where,
               const std::vector<std::string>& allowed) {
    if (!map.IsMap()) fail(file, map, where + " must be a mapping");
    for (const auto& kv : map) {
        std::string key = kv.first.as<std::string>();
        if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
            std::string list;
            for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
            fail(file, kv.first, "unknown key '" + key + "' in " + where, "allowed: " + list);
        }
    }
}

std::string scalar(const std::string& file, const YAML::Node& n, const std::string& what) {
    if (!n.IsScalar()) fail(file, n, what + " must be a string");
    return n.as<std::string>();
}

int integer(const std::string& file, const YAML::Node& n, const std::string& what, int lo, int hi) {
    if (!n.IsScalar()) fail(file, n, what + " must be a number");
    int v;
    try {
        v = n.as<int>();
    } catch (const YAML::Exception&) {
        fail(file, n, what + " must be a number, got '" + n.as<std::string>() + "'");
    }
    if (v < lo || v > hi) fail(file, n, what + " must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    return v;
}

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
        YAML::Node root;
        try {
            root = YAML::LoadFile(file);
        } catch (const YAML::ParserException& e) {
            throw ConfigError(file, e.mark.line + 1, e.mark.column + 1, e.msg);
        } catch (const YAML::BadFile&) {
            throw ConfigError(file, 0, 0, "cannot read the config file");
        }
        if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
        checkKeys(file, root, "the engine config", {"store", "channels", "admin"});
        if (auto s = root["store"]) {
            checkKeys(file, s, "store", {"type", "path", "url", "sync"});
            if (s["type"]) cfg.store.type = scalar(file, s["type"], "store.type");
            if (cfg.store.type != "sqlite" && cfg.store.type != "postgres")
                fail(file, s["type"], "store.type must be sqlite or postgres", "got '" + cfg.store.type + "'");
            if (s["path"]) storePath = scalar(file, s["path"], "store.path");
            if (s["url"]) cfg.store.url = scalar(file, s["url"], "store.url");
            if (s["sync"]) cfg.store.sync = scalar(file, s["sync"], "store.sync");
            if (cfg.store.sync != "full" && cfg.store.sync != "normal")
                fail(file, s["sync"], "store.sync must be full or normal", "got '" + cfg.store.sync + "'");
            if (cfg.store.type == "postgres" && cfg.store.url.empty())
                fail(file, s, "store.url is required for a postgres store", "e.g. postgresql://junction@localhost/junction");
        }
        if (auto c = root["channels"]) channels = scalar(file, c, "channels");
        if (auto a = root["admin"]) {
            checkKeys(file, a, "admin", {"port", "bind"});
            if (a["port"]) cfg.admin.port = integer(file, a["port"], "admin.port", 0, 65535);
            if (a["bind"]) cfg.admin.bind = scalar(file, a["bind"], "admin.bind");
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
    YAML::Node root;
    try {
        root = YAML::LoadFile(file);
    } catch (const YAML::ParserException& e) {
        throw ConfigError(file, e.mark.line + 1, e.mark.column + 1, e.msg);
    } catch (const YAML::BadFile&) {
        throw ConfigError(file, 0, 0, "cannot read the channel file");
    }
    if (!root.IsMap()) throw ConfigError(file, 1, 1, "a channel file must be a mapping", "start with 'channel: NAME'");
    auto name = root["channel"];
    if (!name) throw ConfigError(file, 1, 1, "missing key 'channel'", "every channel file names its channel");
    return scalar(file, name, "channel");
}

}  // namespace junction::config
