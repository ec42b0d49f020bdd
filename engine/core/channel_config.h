// A channel file (YAML) parsed and checked: the pipeline's scripts, the source
// and destinations with their connector settings.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "engine/config/node.h"
#include "engine/store/message_store.h"

namespace junction::core {

enum class AckMode { AfterCommit, AfterDestinations, Script };

struct RetryPolicy {
    int attempts = 5;                                // total tries including the first
    std::chrono::milliseconds backoff{1000};         // first wait
    std::chrono::milliseconds maxBackoff{300000};    // cap
    double jitter = 0.2;                             // ± fraction of each wait
    bool onReject = false;  // AE/AR (Error) results retried instead of ending in ERROR
    // Delay before attempt number `attempt` (2 = first retry), with jitter from `random01`.
    std::chrono::milliseconds delay(int attempt, double random01) const;
};

struct DestinationConfig {
    std::string name;
    std::string type;
    bool enabled = true;
    std::string filter, transform, response;  // Lua function names (optional)
    RetryPolicy retry;
    std::size_t queueLimit = 0;  // 0 = the channel's
    // Deliveries sent at a time, each lane with its own connection and thread.
    // With more than one, order is kept only among messages with the same
    // `orderBy` value (an HL7 path such as PID-3.1, read from the message as it
    // left the channel's transformer); without it, messages spread by id.
    int threads = 1;
    std::string orderBy;
    config::Node settings;       // the whole destination map (type-specific keys included)
    config::Mark mark;
};

struct ChannelConfig {
    std::string name;
    std::string description;
    std::string file;      // the YAML file
    std::string baseDir;   // relative paths resolve here
    bool enabled = true;

    std::string sourceType;
    config::Node sourceSettings;  // the whole source map
    std::string dataType = "hl7v2";
    AckMode ack = AckMode::AfterCommit;
    std::string ackFrom;  // after_destinations: the destination whose response is the ACK

    std::string script;   // absolute path, empty when the channel has no script
    std::string preprocessor, filter, transform, postprocessor;
    std::map<std::string, config::Mark> functionMarks;  // where each of those four is named
    int workers = 1;
    store::StorageMode storage = store::StorageMode::Development;
    std::chrono::milliseconds pruneAfter{0};  // 0 = keep forever
    std::size_t queueLimit = 0;  // queued deliveries per destination before back-pressure (0 = no limit)
    std::vector<DestinationConfig> destinations;
    // `vars:` — named values for the channel's scripts (the Lua `vars` table):
    // URLs, accounts, codes that differ between sites.
    std::map<std::string, std::string> vars;
};

class ConnectorRegistry;

// Parses and checks one channel file: unknown keys, wrong types, unknown
// connector types (those of `connectors`) and their settings, duplicate
// destination names, missing script files. Lua functions are checked by the
// engine (it loads the script). Throws config::ConfigError with file:line.
ChannelConfig parseChannelFile(const std::string& file, const std::string& baseDir, const ConnectorRegistry& connectors);
ChannelConfig parseChannel(const config::Node& root, const std::string& file, const std::string& baseDir,
                           const ConnectorRegistry& connectors);

// The JSON Schema of channel files with the connector types of `connectors`
// (docs/channel.schema.json is generated from it).
std::string channelJsonSchema(const ConnectorRegistry& connectors);
// The settings tables of docs/channels.md: blocks (channel, sources,
// destinations), each between its two marker comments, generated from the
// same declarations as the schema and the reading.
std::string channelSettingsMarkdown(const ConnectorRegistry& connectors);

}  // namespace junction::core
