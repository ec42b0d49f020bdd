// One running channel: its source, its workers (each with its own Lua state)
// and one delivery thread per destination with an in-memory queue backed by
// the store. Internal to engine/core.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/core/event_throttle.h"
#include "engine/core/engine.h"
#include "engine/core/pipeline.h"

namespace junction::core {

class Channel : public SourceContext {
public:
    Channel(ChannelConfig config, Engine& engine);
    ~Channel() override;

    // Recover unfinished messages, start workers, delivery threads and the
    // source. Throws std::runtime_error (state Failed) when the source cannot start.
    void start();
    void stop();
    void pause();
    void resume();
    // Asks the source to run now (Source::trigger); false when it has nothing
    // to run on demand or the channel is not running.
    bool trigger();
    ChannelState state() const { return state_.load(); }
    // An operator's resend: message `id`'s finished delivery to `destination`
    // is queued again in the store and handed to that destination's lanes with
    // `encoded` (its kept content). NotFound when the channel has no such
    // destination or the store no such delivery; Busy when it is queued already.
    // The channel must be running (or paused).
    store::RepairOutcome requeue(const std::string& destination, store::MessageId id, std::string encoded, bool only);
    ChannelInfo info() const;
    const ChannelConfig& config() const { return config_; }

    // SourceContext
    void submit(Inbound message, std::function<void(SubmitResult)> done) override;
    bool waitUntilAccepting() override;
    Admission admission() override;
    const std::string& channelName() const override { return config_.name; }
    void log(const std::string& level, const std::string& text) override;
    void setProblem(const std::string& problem) override;
    void event(const std::string& type, const std::string& text) override;
    std::optional<std::string> sourceMark() override;
    void submitMark(std::string mark, std::function<void(SubmitResult)> done) override;

private:
    using SteadyClock = std::chrono::steady_clock;

    // Completion of a source's submit that waits for processing (ack modes
    // after_destinations and script).
    struct PendingAck {
        std::function<void(SubmitResult)> done;
        std::optional<hl7::Message> original;  // to build ACKs from
        long long id = 0;
        std::mutex mutex;
        int remaining = 0;              // deliveries still to report (script mode)
        std::optional<std::string> ack; // set by scripts
        bool answered = false;
    };

    struct WorkItem {
        store::MessageId id = 0;
        std::optional<lua::Payload> payload;  // parsed at submit; empty after recovery
        std::string raw;                      // used when payload is empty
        SteadyClock::time_point received;
        std::shared_ptr<PendingAck> pending;
    };

    struct Delivery {
        store::MessageId id = 0;
        std::string encoded;
        int attempts = 0;
        SteadyClock::time_point notBefore;
        SteadyClock::time_point received;
        std::shared_ptr<PendingAck> pending;
        std::shared_ptr<lua::Payload> message;  // for the response script (may be null)
        std::shared_ptr<lua::SharedMap> responseMap;
        bool only = false;  // its message has no other delivery
        std::optional<std::string> scriptAck;  // from the response script, run once the delivery is finished
    };

    // One delivery thread with its own connection and queue; a destination has
    // `threads` of them (order is kept within a lane).
    struct Lane {
        std::unique_ptr<Destination> connector;
        std::unique_ptr<lua::ScriptRuntime> script;  // for the response script
        std::deque<Delivery> queue;
        std::mutex mutex;
        std::condition_variable cv;
        std::thread thread;
    };

