#include "engine/core/channel.h"

#include <iostream>
#include <random>

#include "engine/hl7/ack.h"
#include "engine/util/round.h"
#include "engine/util/thread_name.h"

namespace junction::core {

namespace {

double random01() {
    thread_local std::mt19937 rng(std::random_device{}());
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

std::chrono::microseconds since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t);
}

hl7::AckCode ackCode(const std::string& code) {
    auto c = hl7::parseAckCode(code);
    return c ? *c : hl7::AckCode::AE;
}

// MSH-10 of the (transformed) message, for log lines.
std::string controlIdOf(const lua::Payload& payload) { return payload.hl7 ? payload.hl7->controlId() : std::string(); }

}  // namespace

Channel::Channel(ChannelConfig config, Engine& engine)
    : config_(std::move(config)),
      engine_(engine),
      store_(engine.store()),
      channelMap_(std::make_shared<lua::SharedMap>()),
      pipeline_(config_, channelMap_, engine.globalMap(), &engine.worklist()) {}

Channel::~Channel() { stop(); }

void Channel::log(const std::string& level, const std::string& text) {
    static std::mutex logMutex;
    std::lock_guard<std::mutex> lock(logMutex);
    std::cerr << "[" << config_.name << "] " << level << ": " << text << "\n";
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
    } catch (const std::exception& e) {
        error_ = e.what();
        state_ = ChannelState::Failed;
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
        throw std::runtime_error(error_);
    }
}

