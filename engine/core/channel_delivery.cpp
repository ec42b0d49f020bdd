// Channel, delivery side: each destination's queue (held in memory up to
// kResident, the rest paged in from the store), its lanes' delivery threads,
// the result of each send (settle: sent, failed, or queued for a retry with
// backoff) and the log lines of a destination's outage.
#include "engine/core/channel.h"

#include <random>

#include "engine/core/channel_detail.h"
#include "engine/util/round.h"

namespace junction::core {

using detail::since;

namespace {

double random01() {
    thread_local std::mt19937 rng(std::random_device{}());
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

std::size_t Channel::orderKey(const DestRuntime& dest, const hl7::Message* message) {
    if (!dest.orderBy || !message || dest.lanes.size() < 2) return 0;
    return std::hash<std::string>{}(message->get(*dest.orderBy)) | 1;  // never 0
}

// A destination's queue. Every queued delivery is in exactly one of three places:
//  - held: in one lane's queue, put there by enqueue or by a page;
//  - left to the store: queued in the store only, above pagedThrough, while the
//    queue is spilled; a later page reads it (pages read in id order, a new
//    message is committed before any with a higher id, and a recovered one
//    stays arriving until its outcome is committed: no page passes it unread);
//  - arriving: its message is stored, or being stored, but its intake has not
//    run enqueue for it yet; enqueue places it.
// So, under spillMutex: a page reads only above pagedThrough, skips what is held
// already (heldWhileSpilled: held above pagedThrough), and never reads an
// arriving delivery, whose row may be committed well before its enqueue runs (a
// sync thread answering many senders, a thread that loses the CPU): it reads no
// further than pageLimit(), below every Arrival. Enqueue holds a delivery at or
// below pagedThrough (no page will read it), and one a sender waits for; it
// leaves any other to the store while spilled. The queue stops being spilled
// once a page has read everything left to the store (maxDropped).
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

// A resend puts an old message's delivery back into the queue. Its row turns
// Queued in the store at an id that pages may have passed already, or not yet:
// it is placed as an arriving delivery is. An Arrival below its id keeps every
// page short of it until enqueue has placed it (held, or left to the store for
// a page to read when the queue is spilled and has not paged that far), and the
// row is committed before enqueue runs: read once, by exactly one of the two.
store::RepairOutcome Channel::requeue(const std::string& destination, store::MessageId id, std::string encoded,
                                      bool only) {
    DestRuntime* dest = nullptr;
    for (auto& d : dests_)
        if (d->config.name == destination) dest = d.get();
    if (!dest) return store::RepairOutcome::NotFound;
    Arrival arrival(*this, id - 1);
    auto outcome = store_.requeueDelivery(id, destination);
    if (outcome != store::RepairOutcome::Done) return outcome;
    std::size_t key = 0;
    if (dest->orderBy && dest->lanes.size() > 1) {
        auto parsed = hl7::Message::parse(encoded);
        if (parsed.message) key = orderKey(*dest, &*parsed.message);
    }
    Delivery del;
    del.id = id;
    del.encoded = std::move(encoded);
    del.notBefore = del.received = SteadyClock::now();
    del.only = only;
    enqueue(*dest, std::move(del), key);
    dest->counters.queued.fetch_add(1, std::memory_order_relaxed);
    return store::RepairOutcome::Done;
}

Channel::Arrival::Arrival(Channel& channel, std::optional<store::MessageId> below) : channel_(channel) {
    std::lock_guard<std::mutex> lock(channel_.arrivalsMutex_);
    floor_ = channel_.arrivals_.insert(below ? *below : channel_.store_.lastAssignedId());
}

Channel::Arrival::~Arrival() {
    std::lock_guard<std::mutex> lock(channel_.arrivalsMutex_);
    channel_.arrivals_.erase(floor_);
}

store::MessageId Channel::pageLimit() {
    // With no Arrival: what the store has given out so far. A message inserted
    // later gets a higher id; one inserted before is arriving or queued.
    std::lock_guard<std::mutex> lock(arrivalsMutex_);
    return arrivals_.empty() ? store_.lastAssignedId() : *arrivals_.begin();
}

void Channel::pageIn(DestRuntime& dest) {
    // A page is read from what the store has committed, without waiting for it,
    // up to pageLimit(). A page that comes back short of a delivery left to the
    // store (submitted, not committed yet, or above the limit) is read once more
    // after the store has committed what was submitted. That wait happens
    // outside spillMutex, which the sources take to enqueue: a store that cannot
    // write for a while (a full disk) holds up this lane only, never the
    // sources' answers.
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (!dest.spilled.load()) return;
        if (attempt > 0) store_.flush();
        std::lock_guard<std::mutex> lock(dest.spillMutex);
        if (!dest.spilled) return;
        store::MessageId limit = pageLimit();
        auto page = store_.pendingDeliveries(config_.name, dest.config.name, dest.pagedThrough, limit, kPage, false);
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
        if (page.size() == kPage) return;  // more to read as the lanes drain
        // The store holds no more up to the limit. Every delivery left to it has
        // been read once that covers the last one enqueue left (maxDropped) and
        // those queued before this start, which no enqueue left (up to
        // `recovered`; a limit below it means a recovered message is still
        // arriving): new deliveries are held again.
        if (dest.maxDropped <= dest.pagedThrough && limit >= dest.recovered) {
            dest.spilled = false;
            dest.heldWhileSpilled.clear();
            return;
        }
    }
    // Still short of one not committed (left to the store during the wait) or
    // above the limit: the queue stays spilled and a lane reads again soon.
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
    // The response script ran in settle (its log lines go with the delivery's result).
    std::optional<std::string> scriptAck = del.scriptAck;
    if ((dest.config.response.empty() || !del.message) && del.responseMap)
        del.responseMap->setString(dest.config.name, response);
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
    if (!cfg.response.empty() && del.message) {
        auto r = pipeline_.response(cfg, *del.message, res.response, ok ? "SENT" : "ERROR", lane.script.get(),
                                    del.responseMap);
        if (!r.logs.empty()) logScript(r.logs);
        if (!r.ok) log("error", "response script of " + cfg.name + ": " + r.error);
        del.scriptAck = r.ack;
        auto now = store::Clock::now();
        for (const auto& l : r.logs) up.log.push_back(detail::logEntry(l, "destination:" + cfg.name, now));
        if (!r.ok) up.log.push_back({now, "destination:" + cfg.name, store::LogLevel::Error, "response script: " + r.error});
    }
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
    const char* event = nullptr;  // an outage's start and end go to the event log too
    {
        std::lock_guard<std::mutex> lock(dest.errorMutex);
        auto& o = dest.outage;
        if (ok) {
            if (!o.on) return;
            line = "destination " + dest.config.name + " is back after " + seconds(o.since) + " s (" +
                   std::to_string(o.failures) + " failed attempt(s))";
            event = "destination.recovered";
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
                event = "destination.retrying";
            } else if (now - o.lastSummary >= std::chrono::minutes(1)) {
                line = "destination " + dest.config.name + " still failing after " + seconds(o.since) + " s: " +
                       std::to_string(o.failuresSinceSummary) + " failed attempt(s) in the last minute, " +
                       std::to_string(dest.size.load(std::memory_order_relaxed)) + " queued; last error: " + error;
                o.lastSummary = now;
                o.failuresSinceSummary = 0;
            }
        }
    }
    if (line.empty()) return;
    log(ok ? "info" : "warn", line);
    if (event) engine_.recordEvent(event, config_.name, line);
}

}  // namespace junction::core
