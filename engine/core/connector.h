// Connectors: sources bring messages into a channel, destinations send them
// out. Each type has a factory registered under its name in a ConnectorRegistry
// (engine/core/registry.h; engine/app registers the built-in ones); a factory
// declares its settings once, in a config map (checked with file:line:column,
// the same read at validation and at creation), and builds runtime objects from
// the filled struct and a BuildContext: the channel's facts and a few narrow
// engine services, never the engine itself. Destinations return Ok / Retry /
// Error; the engine owns retries, backoff and queues, so no connector writes
// its own retry loop.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/config/config_map.h"
#include "engine/config/node.h"

namespace junction::store {
class WorklistStore;
}
namespace junction::orthanc {
class Servers;
}

namespace junction::core {

// ---------------------------------------------------------------- sources

struct Inbound {
    std::string raw;     // the received bytes (one message)
    std::string origin;  // e.g. "mllp 127.0.0.1:53422", "file /in/a.hl7"
    std::string error{};  // set when the source could not read what it received: kept as ERROR, not processed
    // A polling source's position once this message is read (the orthanc
    // source's change sequence number): stored with the message, in the same
    // write, and read back with SourceContext::sourceMark() when the source
    // starts again. Not stored when the message is not (accepted false).
    std::optional<std::string> mark{};
    // Runs once the message is stored, with its id, before it is processed
    // further or answered (a reprocess from the admin API waits for this, not
    // for the deliveries an `ack` mode may wait for). Must not block.
    std::function<void(long long id)> stored{};
    // A reprocess: the stored message this one copies, linked to it in the
    // same write as the message (MessageStore: NewMessage::copyOf). 0: none.
    long long copyOf = 0;
};

// What the engine answers a source about one submitted message.
struct SubmitResult {
    bool accepted = false;  // durably stored (true even for malformed input kept as ERROR)
    long long id = 0;       // message id in the store (0 when not stored)
    std::string response;   // bytes to send back (an ACK/NAK for HL7 sources; may be empty)
    std::string error;      // why it was not accepted / what was wrong with it
    bool malformed = false;  // the input could not be read as the channel's data type (kept as ERROR)
};

// The engine's side of a source: where it hands its messages.
class SourceContext {
public:
    virtual ~SourceContext() = default;
    // Hand one message to the channel. `done` runs once, when the message is
    // durable (ack: after_commit) or processed (ack: after_destinations/script),
    // possibly on another thread. It must not block.
    virtual void submit(Inbound message, std::function<void(SubmitResult)> done) = 0;
    // Convenience: submit and wait for the result.
    SubmitResult submitAndWait(Inbound message);
    // Back-pressure: blocks while the channel's queues are over their limit or
    // the channel is paused; returns false when the channel is stopping.
    virtual bool waitUntilAccepting() = 0;
    // The same question without blocking, for a source that serves many senders
    // on one thread: Wait means ask again shortly.
    enum class Admission { Accept, Wait, Stop };
    virtual Admission admission() { return waitUntilAccepting() ? Admission::Accept : Admission::Stop; }
    virtual const std::string& channelName() const = 0;
    // Log a connector event (connection errors, framing errors ...).
    virtual void log(const std::string& level, const std::string& text) = 0;
    // What keeps the source from working now ("orthanc server 'main': wrong
    // username or password"), shown in the channel's state (ChannelInfo,
    // the admin API); "" once it works again.
    virtual void setProblem(const std::string& problem) {}
    // Records an event of the source's connections in the engine's event log
    // (never blocks): type connection.opened, connection.closed or
    // connection.refused; `text` names the peer ("mllp 127.0.0.1:6661:
    // connection from 127.0.0.1:53422").
    virtual void event(const std::string& type, const std::string& text) {}