void Channel::stop() {
    if (state_ == ChannelState::Stopped && workers_.empty() && dests_.empty()) return;
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
    if (state_ != ChannelState::Failed) state_ = ChannelState::Stopped;
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

// ---------------------------------------------------------------- source side

std::string Channel::ackFor(const hl7::Message* original, const std::string& code, const std::string& text) const {
    if (lua::parseDataType(config_.dataType) != lua::DataType::Hl7v2) return {};
    if (!original) return {};
    return hl7::makeAckText(*original, ackCode(code), text);
}

void Channel::submit(Inbound message, std::function<void(SubmitResult)> done) {
    auto received = SteadyClock::now();
    counters_.received.fetch_add(1, std::memory_order_relaxed);
    std::string parseError = std::move(message.error);
    std::optional<lua::Payload> payload;
    if (parseError.empty()) payload = makePayload(config_.dataType, message.raw, &parseError, engine_.options().maxMessageBytes);

    store::NewMessage nm;
    nm.channel = config_.name;
    nm.dataType = config_.dataType;
    nm.source = std::move(message.origin);
    nm.storage = config_.storage;
    if (!payload) {
        // Malformed or unreadable input: kept as ERROR with its error, answered with a NAK (HL7).
        nm.status = store::Status::Error;
        nm.error = parseError;
        std::string nak;
        if (lua::parseDataType(config_.dataType) == lua::DataType::Hl7v2) {
            hl7::AckError err;
            err.code = 100;
            err.text = parseError;
            hl7::Message nakMessage = hl7::makeNak(message.raw, hl7::AckCode::AE, "message rejected: " + parseError, &err);
            nm.meta.controlId = nakMessage.get("MSA-2");  // salvaged from the broken header, for searches
            nak = nakMessage.serialize();
        }
        nm.raw = std::move(message.raw);
        counters_.errored.fetch_add(1, std::memory_order_relaxed);
        inFlight_.fetch_add(1);
        store_.insert(std::move(nm), [this, done = std::move(done), nak = std::move(nak), parseError](
                                         store::MessageId id, const std::string& error) {
            SubmitResult r;
            r.accepted = id > 0;
            r.id = id;
            r.error = id > 0 ? parseError : "not stored: " + error;
            r.response = nak;
            done(std::move(r));
            inFlight_.fetch_sub(1);
        });
        return;
    }
    nm.meta = metadataOf(*payload);
    nm.raw = std::move(message.raw);
    bool deferred = config_.ack != AckMode::AfterCommit;
    std::shared_ptr<PendingAck> pending;
    std::string ack;
    if (deferred) {
        pending = std::make_shared<PendingAck>();
        pending->done = std::move(done);
        if (payload->hl7) pending->original = *payload->hl7;
    } else if (payload->hl7) {
        ack = hl7::makeAckText(*payload->hl7, hl7::AckCode::AA);
    }
    auto decision = std::make_shared<Decision>();
    // Process on the source's own thread, then store the message together with
    // its outcome and deliveries in one write. The slot (and its Lua runtime)
    // is held for the scripts only: messages in flight at the same time on
    // different connections have no order between them, and a sender's next
    // message comes after this one's ACK, so after its insert.
    {
        Lease lease(*this);
        *decision = decide(*payload, lease.runtime(), received);
    }
    if (decision->interrupted) {
        // Cut short by a stop: not stored, and the sender is told so (it sends again later).
        SubmitResult r;
        r.error = "channel " + config_.name + " is stopping: message not accepted";
        r.response = refusal(pending.get(), ack, r.error);
        auto& reply = deferred ? pending->done : done;
        if (reply) reply(std::move(r));
        return;
    }
    decision->pm.meta = nm.meta;
    nm.processed = std::move(decision->pm);
    inFlight_.fetch_add(1);
    store_.insert(std::move(nm), [this, decision, pending, done = deferred ? std::function<void(SubmitResult)>() : std::move(done),
                                  ack = std::move(ack)](store::MessageId id, const std::string& error) mutable {
        if (id <= 0) {
            counters_.errored.fetch_add(1, std::memory_order_relaxed);
            SubmitResult r;
            r.error = "not stored: " + error;
            r.response = refusal(pending.get(), ack, r.error);
            if (done) done(std::move(r));
            else answer(pending, "AE", "not stored: " + error);
            inFlight_.fetch_sub(1);
            return;
        }
        if (done) {
            SubmitResult r;
            r.accepted = true;
            r.id = id;
            r.response = std::move(ack);
            done(std::move(r));
        }
        if (pending) pending->id = id;
        dispatch(*decision, id, pending);
        inFlight_.fetch_sub(1);
    });
}

std::string Channel::refusal(const PendingAck* pending, const std::string& preparedAck, const std::string& error) const {
    if (pending && pending->original) return ackFor(&*pending->original, "AE", error);
    if (preparedAck.empty()) return {};
    // The AA made for this message, turned into an AE: the sender is answered
    // at once (and may send again) instead of waiting for nothing.
    auto parsed = hl7::Message::parse(preparedAck);
    if (!parsed.message) return {};
    parsed.message->set("MSA-1", "AE");
    parsed.message->set("MSA-3", error);
    return parsed.message->serialize();
}

bool Channel::overLimit() const {
    // Messages waiting to be processed are held in memory: bounded even without a limit.
    constexpr std::size_t kWorkLimit = 10000;
    if (workSize_.load(std::memory_order_relaxed) >= (config_.queueLimit ? config_.queueLimit : kWorkLimit)) return true;
    for (const auto& d : dests_) {
        std::size_t limit = d->config.queueLimit ? d->config.queueLimit : config_.queueLimit;
        if (limit && d->size.load(std::memory_order_relaxed) >= limit) return true;
    }
    return false;
}

// Back-pressure is shown while the queues are over their limit (not while paused).
SourceContext::Admission Channel::admission() {
    if (stopping_ || sourceStopping_) return Admission::Stop;
    bool paused = state_ == ChannelState::Paused;
    bool over = !paused && overLimit();
    backPressure_ = over;
    return paused || over ? Admission::Wait : Admission::Accept;
}

bool Channel::waitUntilAccepting() {
    Admission a = admission();
    if (a == Admission::Wait) {
        std::unique_lock<std::mutex> lock(acceptMutex_);
        while ((a = admission()) == Admission::Wait) acceptCv_.wait_for(lock, std::chrono::milliseconds(50));
    }
    if (a == Admission::Stop) backPressure_ = false;
    return a == Admission::Accept;
}

void Channel::notifyAccepting() { acceptCv_.notify_all(); }

void Channel::answer(const std::shared_ptr<PendingAck>& pending, const std::string& code, const std::string& text,
                     const std::string& response) {
    if (!pending) return;
    std::function<void(SubmitResult)> done;
    SubmitResult r;
    {
        std::lock_guard<std::mutex> lock(pending->mutex);
        if (pending->answered) return;
        pending->answered = true;
        done = std::move(pending->done);
        r.accepted = true;
        r.id = pending->id;
        if (!response.empty()) r.response = response;
        else r.response = ackFor(pending->original ? &*pending->original : nullptr, code, text);
        if (code != "AA" && code != "CA") r.error = text;
    }
    if (done) done(std::move(r));
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
    store_.recordProcessed(std::move(pm));
    dispatch(d, item.id, item.pending);
}

// ---------------------------------------------------------------- deliveries

std::size_t Channel::orderKey(const DestRuntime& dest, const hl7::Message* message) {
    if (!dest.orderBy || !message || dest.lanes.size() < 2) return 0;
    return std::hash<std::string>{}(message->get(*dest.orderBy)) | 1;  // never 0
}

void Channel::enqueue(DestRuntime& dest, Delivery delivery, std::size_t key) {
    std::lock_guard<std::mutex> lock(dest.spillMutex);
    if (!dest.spilled && dest.resident.load() >= kResident && !delivery.pending) {
        dest.spilled = true;
        dest.pagedThrough = dest.maxHeld;
    }
    if (dest.spilled && delivery.id > dest.pagedThrough && !delivery.pending) {
        // Its row is in the store (written before it was dispatched): a page reads
        // it back (and counts it then if it belongs to the recovered ones).
        if (delivery.id > dest.recovered || dest.countedAtRecovery) dest.size.fetch_add(1, std::memory_order_relaxed);
        if (delivery.id > dest.maxDropped) dest.maxDropped = delivery.id;
        return;
    }
    if (dest.spilled && delivery.id > dest.pagedThrough) dest.heldWhileSpilled.insert(delivery.id);
    dest.size.fetch_add(1, std::memory_order_relaxed);
    hold(dest, std::move(delivery), key);
}

void Channel::pageIn(DestRuntime& dest) {
    if (!dest.spilled.load()) return;
    // A delivery left to the store was submitted to it before: once the store
    // has committed what was submitted, a read finds it. That wait happens here,
    // not under spillMutex, which the sources take to enqueue: a store that
    // cannot write for a while (a full disk) holds up this lane only, never the
    // sources' answers.
    store_.flush();
    std::lock_guard<std::mutex> lock(dest.spillMutex);
    if (!dest.spilled) return;
    auto page = store_.pendingDeliveries(config_.name, dest.config.name, dest.pagedThrough, kPage, false);
    for (auto& pd : page) {
        dest.pagedThrough = pd.id;
        if (dest.heldWhileSpilled.erase(pd.id)) continue;  // in memory already
        if (pd.id <= dest.recovered && !dest.countedAtRecovery) dest.size.fetch_add(1, std::memory_order_relaxed);
        std::size_t key = 0;
        if (dest.orderBy && dest.lanes.size() > 1) {
            auto parsed = hl7::Message::parse(pd.encoded);
            if (parsed.message) key = orderKey(dest, &*parsed.message);
        }
        Delivery del;
        del.id = pd.id;
        del.encoded = std::move(pd.encoded);
        del.attempts = pd.attempts;
        auto wait = pd.nextAttempt - store::Clock::now();
        del.notBefore = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                                 wait.count() > 0 ? wait : store::Clock::duration::zero());
        del.received = SteadyClock::now();
        hold(dest, std::move(del), key);
    }
    // The store holds no more, and every delivery left to it has been read (one
    // submitted after the flush above may not be committed yet: then a later
    // page reads it): new deliveries are held again.
    if (page.size() < kPage && dest.maxDropped <= dest.pagedThrough) {
        dest.spilled = false;
        dest.heldWhileSpilled.clear();
    }
}

