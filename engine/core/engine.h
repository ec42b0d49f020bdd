// The engine: the store, the channels and their runtime control.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include "engine/config/engine_config.h"
#include "engine/core/alerts.h"
#include "engine/core/channel_config.h"
#include "engine/core/connector.h"
#include "engine/core/pipeline.h"
#include "engine/core/registry.h"
#include "engine/core/stats.h"
#include "engine/core/stats_recorder.h"
#include "engine/lua/script.h"
#include "engine/store/message_store.h"
#include "engine/orthanc/server.h"
#include "engine/store/event_store.h"
#include "engine/store/key_value_store.h"
#include "engine/store/worklist_store.h"

namespace junction::core {

class Channel;

enum class ChannelState { Stopped, Running, Paused, Failed };
const char* toString(ChannelState s);

struct DestinationInfo {
    std::string name, type;
    CountersSnapshot counters;
    Histogram::Snapshot latency;  // received → sent
    std::size_t queued = 0;       // deliveries waiting (in the store; after a restart, as read back)
    std::size_t held = 0;         // of those, held in memory (the head of the queue)
    std::string lastError;
    bool failing = false;  // in an outage: its last attempt failed
};

struct ChannelInfo {
    std::string name, description, file, sourceType;
    std::string script;  // the Lua script's path, "" when none
    bool enabled = true;
    ChannelState state = ChannelState::Stopped;
    std::string error;  // why it failed to start
    CountersSnapshot counters;
    Histogram::Snapshot latency;  // received → processed
    bool backPressure = false;    // the source is held because a queue is full
    std::string sourceProblem;    // what keeps the source from working now (SourceContext::setProblem)
    std::string sourceAddress;    // what the running source listens on or reads (Source::describe), "" when stopped
    std::optional<int> sourceConnections;  // a running listener's open connections
    std::vector<DestinationInfo> destinations;
};

struct LoadProblem {
    std::string file;
    std::string error;  // "file:line:col: message (hint)"
};

// What a re-read of the channel folder did (Engine::reloadChannels).
struct ReloadResult {
    std::vector<std::string> added, redeployed, removed;
    std::size_t unchanged = 0;
    std::vector<LoadProblem> problems;  // these files' running versions (if any) were kept
};

// What an operator's repair of a message did (Engine::reprocess, resend,
// deleteMessage): done, or why not (the admin API answers 404 or 409).
struct RepairResult {
    enum class Code { Done, NotFound, Conflict } code = Code::Done;
    std::string error;  // why not
    long long id = 0;   // reprocess: the new message
    static RepairResult notFound(std::string why) { return {Code::NotFound, std::move(why), 0}; }
    static RepairResult conflict(std::string why) { return {Code::Conflict, std::move(why), 0}; }
};

struct EngineOptions {
    config::EngineConfig config;
    store::StoreOptions store;
    lua::Limits limits;
    std::size_t maxMessageBytes = 64u << 20;
    // How long a worklist write waits for the database file (shared with the
    // message store) before it reports busy; a `worklist` destination then
    // retries later.
    int worklistBusyTimeoutMs = 10000;
};

// The engine is also the channel router its connectors are given (BuildContext).
class Engine : public ChannelRouter {
public:
    // `connectors` holds the connector types channels may use; it must outlive the engine.
    Engine(EngineOptions options, const ConnectorRegistry& connectors);
    ~Engine() override;
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Reads and checks every channel file of the config's channel folder (YAML,
    // connector settings, scripts and their functions, duplicate names, port
    // clashes). Valid channels are added (not started); problems are returned.
    std::vector<LoadProblem> loadChannels();
    // Checks a channel completely (including its Lua functions) without adding it.
    // Throws config::ConfigError.
    void check(const ChannelConfig& channel) const;
    // Adds a checked channel; throws config::ConfigError on problems.
    void addChannel(ChannelConfig channel);

    // Start every enabled channel (recovering unfinished messages first).
    void start();
    // Stop every channel (sources first, then drain the workers) and flush the store.
    // `progress`, when given, is told what the stop waits for next ("channel X", ...).
    void stop(const std::function<void(const std::string&)>& progress = {});

    bool startChannel(const std::string& name);
    bool stopChannel(const std::string& name);
    bool pauseChannel(const std::string& name);   // source held, queues keep draining
    bool resumeChannel(const std::string& name);
    // Runs a channel's source now (a schedule or a poll); false when the
    // channel is unknown, not running, or its source has nothing to run.
    bool triggerChannel(const std::string& name);
    // Re-read the channel's file and restart it with the new config; queued messages survive.
    // Throws config::ConfigError when the new file is invalid or cannot be deployed (a port
    // clash): the old version then keeps running. A disabled channel is not started.
    void redeployChannel(const std::string& name);
    // Re-reads the channel folder (SIGHUP): a channel whose file or script changed
    // is redeployed (queued messages survive), a new file's channel is added and,
    // once the engine has started, started; a channel whose file is gone is
    // stopped and removed. A file that fails validation changes nothing: the
    // channel it held keeps running, and the problem is reported.
    ReloadResult reloadChannels();

