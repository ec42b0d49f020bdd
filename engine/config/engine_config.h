// The engine's own configuration (junction.yaml): store, channel folder, admin port.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace junction::config {

// A configuration error with its place: "file:line:column: message (hint)".
class ConfigError : public std::runtime_error {
public:
    ConfigError(std::string file, int line, int column, const std::string& message, std::string hint = {});
    // Several problems found in one pass: what() lists each on a line of its own;
    // the first one's position is the error's. One problem is returned as it is.
    static ConfigError several(const std::vector<ConfigError>& problems);
    const std::string& file() const { return file_; }
    int line() const { return line_; }
    int column() const { return column_; }
    const std::string& hint() const { return hint_; }

private:
    ConfigError(const ConfigError& first, const std::string& text);
    std::string file_;
    int line_, column_;
    std::string hint_;
};

// Runs each check of a pass, keeping the ConfigErrors they throw, so that one
// pass reports every problem: `attempt(f)` returns whether f passed; `finish()`
// throws ConfigError::several of what was kept.
class ConfigProblems {
public:
    template <class F>
    bool attempt(F&& check) {
        try {
            check();
            return true;
        } catch (const ConfigError& e) {
            // A value checked twice (by type, then by its use) is told once.
            bool known = false;
            for (const auto& p : problems_)
                known = known || (e.line() > 0 ? p.line() == e.line() && p.column() == e.column() && p.file() == e.file()
                                                : std::string_view(p.what()) == e.what());
            if (!known) problems_.push_back(e);
            return false;
        }
    }
    bool empty() const { return problems_.empty(); }
    void finish() const {
        if (!problems_.empty()) throw ConfigError::several(problems_);
    }

private:
    std::vector<ConfigError> problems_;
};

struct StoreConfig {
    std::string type = "sqlite";  // sqlite | postgres
    std::string path;             // sqlite: database file (absolute after loading)
    std::string url;              // postgres: postgresql://user@host/db
    std::uint64_t maxSize = 0;    // bytes the store's files may take (0 = no bound)
    std::uint64_t minFree = 0;    // bytes to leave free on its filesystem (0 = no bound)
    // full: every group commit is flushed to disk (survives power loss);
    // normal: committed to the OS, flushed at checkpoints (survives a crash of
    // Junction, not of the machine). See docs/channels.md.
    std::string sync = "full";
    // Text index of the raw content kept (searches by text); off: such
    // searches read the content of every candidate message instead.
    bool textIndex = true;
};

struct AdminConfig {
    int port = 8080;  // 0: no admin API
    std::string bind = "127.0.0.1";
    struct Tls {
        std::string cert, key;  // PEM files (absolute); both set: HTTPS
    } tls;
    std::chrono::milliseconds sessionTimeout{std::chrono::hours(8)};  // a console login ends after this idle time
};

// An Orthanc server named in junction.yaml (`orthanc: { NAME: { url, ... } }`).
struct OrthancServerConfig {
    std::string name;
    std::string url;  // http(s)://host:port
    std::string username, password;
    std::chrono::milliseconds timeout{30000};
    struct Tls {
        std::string ca;  // PEM file of the CAs to trust (absolute; "" = the system's)
        bool verify = true;
    } tls;
};

// `log:`: where the engine's lines go, from which level, in which format.
struct LogConfig {
    std::string file;            // absolute; "" = stdout and stderr
    std::string level = "info";  // error | warn | info | debug
    std::string format = "text"; // text | json
};

// `events:`: the event log in the store's database.
struct EventsConfig {
    std::chrono::milliseconds keep{std::chrono::hours(24 * 90)};  // events older than this are pruned
};

// A webhook an alert calls when it fires and when it clears.
struct AlertWebhookConfig {
    std::string url;  // http(s)://...
    std::vector<std::pair<std::string, std::string>> headers;
    std::chrono::milliseconds timeout{5000};
};

// One rule of `alerts:`.
struct AlertRuleConfig {
    std::string name;
    std::string when;         // errors | queue_depth | channel_stopped | destination_retrying | no_messages
    std::string channel;      // "" = every channel (not for no_messages)
    std::string destination;  // "" = every destination of the channel(s)
    long long over = 0;       // errors, queue_depth: more than this
    std::chrono::milliseconds window{std::chrono::minutes(5)};  // errors: counted over; no_messages: quiet for
    std::chrono::milliseconds forTime{0};  // the condition holds this long before the alert fires
    bool logAction = false;
    std::vector<AlertWebhookConfig> webhooks;
    std::string file;
    int line = 0, column = 0;
    // The rule in words ("errors over 5 in 5m on channel ris-orders"), as the admin API shows it.
    std::string text() const;
};

struct EngineConfig {
    std::string file;        // the junction.yaml read, empty when built-in defaults are used
    std::string baseDir;     // relative paths resolve against this (absolute)
    StoreConfig store;
    std::string channelsDir; // absolute
    AdminConfig admin;
    std::vector<OrthancServerConfig> orthanc;  // in file order
    LogConfig log;
    EventsConfig events;
    std::vector<AlertRuleConfig> alerts;  // in file order
};

// Load `path`, or ./junction.yaml when it exists, else the built-in defaults
// (store var/junction.db, channels channels/, admin port 8080). Unknown keys and
// wrong types throw ConfigError with file:line.
EngineConfig loadEngineConfig(const std::optional<std::string>& path);

// The channel files (*.yaml, *.yml) in the channel folder, sorted by name.
std::vector<std::string> listChannelFiles(const EngineConfig& config);

// Reads a channel file far enough to get its `channel:` name; throws ConfigError
// for YAML syntax errors or a missing/invalid name.
std::string readChannelName(const std::string& file);

}  // namespace junction::config