    struct DestRuntime {
        DestinationConfig config;
        std::optional<hl7::Path> orderBy;
        std::vector<std::unique_ptr<Lane>> lanes;
        std::atomic<std::size_t> size{0};  // queued over all lanes
        Counters counters;
        Histogram latency;
        // The queue lives in the store; memory holds its head. Past kResident
        // held deliveries, new ones (those no sender waits on) stay in the store
        // only ("spilled"), and the lanes read them back a page at a time, in
        // message order, as they drain: memory and restart time do not grow with
        // a backlog. Guarded by spillMutex; `spilled` is also read without it.
        std::mutex spillMutex;
        std::atomic<bool> spilled{false};
        store::MessageId pagedThrough = 0;  // while spilled: every queued id above it is in the store only
        store::MessageId maxHeld = 0;       // the highest id held in memory
        store::MessageId maxDropped = 0;    // the highest id left to the store while spilled
        // Messages up to `recovered` were stored before this start: their queued
        // deliveries are counted in `size` as they are read back, unless all were
        // counted at recovery (`countedAtRecovery`, when a queue_limit needs it).
        store::MessageId recovered = 0;
        bool countedAtRecovery = false;
        std::set<store::MessageId> heldWhileSpilled;  // held (a sender waits) although above pagedThrough
        std::atomic<std::size_t> resident{0};         // held in memory over all lanes
        mutable std::mutex errorMutex;
        std::string lastError;
        // An outage, as the log tells it (guarded by errorMutex): its first
        // failure, a summary each minute while it lasts, and its end.
        struct Outage {
            bool on = false;
            SteadyClock::time_point since, lastSummary;
            std::uint64_t failures = 0, failuresSinceSummary = 0;
        } outage;
    };
    // Logs a destination's outage: called with each attempt's result.
    void noteAttempt(DestRuntime& dest, bool ok, const std::string& error);

    // What processing decided for one message, before or after it is stored.
    struct Queued {
        DestRuntime* dest = nullptr;
        std::string encoded;
        std::size_t key = 0;  // hash of the order_by value (0: spread by message id)
    };
    struct Decision {
        store::ProcessedMessage pm;  // id filled in by whoever stores it
        store::Status status = store::Status::Transformed;
        std::string error, filterReason;
        std::optional<std::string> ack;
        std::vector<Queued> queued;
        bool onlyDelivery = false;  // one delivery row in all, the queued one
        std::shared_ptr<lua::Payload> message;                     // for response scripts
        std::shared_ptr<lua::SharedMap> responseMap;
        SteadyClock::time_point received;
        bool interrupted = false;  // a script was cut short by stop(): nothing decided
    };
    // Holds one processing slot (and its Lua runtime, null without a script).
    class Lease {
    public:
        explicit Lease(Channel& c);
        ~Lease();
        lua::ScriptRuntime* runtime() const { return runtime_; }

    private:
        Channel& channel_;
        lua::ScriptRuntime* runtime_ = nullptr;
    };

    void workerLoop(std::size_t index);
    void process(WorkItem& item);
    Decision decide(lua::Payload& payload, lua::ScriptRuntime* runtime, SteadyClock::time_point received);
    void dispatch(Decision& decision, store::MessageId id, const std::shared_ptr<PendingAck>& pending);
    void deliveryLoop(DestRuntime& dest, Lane& lane);
    // When a send's results are settled (a retry is due this long after it).
    struct SettleTime {
        SteadyClock::time_point steady;
        store::Clock::time_point store;
    };
    // Records the result of one send of `delivery`; false when it is queued for a retry.
    bool settle(DestRuntime& dest, Lane& lane, Delivery& delivery, const SendResult& result, const SettleTime& when);
    // Places a new delivery: held, or left to the store (the queue's invariants
    // are stated with it, in channel_delivery.cpp).
    void enqueue(DestRuntime& dest, Delivery delivery, std::size_t key);
    // Puts a delivery on its lane (key: the order_by hash, 0 = by message id).
    void hold(DestRuntime& dest, Delivery delivery, std::size_t key);
    // Reads the next page of a spilled destination's queue from the store.
    void pageIn(DestRuntime& dest);
    // A message on its way into the queues: its delivery rows may be in the
    // store before its intake has queued them (dispatch), and those are the
    // intake's to queue, not a page's. From before the message is inserted (a
    // recovered one: before its outcome is recorded) until its deliveries are
    // queued (and a recovered one's outcome is committed), an Arrival holds a
    // floor below the message's id; no page reads past the lowest floor held.
    class Arrival {
    public:
        // `below`: an id lower than the message's; by default the store's
        // lastAssignedId(), taken now, before the message is inserted.
        explicit Arrival(Channel& channel, std::optional<store::MessageId> below = std::nullopt);
        ~Arrival();
        Arrival(const Arrival&) = delete;
        Arrival& operator=(const Arrival&) = delete;