// Callers hold dest.spillMutex.
void Channel::hold(DestRuntime& dest, Delivery delivery, std::size_t key) {
    Lane& lane = *dest.lanes[(key ? key : static_cast<std::size_t>(delivery.id)) % dest.lanes.size()];
    {
        std::lock_guard<std::mutex> lock(lane.mutex);
        if (delivery.id > dest.maxHeld) dest.maxHeld = delivery.id;
        lane.queue.push_back(std::move(delivery));
        dest.resident.fetch_add(1, std::memory_order_relaxed);
    }
    // From an MLLP loop: the lane's thread is woken once the loop's ACKs are
    // out, or it may take the CPU before they leave.
    if (util::Round::active()) util::Round::afterReplies([&lane] { lane.cv.notify_one(); });
    else lane.cv.notify_one();
}

void Channel::deliveryFinished(DestRuntime& dest, Lane& lane, Delivery& del, bool ok, const std::string& response,
                               const std::string& error) {
    auto pending = del.pending;
    std::optional<std::string> scriptAck;
    if (!dest.config.response.empty() && del.message) {
        auto r = pipeline_.response(dest.config, *del.message, response, ok ? "SENT" : "ERROR", lane.script.get(),
                                    del.responseMap);
        if (!r.logs.empty()) logScript(r.logs);
        if (!r.ok) log("error", "response script of " + dest.config.name + ": " + r.error);
        scriptAck = r.ack;
    } else if (del.responseMap) {
        del.responseMap->setString(dest.config.name, response);
    }
    if (!pending) return;
    if (config_.ack == AckMode::AfterDestinations) {
        if (dest.config.name != config_.ackFrom) return;
        if (scriptAck) answer(pending, "AA", "", *scriptAck);
        else if (ok) answer(pending, "AA", "", response);
        else answer(pending, "AE", dest.config.name + ": " + error, response.empty() ? std::string() : response);
        return;
    }
    if (config_.ack == AckMode::Script) {
        bool last;
        {
            std::lock_guard<std::mutex> lock(pending->mutex);
            if (scriptAck) pending->ack = scriptAck;
            last = --pending->remaining <= 0;
        }
        if (last) {
            std::string ack;
            {
                std::lock_guard<std::mutex> lock(pending->mutex);
                ack = pending->ack.value_or(std::string());
            }
            answer(pending, ok ? "AA" : "AE", ok ? "" : error, ack);
        }
    }
}