    std::vector<ChannelInfo> channels() const;
    std::optional<ChannelInfo> channel(const std::string& name) const;
    // The counters and histograms kept in the store (totals since a channel was
    // first counted, the last minute, hour and day, the minutes of a day).
    StatsRecorder& statsRecorder() { return *stats_; }

    // In-process hand-off to a channel (the `channel` destination type).
    // Returns false when no running channel has that name.
    bool submitTo(const std::string& channel, Inbound message, std::function<void(SubmitResult)> done) override;

    // Operators' repairs (engine_repairs.cpp).
    // Hands message `id`'s raw content (or `raw`, an edited one) to its channel
    // again as a new message, with the source text "reprocess of #ID by USER",
    // and links the new message to it. Returns once the new one is stored (its
    // id in `id`). Conflict when the channel is not running or the raw content
    // was not kept (and none is given).
    RepairResult reprocess(store::MessageId id, const std::optional<std::string>& raw, const std::string& user);
    // Queues message `id`'s finished delivery to `destination` again with its
    // kept encoded content, on the running channel's lanes. NotFound: no such
    // message, delivery or destination; Conflict: the content was not kept, the
    // delivery is queued already, or the channel is not running.
    RepairResult resend(store::MessageId id, const std::string& destination);
    // Deletes a message with its content and deliveries; Conflict while it is
    // Received or has a Queued delivery.
    RepairResult deleteMessage(store::MessageId id);

    // Drop finished messages older than each channel's `prune` age; returns how
    // many were removed. Runs at start and hourly while the engine runs.
    std::uint64_t pruneNow();

    store::MessageStore& store();
    // The event log (same database file); recordEvent() queues one event and never waits.
    store::EventStore& events() { return *events_; }
    void recordEvent(const std::string& type, const std::string& channel, const std::string& text,
                     const std::string& user = {}, const std::string& address = {});
    // The alert rules of junction.yaml and their state (empty without rules).
    std::vector<AlertStatus> alerts() const;
    // The modality worklist, in the same database file as the message store.
    store::WorklistStore& worklist();
    // The Orthanc servers of junction.yaml (scripts reach them through the orthanc module).
    orthanc::Servers& orthancServers() { return orthanc_; }
    // What a channel's scripts are given: the worklist, the Orthanc servers and
    // the durable key-value table (the Lua store module).
    ScriptServices scriptServices() { return {worklist_.get(), &orthanc_, keyValues_.get()}; }
    // Checks each Orthanc server's URL and credentials (GET /system) and logs
    // the outcome; one that fails is logged with what is wrong, not fatal.
    void checkOrthancServers();
    const EngineOptions& options() const { return options_; }
    std::shared_ptr<lua::SharedMap> globalMap() const { return globalMap_; }
    const ConnectorRegistry& connectors() const { return connectors_; }
    // What the factories of `channel`'s connectors are given: its facts and the
    // engine's services (worklist, router, store facts).
    BuildContext buildContext(const ChannelConfig& channel);

private:
    Channel* find(const std::string& name) const;
    // Replaces a running channel with a checked new version; on failure the old
    // one is put back (and restarted if it ran) and the error rethrown.
    void replaceChannel(const std::string& name, ChannelConfig fresh);
    // Starts a channel once the engine runs (or when its previous version ran), if enabled.
    void startIfWanted(Channel& ch, bool wasRunning = false);
    // Parses a channel file, with the fingerprint a reload compares.
    std::pair<ChannelConfig, std::string> readChannel(const std::string& file) const;
    EngineOptions options_;
    const ConnectorRegistry& connectors_;
    // Per channel loaded from the folder: its file's and script's text when it was
    // read, so that a reload redeploys only what changed.
    std::map<std::string, std::string> fingerprints_;
    std::unique_ptr<store::MessageStore> store_;
    std::unique_ptr<store::WorklistStore> worklist_;
    std::unique_ptr<store::KeyValueStore> keyValues_;
    std::unique_ptr<store::EventStore> events_;
    std::unique_ptr<AlertMonitor> alerts_;
    orthanc::Servers orthanc_;
    std::shared_ptr<lua::SharedMap> globalMap_;
    mutable std::recursive_mutex mutex_;
    std::map<std::string, std::shared_ptr<Channel>> channels_;  // shared: a hand-off in progress keeps its target alive
    bool started_ = false;
    std::thread pruner_;
    std::mutex prunerMutex_;
    std::condition_variable prunerCv_;
    bool prunerStop_ = false;
    // Last: stopped (its final write made) while the channels are still there.
    std::unique_ptr<StatsRecorder> stats_;
};

}  // namespace junction::core