    private:
        Channel& channel_;
        std::multiset<store::MessageId>::iterator floor_;
    };
    // The highest message id a page may read now: below every Arrival's message.
    store::MessageId pageLimit();
    static constexpr std::size_t kResident = 4096;   // deliveries held per destination
    static constexpr std::size_t kPage = 1024;       // read back at a time, below kResident - kPage
    // Hash of the destination's order_by value in `message` (0 when not set).
    static std::size_t orderKey(const DestRuntime& dest, const hl7::Message* message);
    void recover();
    // Cuts short every script call of the channel, running or to come (stop()).
    void interruptScripts();
    static constexpr std::chrono::milliseconds kScriptGrace{1000};  // how long stop() lets scripts finish
    // The AE for a message not stored after its answer was prepared: made from
    // the original message when kept, else from the prepared AA.
    std::string refusal(const PendingAck* pending, const std::string& preparedAck, const std::string& error) const;
    void answer(const std::shared_ptr<PendingAck>& pending, const std::string& code, const std::string& text,
                const std::string& response = {});
    void deliveryFinished(DestRuntime& dest, Lane& lane, Delivery& delivery, bool ok, const std::string& response,
                          const std::string& error);
    void notifyAccepting();
    // The store's key of the source's positions: "CHANNEL/SOURCE-TYPE".
    std::string markKey() const { return config_.name + "/" + config_.sourceType; }
    bool overLimit() const;
    std::string ackFor(const hl7::Message* original, const std::string& code, const std::string& text) const;
    void logScript(const std::vector<lua::LogLine>& logs);

    ChannelConfig config_;
    Engine& engine_;
    store::MessageStore& store_;
    std::shared_ptr<lua::SharedMap> channelMap_;
    Pipeline pipeline_;
    std::unique_ptr<Source> source_;
    std::vector<std::unique_ptr<DestRuntime>> dests_;
    std::vector<std::thread> workers_;
    std::vector<std::unique_ptr<lua::ScriptRuntime>> runtimes_;
    std::mutex poolMutex_;
    std::condition_variable poolCv_;
    std::vector<lua::ScriptRuntime*> idle_;  // free processing slots

    std::mutex workMutex_;
    std::condition_variable workCv_;
    std::deque<WorkItem> work_;
    std::atomic<std::size_t> workSize_{0};
    std::atomic<std::size_t> inFlight_{0};  // submitted, not yet committed

    std::mutex arrivalsMutex_;
    std::multiset<store::MessageId> arrivals_;  // the floors the Arrivals hold

    std::mutex acceptMutex_;
    std::condition_variable acceptCv_;

    std::atomic<ChannelState> state_{ChannelState::Stopped};
    std::atomic<bool> stopping_{false};
    std::atomic<bool> sourceStopping_{false};  // the source is being stopped: stop accepting
    std::atomic<bool> backPressure_{false};
    std::string error_;
    mutable std::mutex problemMutex_;
    std::string sourceProblem_;  // SourceContext::setProblem, under problemMutex_
    std::string sourceAddress_;  // the running source's describe(), under problemMutex_
    bool sourceListens_ = false;  // under problemMutex_
    std::atomic<int> sourceConnections_{0};  // opened minus closed (event)
    EventThrottle sourceEvents_;  // what of the source's events reaches the event log

    Counters counters_;
    Histogram latency_;
};

}  // namespace junction::core