// A lane sends the message at the head of its queue, or, when its connector
// pipelines (window() > 1), up to that many ready messages from the head at
// once. A message queued for a retry stays at the head: the ones behind it wait
// for its next attempt (order kept), except those already sent with it.
void Channel::deliveryLoop(DestRuntime& dest, Lane& lane) {
    const std::size_t window = std::max<std::size_t>(1, lane.connector->window());
    std::vector<Delivery*> batch;
    std::vector<Outbound> out;
    std::vector<const Outbound*> outPtrs;
    std::vector<SendResult> results;
    std::vector<bool> finished;
    std::vector<std::pair<Delivery, std::size_t>> done;  // finished deliveries and their result
    while (true) {
        batch.clear();
        {
            std::unique_lock<std::mutex> lock(lane.mutex);
            while (!stopping_) {
                if (!lane.queue.empty()) {
                    auto now = SteadyClock::now();
                    if (lane.queue.front().notBefore <= now) break;
                    lane.cv.wait_until(lock, lane.queue.front().notBefore);
                } else if (dest.spilled.load()) {
                    // Nothing held, but deliveries wait in the store (a page came
                    // back short of one not committed yet): read again soon.
                    lane.cv.wait_for(lock, std::chrono::milliseconds(100));
                    if (lane.queue.empty() && dest.spilled.load() && !stopping_) {
                        lock.unlock();  // pageIn takes spillMutex, then the lanes' mutexes
                        pageIn(dest);
                        lock.lock();
                    }
                } else {
                    lane.cv.wait(lock);
                }
            }
            if (stopping_) return;
            // Deque elements stay where they are while other threads append, and
            // only this thread removes: the pointers hold until then.
            auto now = SteadyClock::now();
            for (auto& d : lane.queue) {
                if (batch.size() == window || d.notBefore > now) break;
                batch.push_back(&d);
            }
        }
        out.assign(batch.size(), Outbound{});
        for (std::size_t i = 0; i < batch.size(); ++i) {
            Outbound& ob = out[i];
            ob.messageId = batch[i]->id;
            ob.channel = config_.name;
            ob.destination = dest.config.name;
            ob.content = std::move(batch[i]->encoded);  // lent to the connector, not copied; back after the send
            ob.attempt = batch[i]->attempts + 1;
        }
        results.clear();
        try {
            if (batch.size() == 1) {
                results.push_back(lane.connector->send(out[0]));
            } else {
                outPtrs.clear();
                for (const auto& ob : out) outPtrs.push_back(&ob);
                results = lane.connector->sendAll(outPtrs);
            }
        } catch (const std::exception& e) {
            results.assign(batch.size(), SendResult::retry(std::string("connector error: ") + e.what()));
        }
        if (results.size() < batch.size()) results.resize(batch.size(), SendResult::retry("connector gave no result"));
        finished.assign(batch.size(), false);
        // One reading of the clocks for the window: messages that fail together
        // are due again together (with no jitter, the next window is the same one).
        SettleTime when{SteadyClock::now(), store::Clock::now()};
        for (std::size_t i = 0; i < batch.size(); ++i) {
            batch[i]->encoded = std::move(out[i].content);
            finished[i] = settle(dest, lane, *batch[i], results[i], when);
        }
        done.clear();
        {
            // The batch is the queue's first batch.size() entries.
            std::lock_guard<std::mutex> lock(lane.mutex);
            for (std::size_t i = batch.size(); i-- > 0;) {
                if (!finished[i]) continue;
                done.emplace_back(std::move(lane.queue[i]), i);
                lane.queue.erase(lane.queue.begin() + static_cast<std::ptrdiff_t>(i));
                dest.size.fetch_sub(1, std::memory_order_relaxed);
                dest.resident.fetch_sub(1, std::memory_order_relaxed);
            }
        }
        if (dest.spilled.load() && dest.resident.load() < kResident - kPage) pageIn(dest);
        if (done.empty()) continue;
        notifyAccepting();
        for (auto it = done.rbegin(); it != done.rend(); ++it) {
            const SendResult& res = results[it->second];
            deliveryFinished(dest, lane, it->first, res.kind == SendResult::Kind::Ok, res.response, res.error);
        }
    }
}