    // Positions of a polling source (Inbound::mark), one per channel: the
    // latest durably stored, nullopt when none was (a new source).
    virtual std::optional<std::string> sourceMark() { return std::nullopt; }
    // Stores a position without a message (the source read past input it made
    // no message of), after the messages submitted before it; `done` as for
    // submit (accepted: durable).
    virtual void submitMark(std::string mark, std::function<void(SubmitResult)> done) {
        done(SubmitResult{false, 0, {}, "this channel keeps no source positions"});
    }
};

class Source {
public:
    virtual ~Source() = default;
    // Start listening / polling; throws std::runtime_error when it cannot (port in use ...).
    virtual void start(SourceContext& context) = 0;
    // Stop accepting; returns when no thread of the source runs any more.
    virtual void stop() = 0;
    virtual std::string describe() const = 0;  // "mllp :6661"
    // A listener (MLLP, DICOM, HTTP): it reports its connections as events
    // (SourceContext::event), and the channel shows how many are open.
    virtual bool listens() const { return false; }
    // Run now, on demand (an operator's "run now"): a source that works on a
    // schedule or polls starts its next run at once. Returns false when the
    // type has nothing to run on demand (a listener), or it is not running.
    virtual bool trigger() { return false; }
};

// ---------------------------------------------------------------- destinations

struct Outbound {
    long long messageId = 0;
    std::string channel;
    std::string destination;
    std::string content;  // the encoded message to send
    int attempt = 1;      // 1 for the first try
    // Values from the original message for templates (e.g. ${MSH-10}); filled lazily.
    std::function<std::string(const std::string& key)> lookup;
};

struct SendResult {
    enum class Kind { Ok, Retry, Error } kind = Kind::Ok;
    std::string response;  // what the peer answered (an ACK ...)
    std::string error;
    static SendResult ok(std::string response = {}) { return {Kind::Ok, std::move(response), {}}; }
    static SendResult retry(std::string error, std::string response = {}) {
        return {Kind::Retry, std::move(response), std::move(error)};
    }
    static SendResult fail(std::string error, std::string response = {}) {
        return {Kind::Error, std::move(response), std::move(error)};
    }
};

class Destination {
public:
    virtual ~Destination() = default;
    // Send one message; called from one delivery thread at a time.
    virtual SendResult send(const Outbound& message) = 0;
    // Pipelining: how many messages sendAll() may be given at once (1: none).
    virtual std::size_t window() const { return 1; }
    // Send several messages in order without waiting for one's response before
    // the next (only when window() > 1); one result per message, in order.
    virtual std::vector<SendResult> sendAll(const std::vector<const Outbound*>& messages) {
        std::vector<SendResult> out;
        for (const Outbound* m : messages) out.push_back(send(*m));
        return out;
    }
    // Release connections (called when the channel stops, after the last send).
    virtual void stop() {}
    // Called from another thread while send() may be running: make it return
    // soon (the engine keeps the message queued). Default: nothing to interrupt.
    virtual void abort() {}
    virtual std::string describe() const = 0;
};

// ---------------------------------------------------------------- what a factory is given

// In-process hand-off to another channel (the `channel` destination); the
// engine provides it.
class ChannelRouter {
public:
    virtual ~ChannelRouter() = default;
    // Hands `message` to the running channel named `channel`; `done` runs as for
    // SourceContext::submit. Returns false (and never runs `done`) when no
    // running channel has that name.
    virtual bool submitTo(const std::string& channel, Inbound message, std::function<void(SubmitResult)> done) = 0;
};

// What connectors that keep files of their own (the `dicom` source) follow of
// the engine's message store.
struct StoreFacts {
    std::string path;             // the database file (store.path)
    bool synchronousFull = true;  // store.sync: full: written files are flushed to disk
};

// What a factory may use to check settings and build a connector. The engine
// services are absent while a channel file is only checked (parseChannel,
// `junction test`): validate() must not need them, create() may.
struct BuildContext {
    std::string channel;
    std::string baseDir;  // relative paths resolve against this
    int workers = 1;      // the channel's `workers`: messages it may process at once
    std::string dataType = "hl7v2";            // the channel's `data_type`: how its source's messages are parsed
    store::WorklistStore* worklist = nullptr;  // the modality worklist (same database as the store)
    ChannelRouter* router = nullptr;           // hand-off to other channels
    std::optional<StoreFacts> store{};         // the message store's path and sync mode
    orthanc::Servers* orthanc = nullptr;       // the Orthanc servers named in junction.yaml
};

// The keys every source takes besides its type's (type, data_type, ack,
// ack_from), and every destination (name, type, enabled, retry ...): the
// channel reads them (channel_config.cpp), a factory's read lets them be.
const config::MapBase& sourceCommonSettings();
const config::MapBase& destinationCommonSettings();

// How a factory reads its part of a source or destination mapping: named
// "source (TYPE)" in messages, paths relative to the channel's base folder.
config::ReadContext connectorReadContext(const config::Node& conf, const std::string& section,
                                         const BuildContext& ctx);

class SourceFactory {
public:
    virtual ~SourceFactory() = default;
    // This type's settings, besides the common source keys.
    virtual const config::MapBase& settings() const = 0;
    // Reads and checks `conf` (the whole source mapping) as create() does:
    // every problem a ConfigError with file:line:column. parseChannel runs it,
    // so `junction validate` reports what a run would meet.
    virtual void validate(const config::Node& conf, const BuildContext& ctx) const = 0;
    virtual std::unique_ptr<Source> create(const config::Node& conf, const BuildContext& ctx) const = 0;
    virtual std::string defaultDataType() const { return "hl7v2"; }
    // TCP port the source listens on (for clash detection), 0 for none.
    virtual int listenPort(const config::Node& conf) const { return 0; }
};

class DestinationFactory {
public:
    virtual ~DestinationFactory() = default;
    virtual const config::MapBase& settings() const = 0;  // besides the common destination keys
    virtual void validate(const config::Node& conf, const BuildContext& ctx) const = 0;
    virtual std::unique_ptr<Destination> create(const config::Node& conf, const BuildContext& ctx) const = 0;
};

// A connector type (Factory: SourceFactory or DestinationFactory) whose
// settings fill the struct S with a config map: validate() and create() read
// alike, and build() gets the filled struct.
template <class Factory, class Product, class S>
class MappedFactory : public Factory {
public:
    explicit MappedFactory(const config::Map<S>& map) : map_(map) {}
    const config::MapBase& settings() const final { return map_; }
    void validate(const config::Node& conf, const BuildContext& ctx) const final { read(conf, ctx); }
    std::unique_ptr<Product> create(const config::Node& conf, const BuildContext& ctx) const final {
        return build(read(conf, ctx), ctx);
    }

protected:
    virtual std::unique_ptr<Product> build(S settings, const BuildContext& ctx) const = 0;
    S read(const config::Node& conf, const BuildContext& ctx) const {
        constexpr bool source = std::is_same_v<Factory, SourceFactory>;
        return map_.read(conf, connectorReadContext(conf, source ? "source" : "destination", ctx));
    }

private:
    const config::Map<S>& map_;
};

template <class S>
class MappedSourceFactory : public MappedFactory<SourceFactory, Source, S> {
public:
    using MappedFactory<SourceFactory, Source, S>::MappedFactory;
    int listenPort(const config::Node& conf) const final { return port(this->read(conf, BuildContext{})); }

protected:
    virtual int port(const S& settings) const { return 0; }
};

template <class S>
class MappedDestinationFactory : public MappedFactory<DestinationFactory, Destination, S> {
public:
    using MappedFactory<DestinationFactory, Destination, S>::MappedFactory;
};

}  // namespace junction::core
