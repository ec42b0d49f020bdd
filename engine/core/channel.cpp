// Channel: its lifecycle (start, stop, pause, resume), the recovery of what a
// previous run left unfinished, and the processing of each message (decide:
// the scripts and routing; dispatch: answers and queued deliveries), used both
// by the source's thread at intake and by the worker for recovered messages.
// The source side is in channel_intake.cpp, the delivery queues in
// channel_delivery.cpp.
#include "engine/core/channel.h"

#include "engine/core/channel_detail.h"
#include "engine/util/log.h"
#include "engine/util/thread_name.h"

namespace junction::core {

using detail::since;

namespace {

// MSH-10 of the (transformed) message, for log lines.
std::string controlIdOf(const lua::Payload& payload) { return payload.hl7 ? payload.hl7->controlId() : std::string(); }

// What processing said about a message, for its log: the scripts' lines, a
// filter's reason, errors. Empty for a message that went through silently.
std::vector<store::LogEntry> messageLog(const ProcessOutcome& out) {
    std::vector<store::LogEntry> log;
    auto now = store::Clock::now();
    for (const auto& l : out.logs) log.push_back(detail::logEntry(l, l.stage.empty() ? "transform" : l.stage, now));
    const std::string stage = out.errorStage.empty() ? "transform" : out.errorStage;
    if (out.status == store::Status::Filtered) log.push_back({now, stage, store::LogLevel::Info, "filtered: " + out.filterReason});
    if (out.status == store::Status::Error) log.push_back({now, stage, store::LogLevel::Error, out.error});
    for (const auto& d : out.destinations) {
        if (d.kind == DestinationOutcome::Kind::Filtered)
            log.push_back({now, "destination:" + d.name, store::LogLevel::Info, "filtered: " + d.reason});
        else if (d.kind == DestinationOutcome::Kind::Error)
            log.push_back({now, "destination:" + d.name, store::LogLevel::Error, d.reason});
    }
    return log;
}

}  // namespace

Channel::Channel(ChannelConfig config, Engine& engine)
    : config_(std::move(config)),
      engine_(engine),
      store_(engine.store()),
      channelMap_(std::make_shared<lua::SharedMap>()),
      pipeline_(config_, channelMap_, engine.globalMap(), engine.scriptServices()) {}

Channel::~Channel() { stop(); }

void Channel::log(const std::string& level, const std::string& text) {
    util::logChannel(util::parseLogLevel(level).value_or(util::LogLevel::Info), config_.name, text);
}

void Channel::event(const std::string& type, const std::string& text) {
    if (type == "connection.opened") ++sourceConnections_;
    else if (type == "connection.closed") {
        int n = sourceConnections_.load();
        while (n > 0 && !sourceConnections_.compare_exchange_weak(n, n - 1)) {
        }
    }
    if (util::logEnabled(util::LogLevel::Debug)) util::logChannel(util::LogLevel::Debug, config_.name, type + ": " + text);
    if (auto recorded = sourceEvents_.admit(type, text)) engine_.recordEvent(type, config_.name, *recorded);
}

void Channel::logScript(const std::vector<lua::LogLine>& logs) {
    for (const auto& l : logs) {
        const char* level = l.level == lua::LogLine::Error ? "error" : l.level == lua::LogLine::Warn ? "warn" : "info";
        log(level, (l.where.empty() ? std::string() : l.where + ": ") + l.text);
    }
}

// ---------------------------------------------------------------- lifecycle

void Channel::start() {
    if (state_ == ChannelState::Running || state_ == ChannelState::Paused) return;
    stopping_ = false;
    sourceStopping_ = false;
    error_.clear();
    BuildContext ctx = engine_.buildContext(config_);
    const ConnectorRegistry& registry = engine_.connectors();
    try {
        // One slot per worker: a message is processed by whoever holds a slot (the
        // source's thread, or the recovery worker); with one slot, channel order is kept.
        runtimes_.clear();
        idle_.clear();
        for (int i = 0; i < std::max(1, config_.workers); ++i) {
            if (!config_.script.empty()) {
                std::string err;
                auto rt = lua::ScriptRuntime::load(config_.script, engine_.options().limits, &err);
                if (!rt) throw std::runtime_error(err);
                runtimes_.push_back(std::move(rt));
                idle_.push_back(runtimes_.back().get());
            } else {
                idle_.push_back(nullptr);
            }
        }
        dests_.clear();
        for (const auto& dc : config_.destinations) {
            auto d = std::make_unique<DestRuntime>();
            d->config = dc;
            if (!dc.orderBy.empty()) d->orderBy = hl7::Path::parse(dc.orderBy);
            for (int k = 0; k < std::max(1, dc.threads); ++k) {
                auto lane = std::make_unique<Lane>();
                lane->connector = registry.destination(dc.type)->create(dc.settings, ctx);
                if (!dc.response.empty()) {
                    std::string err;
                    lane->script = lua::ScriptRuntime::load(config_.script, engine_.options().limits, &err);
                    if (!lane->script) throw std::runtime_error(err);
                }
                d->lanes.push_back(std::move(lane));
            }
            dests_.push_back(std::move(d));
        }
        source_ = registry.source(config_.sourceType)->create(config_.sourceSettings, ctx);
        std::lock_guard<std::mutex> lock(problemMutex_);
        sourceAddress_ = source_->describe();
        sourceListens_ = source_->listens();
        sourceConnections_ = 0;
    } catch (const std::exception& e) {
        error_ = e.what();
        state_ = ChannelState::Failed;
        engine_.recordEvent("channel.failed", config_.name, error_);
        throw;
    }
    recover();
    for (auto& d : dests_)
        for (auto& lane : d->lanes) {
            DestRuntime* dp = d.get();
            Lane* lp = lane.get();
            lane->thread = std::thread([this, dp, lp] {
                util::nameThisThread("dst-" + dp->config.name);
                deliveryLoop(*dp, *lp);
            });
        }
    workers_.emplace_back([this] {
        util::nameThisThread("wrk-" + config_.name);
        workerLoop(0);
    });
    state_ = ChannelState::Running;
    try {
        source_->start(*this);
    } catch (const std::exception& e) {
        error_ = std::string("source did not start: ") + e.what();
        stop();
        state_ = ChannelState::Failed;
        engine_.recordEvent("channel.failed", config_.name, error_);
        throw std::runtime_error(error_);
    }
    engine_.recordEvent("channel.started", config_.name, source_->describe());
}

void Channel::stop() {
    if (state_ == ChannelState::Stopped && workers_.empty() && dests_.empty()) return;
    const bool wasRunning = state_ == ChannelState::Running || state_ == ChannelState::Paused;
    // A source held by back-pressure or pause must be let go before it can stop.
    sourceStopping_ = true;
    notifyAccepting();
    // Scripts get a moment to finish what they are doing; then every call is cut
    // short, so that no script (a runaway one, or one over a long backlog) holds
    // the stop. A message whose script was cut is not recorded: a live one is
    // answered AE, a recovered one stays RECEIVED for the next start.
    std::mutex graceMutex;
    std::condition_variable graceCv;
    bool settled = false;
    std::thread grace([&] {
        std::unique_lock<std::mutex> lock(graceMutex);
        if (!graceCv.wait_for(lock, kScriptGrace, [&] { return settled; })) interruptScripts();
    });
    if (source_) source_->stop();
    // Let messages already submitted reach the workers, then drain them.
    while (inFlight_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    stopping_ = true;
    notifyAccepting();
    workCv_.notify_all();
    for (auto& w : workers_)
        if (w.joinable()) w.join();
    workers_.clear();
    for (auto& d : dests_)
        for (auto& lane : d->lanes) {
            {
                std::lock_guard<std::mutex> lock(lane->mutex);  // no lost wake-up
            }
            lane->cv.notify_all();
            if (lane->connector) lane->connector->abort();  // a send waiting on a silent peer returns now
        }
    for (auto& d : dests_) {
        for (auto& lane : d->lanes) {
            if (lane->thread.joinable()) lane->thread.join();
            if (lane->connector) lane->connector->stop();
            // Deliveries still queued stay Queued in the store and resume on the next start.
            for (auto& del : lane->queue)
                if (del.pending) answer(del.pending, "AE", "channel stopped before delivery");
            lane->queue.clear();
        }
        d->size = 0;
    }
    {
        std::lock_guard<std::mutex> lock(graceMutex);
        settled = true;
    }
    graceCv.notify_all();
    grace.join();
    store_.flush();
    source_.reset();
    {
        std::lock_guard<std::mutex> lock(problemMutex_);
        sourceAddress_.clear();
        sourceListens_ = false;
    }
    if (state_ != ChannelState::Failed) state_ = ChannelState::Stopped;
    if (wasRunning) engine_.recordEvent("channel.stopped", config_.name, "");
}

void Channel::interruptScripts() {
    for (auto& rt : runtimes_) rt->interrupt();
    for (auto& d : dests_)
        for (auto& lane : d->lanes)
            if (lane->script) lane->script->interrupt();
}

void Channel::pause() {
    if (state_ == ChannelState::Running) state_ = ChannelState::Paused;
}

void Channel::resume() {
    if (state_ == ChannelState::Paused) {
        state_ = ChannelState::Running;
        notifyAccepting();
    }
}

void Channel::setProblem(const std::string& problem) {
    std::lock_guard<std::mutex> lock(problemMutex_);
    sourceProblem_ = problem;
}

bool Channel::trigger() {
    if (state_ != ChannelState::Running || !source_) return false;
    return source_->trigger();
}

void Channel::recover() {
    store_.flush();
    constexpr std::size_t kAll = 100000000;
    for (auto& pm : store_.pendingMessages(config_.name, kAll)) {
        WorkItem item;
        item.id = pm.id;
        item.raw = std::move(pm.raw);
        item.received = SteadyClock::now();
        work_.push_back(std::move(item));
    }
    workSize_ = work_.size();
    // Queued deliveries: the first page of each destination; the rest as it drains.
    store::MessageId last = dests_.empty() ? 0 : store_.lastMessageId();
    for (auto& d : dests_) {
        {
            std::lock_guard<std::mutex> lock(d->spillMutex);
            d->spilled = true;
            d->pagedThrough = 0;
            d->recovered = last;
            d->countedAtRecovery = d->config.queueLimit || config_.queueLimit;  // a limit needs the whole count
            d->size = d->countedAtRecovery ? store_.countQueued(config_.name, d->config.name) : 0;
        }
        pageIn(*d);
    }
}

// ---------------------------------------------------------------- workers

void Channel::workerLoop(std::size_t) {
    std::deque<WorkItem> batch;
    while (true) {
        {
            std::unique_lock<std::mutex> lock(workMutex_);
            workCv_.wait(lock, [&] { return !work_.empty() || stopping_; });
            if (work_.empty()) return;
            batch.swap(work_);
        }
        for (auto& item : batch) {
            process(item);
            workSize_.fetch_sub(1, std::memory_order_relaxed);
        }
        batch.clear();
        notifyAccepting();
    }
}

Channel::Lease::Lease(Channel& c) : channel_(c) {
    std::unique_lock<std::mutex> lock(c.poolMutex_);
    c.poolCv_.wait(lock, [&] { return !c.idle_.empty(); });
    runtime_ = c.idle_.back();
    c.idle_.pop_back();
}

Channel::Lease::~Lease() {
    {
        std::lock_guard<std::mutex> lock(channel_.poolMutex_);
        channel_.idle_.push_back(runtime_);
    }
    channel_.poolCv_.notify_one();
}

Channel::Decision Channel::decide(lua::Payload& payload, lua::ScriptRuntime* rt, SteadyClock::time_point received) {
    Decision d;
    d.received = received;
    if (rt) d.responseMap = std::make_shared<lua::SharedMap>();
    bool development = config_.storage == store::StorageMode::Development;
    ProcessOutcome out = pipeline_.process(payload, rt, d.responseMap, development);
    if (!out.logs.empty()) logScript(out.logs);
    if (out.interrupted) {
        d.interrupted = true;
        d.status = store::Status::Error;
        d.error = out.error;
        log("warn", "message " + controlIdOf(payload) + ": not processed, the channel is stopping");
        return d;
    }
    latency_.record(since(received));

    store::ProcessedMessage& pm = d.pm;
    pm.channel = config_.name;
    pm.status = out.status;
    pm.error = out.error;
    pm.storage = config_.storage;
    pm.log = messageLog(out);
    if (development) pm.transformed = std::move(out.transformed);
    d.status = out.status;
    d.error = out.error;
    d.filterReason = out.filterReason;
    d.ack = out.ack;

    if (out.status == store::Status::Error) {
        counters_.errored.fetch_add(1, std::memory_order_relaxed);
        log("error", "message " + controlIdOf(payload) + ": " + out.error);
        return d;
    }
    if (out.status == store::Status::Filtered) {
        counters_.filtered.fetch_add(1, std::memory_order_relaxed);
        return d;
    }
    for (auto& o : out.destinations) {
        store::ProcessedMessage::Delivery del;
        del.destination = o.name;
        switch (o.kind) {
            case DestinationOutcome::Kind::NotRouted: continue;
            case DestinationOutcome::Kind::Filtered:
                del.status = store::Status::Filtered;
                del.error = o.reason;
                break;
            case DestinationOutcome::Kind::Error:
                del.status = store::Status::Error;
                del.error = o.reason;
                log("error", "message " + controlIdOf(payload) + " destination " + o.name + ": " + o.reason);
                break;
            case DestinationOutcome::Kind::Queued:
                del.status = store::Status::Queued;
                del.encoded = o.encoded;
                break;
        }
        for (auto& dr : dests_) {
            if (dr->config.name != o.name) continue;
            if (del.status == store::Status::Queued) {
                std::size_t key = payload.hl7 ? orderKey(*dr, &*payload.hl7) : 0;
                d.queued.push_back({dr.get(), std::move(o.encoded), key});
                dr->counters.queued.fetch_add(1, std::memory_order_relaxed);
            } else if (del.status == store::Status::Filtered) {
                dr->counters.filtered.fetch_add(1, std::memory_order_relaxed);
            } else {
                dr->counters.errored.fetch_add(1, std::memory_order_relaxed);
            }
        }
        pm.deliveries.push_back(std::move(del));
    }
    if (!d.queued.empty()) counters_.queued.fetch_add(1, std::memory_order_relaxed);
    d.onlyDelivery = d.queued.size() == 1 && pm.deliveries.size() == 1;

    // Postprocessor: runs once the message is routed to its destinations.
    if (rt && !config_.postprocessor.empty()) {
        auto post = pipeline_.postprocess(payload, rt, d.responseMap);
        if (!post.logs.empty()) logScript(post.logs);
        if (!post.ok) log("error", "postprocessor, message " + controlIdOf(payload) + ": " + post.error);
        auto now = store::Clock::now();
        for (const auto& l : post.logs) pm.log.push_back(detail::logEntry(l, "transform", now));
        if (!post.ok) pm.log.push_back({now, "transform", store::LogLevel::Error, "postprocessor: " + post.error});
        if (post.ack) d.ack = post.ack;
    }
    bool needsMessage = false;
    for (auto& q : d.queued)
        if (!q.dest->config.response.empty()) needsMessage = true;
    if (needsMessage) d.message = std::make_shared<lua::Payload>(payload);
    return d;
}

void Channel::dispatch(Decision& d, store::MessageId id, const std::shared_ptr<PendingAck>& pending) {
    if (d.status == store::Status::Error) {
        answer(pending, "AE", d.error);
        return;
    }
    if (d.status == store::Status::Filtered) {
        if (d.ack) answer(pending, "AA", "", *d.ack);
        else answer(pending, "AA", "filtered: " + d.filterReason);
        return;
    }
    if (pending) {
        if (d.ack && config_.ack == AckMode::Script) pending->ack = d.ack;
        bool ackFromQueued = false;
        for (auto& q : d.queued)
            if (q.dest->config.name == config_.ackFrom) ackFromQueued = true;
        if (config_.ack == AckMode::Script) {
            {
                std::lock_guard<std::mutex> lock(pending->mutex);
                pending->remaining = static_cast<int>(d.queued.size());
            }
            if (d.queued.empty()) answer(pending, "AA", "", pending->ack.value_or(std::string()));
        } else if (!ackFromQueued) {
            answer(pending, "AA", "not routed to " + config_.ackFrom);
        }
    }
    for (auto& q : d.queued) {
        Delivery del;
        del.id = id;
        del.encoded = std::move(q.encoded);
        del.notBefore = SteadyClock::now();
        del.received = d.received;
        del.pending = pending;
        del.message = d.message;
        del.responseMap = d.responseMap;
        del.only = d.onlyDelivery;
        enqueue(*q.dest, std::move(del), q.key);
    }
}

// Messages found RECEIVED at start (stored, not processed before a crash).
void Channel::process(WorkItem& item) {
    if (!item.payload) {
        std::string err;
        item.payload = makePayload(config_.dataType, item.raw, &err, engine_.options().maxMessageBytes);
        if (!item.payload) {
            store::ProcessedMessage pm;
            pm.id = item.id;
            pm.channel = config_.name;
            pm.status = store::Status::Error;
            pm.error = err;
            pm.storage = config_.storage;
            store_.recordProcessed(std::move(pm));
            counters_.errored.fetch_add(1, std::memory_order_relaxed);
            return;
        }
    }
    Lease lease(*this);
    Decision d = decide(*item.payload, lease.runtime(), item.received);
    if (d.interrupted) {  // stays RECEIVED: processed at the next start
        answer(item.pending, "AE", d.error);
        return;
    }
    store::ProcessedMessage pm = d.pm;
    pm.id = item.id;
    // Its delivery rows are committed out of id order, after those of later
    // messages: no page reads past it until they are committed and queued.
    auto arrival = d.queued.empty() ? nullptr : std::make_shared<Arrival>(*this, item.id - 1);
    store_.recordProcessed(std::move(pm), [arrival](bool, const std::string&) mutable { arrival.reset(); });
    dispatch(d, item.id, item.pending);
}

ChannelInfo Channel::info() const {
    ChannelInfo i;
    i.name = config_.name;
    i.description = config_.description;
    i.file = config_.file;
    i.sourceType = config_.sourceType;
    i.script = config_.script;
    i.enabled = config_.enabled;
    i.state = state_.load();
    i.error = error_;
    i.counters = snapshot(counters_);
    i.latency = latency_.snapshot();
    i.backPressure = backPressure_.load();
    {
        std::lock_guard<std::mutex> lock(problemMutex_);
        i.sourceProblem = sourceProblem_;
        i.sourceAddress = sourceAddress_;
        if (sourceListens_) i.sourceConnections = sourceConnections_.load();
    }
    if (dests_.empty()) {  // not started: the configured destinations, without figures
        for (const auto& dc : config_.destinations) {
            DestinationInfo di;
            di.name = dc.name;
            di.type = dc.type;
            i.destinations.push_back(std::move(di));
        }
    }
    for (const auto& d : dests_) {
        DestinationInfo di;
        di.name = d->config.name;
        di.type = d->config.type;
        di.counters = snapshot(d->counters);
        di.latency = d->latency.snapshot();
        di.queued = d->size.load();
        di.held = d->resident.load();
        {
            std::lock_guard<std::mutex> lock(d->errorMutex);
            di.lastError = d->lastError;
            di.failing = d->outage.on;
        }
        i.destinations.push_back(std::move(di));
    }
    return i;
}

}  // namespace junction::core