bool Channel::settle(DestRuntime& dest, Lane& lane, Delivery& del, const SendResult& res, const SettleTime& when) {
    const auto& cfg = dest.config;
    del.attempts++;
    bool retry = res.kind == SendResult::Kind::Retry || (res.kind == SendResult::Kind::Error && cfg.retry.onReject);
    store::DeliveryUpdate up;
    up.id = del.id;
    up.channel = config_.name;
    up.destination = cfg.name;
    up.attempts = del.attempts;
    up.response = res.response;
    up.error = res.error;
    up.storage = config_.storage;
    up.only = del.only;
    // The store gets the result before the counters show it: whoever sees a
    // count and then flushes the store finds the write.
    bool ok = res.kind == SendResult::Kind::Ok;
    if (retry && del.attempts < cfg.retry.attempts) {
        auto wait = cfg.retry.delay(del.attempts + 1, random01());
        up.status = store::Status::Queued;
        up.nextAttempt = when.store + wait;
        store_.recordDelivery(std::move(up));
        dest.counters.retried.fetch_add(1, std::memory_order_relaxed);
        noteAttempt(dest, false, res.error);
        // Answer a waiting sender now rather than after every retry.
        if (del.attempts == 1 && del.pending && config_.ack == AckMode::AfterDestinations && cfg.name == config_.ackFrom)
            answer(del.pending, "AE", cfg.name + ": " + res.error + " (queued for retry)");
        std::lock_guard<std::mutex> lock(lane.mutex);
        del.notBefore = when.steady + wait;
        return false;
    }
    up.status = ok ? store::Status::Sent : store::Status::Error;
    store_.recordDelivery(std::move(up));
    noteAttempt(dest, ok, res.error);
    if (ok) {
        dest.counters.sent.fetch_add(1, std::memory_order_relaxed);
        dest.latency.record(since(del.received));
        counters_.sent.fetch_add(1, std::memory_order_relaxed);
        return true;
    }
    dest.counters.errored.fetch_add(1, std::memory_order_relaxed);
    counters_.errored.fetch_add(1, std::memory_order_relaxed);
    log("error", "message " + std::to_string(del.id) + " to " + cfg.name + " failed after " +
                     std::to_string(del.attempts) + " attempt(s): " + res.error);
    return true;
}

void Channel::noteAttempt(DestRuntime& dest, bool ok, const std::string& error) {
    auto now = SteadyClock::now();
    auto seconds = [&](SteadyClock::time_point t) {
        return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - t).count());
    };
    std::string line;
    {
        std::lock_guard<std::mutex> lock(dest.errorMutex);
        auto& o = dest.outage;
        if (ok) {
            if (!o.on) return;
            line = "destination " + dest.config.name + " is back after " + seconds(o.since) + " s (" +
                   std::to_string(o.failures) + " failed attempt(s))";
            o = {};
        } else {
            dest.lastError = error;
            ++o.failures;
            ++o.failuresSinceSummary;
            if (!o.on) {
                o.on = true;
                o.since = o.lastSummary = now;
                o.failuresSinceSummary = 0;
                line = "destination " + dest.config.name + " is failing: " + error;
            } else if (now - o.lastSummary >= std::chrono::minutes(1)) {
                line = "destination " + dest.config.name + " still failing after " + seconds(o.since) + " s: " +
                       std::to_string(o.failuresSinceSummary) + " failed attempt(s) in the last minute, " +
                       std::to_string(dest.size.load(std::memory_order_relaxed)) + " queued; last error: " + error;
                o.lastSummary = now;
                o.failuresSinceSummary = 0;
            }
        }
    }
    if (!line.empty()) log(ok ? "info" : "warn", line);
}

ChannelInfo Channel::info() const {
    ChannelInfo i;
    i.name = config_.name;
    i.description = config_.description;
    i.file = config_.file;
    i.sourceType = config_.sourceType;
    i.state = state_.load();
    i.error = error_;
    i.counters = snapshot(counters_);
    i.latency = latency_.snapshot();
    i.backPressure = backPressure_.load();
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
        }
        i.destinations.push_back(std::move(di));
    }
    return i;
}

}  // namespace junction::core
