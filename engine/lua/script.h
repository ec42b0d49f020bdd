// Sandboxed Lua scripts: one ScriptRuntime (one lua_State) per channel
// worker. No Lua types cross this header.
//
// A channel's script file defines functions (filter, transform, ...); the
// engine calls them with the message of the moment through an Invocation and
// reads back what the script decided (routes, filter, replaced content, logs).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/hl7/message.h"

namespace junction::store {
class WorklistStore;
class KeyValueStore;
}
namespace junction::orthanc {
class Servers;
}

namespace junction::lua {

enum class DataType { Hl7v2, Json, Xml, Raw };
std::optional<DataType> parseDataType(std::string_view s);  // "hl7v2" "json" "xml" "raw"
const char* toString(DataType t);
// Why `text` cannot be a message of data type `type`: JSON that json.decode
// refuses, XML that xml.parse refuses (the error with its line and column).
// "" when it can, and for hl7v2 and raw (the engine parses HL7 itself).
std::string payloadError(DataType type, std::string_view text);

// The message content a script sees. For Hl7v2 the script gets `msg` as an
// HL7 message object over `hl7` (when `hl7` is empty, `text` is parsed for the
// call); for Json a table decoded from `text`; for Xml a table tree of the
// document; for Raw the string. After the call, changes are written back here
// (`text` re-encoded for Json/Xml, `hl7` edited in place). A replacement
// returned by the script may change `type` (see ScriptRuntime::call).
struct Payload {
    DataType type = DataType::Hl7v2;
    std::optional<hl7::Message> hl7;
    std::string text;

    std::string serialize() const;  // hl7 → CR-separated text, else text
};

// Key/value maps shared between workers, safe for concurrent use. Values are
// Lua scalars or tables (stored as a copy). One instance engine-wide for
// maps.global, one per channel for maps.channel.
class SharedMap {
public:
    SharedMap();
    ~SharedMap();
    SharedMap(const SharedMap&) = delete;
    SharedMap& operator=(const SharedMap&) = delete;
    // String access for the engine and tests; tables come back as JSON text.
    std::optional<std::string> getString(const std::string& key) const;
    void setString(const std::string& key, const std::string& value);
    std::size_t size() const;
    struct Impl;
    std::unique_ptr<Impl> impl;
};

struct LogLine {
    enum Level { Info, Warn, Error } level = Info;
    std::string text;
    std::string where;  // "transforms/x.lua:12"
    std::string stage;  // set by the engine: "source", "filter", "transform", "destination:<name>"
};

// One call's inputs and the script's decisions.
struct Invocation {
    std::string channel;
    std::string destination;       // set for destination filter/transformer and response scripts
    Payload* message = nullptr;    // required
    std::string response;          // response script: the destination's response
    std::string responseStatus;    // response script: "SENT" or "ERROR"
    std::shared_ptr<SharedMap> channelMap, globalMap;  // required
    // maps.response: per message, filled by scripts and the engine (destination
    // name → response text); survives across the calls of one message.
    std::shared_ptr<SharedMap> responseMap;
    // The engine's modality worklist for the worklist module (null: its
    // functions raise an error).
    store::WorklistStore* worklist = nullptr;
    // The Orthanc servers of junction.yaml for the orthanc module (null or
    // empty: its functions raise an error).
    orthanc::Servers* orthanc = nullptr;
    // The durable key-value table for the store module (null: its functions
    // raise an error).
    store::KeyValueStore* keyValues = nullptr;
    // The channel's `vars:` for the vars table (null: none).
    const std::map<std::string, std::string>* vars = nullptr;

    // Decisions made by the script.
    bool routed = false;                  // route(...) was called
    std::vector<std::string> routes;      // destinations chosen by route(...)
    bool filtered = false;                // filter(reason) was called, or a filter function returned false
    std::string filterReason;             // filter(reason), or a filter's `return false, reason`
    std::optional<std::string> ack;       // ack(...) / a response script's returned ACK text
    std::vector<LogLine> logs;
};

struct CallResult {
    bool ok = true;
    std::string error;        // "transforms/orders.lua:12: attempt to index a nil value"
    bool returnedFalse = false;  // the function returned false (a filter rejecting)
    bool interrupted = false;    // the call was stopped by ScriptRuntime::interrupt()
};

// What a script may use. A call (and the load of a script) that exceeds the
// instruction budget or the time limit fails with an error naming the limit,
// which pcall cannot catch; the runtime stays usable for the next call.
struct Limits {
    std::uint64_t instructions = 50'000'000;  // per call
    std::size_t memoryBytes = 64u << 20;      // per runtime (lua_State)
    // Wall-clock time per call, checked in Lua code and inside the library
    // functions that can loop long (pattern matching, table.insert/remove/
    // move/concat); 0: none.
    std::chrono::milliseconds time{5000};
    // Steps of one pattern-matching call (string.find/match/gsub, one step of a
    // string.gmatch iterator); past it the call fails with "pattern too
    // complex". 0: no step limit (the time limit still applies).
    std::uint64_t patternSteps = 100'000'000;
};

class ScriptRuntime {
public:
    // Loads and runs `scriptPath` in a fresh sandbox. Returns nullptr and sets
    // *error ("file:line: message") when the script cannot be loaded or fails.
    static std::unique_ptr<ScriptRuntime> load(const std::string& scriptPath, const Limits& limits,
                                               std::string* error);
    // Same, from source text (`chunkName` shows in errors).
    static std::unique_ptr<ScriptRuntime> loadString(const std::string& source, const std::string& chunkName,
                                                     const Limits& limits, std::string* error);
    ~ScriptRuntime();

    // True if the script defines a global function `name`.
    bool hasFunction(std::string_view name) const;
    // Calls the global function `name` with the message (and, for response
    // scripts — when `response` or `responseStatus` is set — the response text
    // and status as 2nd/3rd arguments). If it returns a value other than
    // nil/true/false, that value replaces the message:
    //   - an HL7 message object: the payload becomes that Hl7v2 message;
    //   - a string: for Hl7v2, text starting with "MSH" is parsed (an error if it
    //     is not valid HL7) and any other text makes the payload Raw; for the
    //     other types it is the new text;
    //   - a table: encoded with xml.encode for Xml, else with json.encode and
    //     the payload becomes Json (e.g. HL7 → FHIR JSON);
    //   - anything else (an HL7 segment/field node, a number, ...) is an error.
    // The function is looked up once per name and cached (a registry ref).
    // Not thread-safe: one runtime is used by one thread at a time.
    CallResult call(std::string_view name, Invocation& invocation);
    // Memory in use by the Lua state (bytes).
    std::size_t memoryInUse() const;
    // Thread-safe, for a runtime about to be discarded (a stop that does not
    // wait for scripts): the call in progress fails at its next check (within
    // milliseconds, inside pattern matching too) with "script interrupted",
    // and so does every later call; CallResult::interrupted tells them apart.
    void interrupt();

private:
    ScriptRuntime();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace junction::lua
