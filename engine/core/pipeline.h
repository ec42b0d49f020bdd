// The scripted part of a channel, without threads or I/O: preprocessor →
// filter → transformer → route → per-destination filter → transformer, and
// the response script. Used by the channel workers and by `junction test`.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/channel_config.h"
#include "engine/lua/script.h"
#include "engine/store/message_store.h"
#include "engine/store/worklist_store.h"

namespace junction::core {

struct DestinationOutcome {
    std::string name;
    enum class Kind { Queued, Filtered, NotRouted, Error } kind = Kind::Queued;
    std::string encoded;  // what will be sent (Queued)
    std::string reason;   // filter reason or script error
};

struct ProcessOutcome {
    store::Status status = store::Status::Transformed;  // Transformed, Filtered or Error
    std::string error;                                  // script error with file:line
    std::string filterReason;
    std::string errorStage;                             // where it was filtered or failed: "source", "filter", "transform"
    std::string transformed;                            // the message after the channel transformer (keepTransformed)
    std::vector<DestinationOutcome> destinations;       // one per configured destination
    std::vector<lua::LogLine> logs;
    std::optional<std::string> ack;                     // set by a script through ack(...)
    bool routed = false;
    std::vector<std::string> routes;
    // A script call was stopped by ScriptRuntime::interrupt() (the channel is
    // stopping): the message was not processed and must not be recorded as such.
    bool interrupted = false;
};

// Parses raw input into a payload of the channel's data type. For hl7v2 a parse
// failure returns nullopt with *error set (the caller stores the message as ERROR).
std::optional<lua::Payload> makePayload(const std::string& dataType, std::string_view raw, std::string* error,
                                        std::size_t maxBytes = 0);
// Search columns of an HL7 message (type, control id, PID-3.1, accession).
store::Metadata metadataOf(const lua::Payload& payload);

// The engine's services a script call is given (the Lua worklist, orthanc and
// store modules); each null where there is none (a dry run).
struct ScriptServices {
    store::WorklistStore* worklist = nullptr;
    orthanc::Servers* orthanc = nullptr;
    store::KeyValueStore* keyValues = nullptr;
};

class Pipeline {
public:
    Pipeline(const ChannelConfig& config, std::shared_ptr<lua::SharedMap> channelMap,
             std::shared_ptr<lua::SharedMap> globalMap, ScriptServices services = {});

    // Runs the channel's scripts on `message` (edited in place) with `runtime`
    // (null when the channel has no script). The transformed message is
    // serialized into the outcome only when `keepTransformed` asks for it (the
    // development storage mode) or a destination without scripts sends it.
    ProcessOutcome process(lua::Payload& message, lua::ScriptRuntime* runtime,
                           const std::shared_ptr<lua::SharedMap>& responseMap, bool keepTransformed = false) const;

    // Runs a destination's response script (if any) on its peer's response.
    // Returns the ACK the script produced, and appends script logs/errors.
    struct ResponseOutcome {
        bool ok = true;
        std::string error;
        std::optional<std::string> ack;
        std::vector<lua::LogLine> logs;
    };
    ResponseOutcome response(const DestinationConfig& destination, lua::Payload& message, const std::string& response,
                             const std::string& status, lua::ScriptRuntime* runtime,
                             const std::shared_ptr<lua::SharedMap>& responseMap) const;

    // Runs the postprocessor (if any) once all destinations were handed their message.
    ResponseOutcome postprocess(lua::Payload& message, lua::ScriptRuntime* runtime,
                                const std::shared_ptr<lua::SharedMap>& responseMap) const;

    const ChannelConfig& config() const { return config_; }

private:
    ResponseOutcome runScript(const std::string& function, lua::Invocation& inv, lua::ScriptRuntime* rt) const;
    lua::Invocation invocation(lua::Payload& message, const std::string& destination,
                               const std::shared_ptr<lua::SharedMap>& responseMap) const;
    const ChannelConfig& config_;
    std::shared_ptr<lua::SharedMap> channelMap_, globalMap_;
    ScriptServices services_;
};

}  // namespace junction::core
