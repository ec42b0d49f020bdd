// Channel, source side: a message submitted by the source is parsed,
// processed on the source's thread and stored with its outcome in one write;
// admission and back-pressure; the ACK or NAK the sender gets, at once or once
// the deliveries it waits for are done (answer); a polling source's positions,
// stored with its messages (Inbound::mark) or alone (submitMark).
#include "engine/core/channel.h"

#include "engine/hl7/ack.h"

namespace junction::core {

namespace {

hl7::AckCode ackCode(const std::string& code) {
    auto c = hl7::parseAckCode(code);
    return c ? *c : hl7::AckCode::AE;
}

}  // namespace

std::string Channel::ackFor(const hl7::Message* original, const std::string& code, const std::string& text) const {
    if (lua::parseDataType(config_.dataType) != lua::DataType::Hl7v2) return {};
    if (!original) return {};
    return hl7::makeAckText(*original, ackCode(code), text);
}

void Channel::submit(Inbound message, std::function<void(SubmitResult)> done) {
    auto received = SteadyClock::now();
    counters_.received.fetch_add(1, std::memory_order_relaxed);
    std::string parseError = std::move(message.error);
    auto stored = std::move(message.stored);
    std::optional<lua::Payload> payload;
    if (parseError.empty()) payload = makePayload(config_.dataType, message.raw, &parseError, engine_.options().maxMessageBytes);

    store::NewMessage nm;
    nm.channel = config_.name;
    nm.dataType = config_.dataType;
    nm.source = std::move(message.origin);
    nm.storage = config_.storage;
    nm.copyOf = message.copyOf;
    if (message.mark) nm.mark = store::SourceMark{markKey(), std::move(*message.mark)};
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
        store_.insert(std::move(nm), [this, done = std::move(done), nak = std::move(nak), parseError,
                                      stored = std::move(stored)](store::MessageId id, const std::string& error) {
            if (id > 0 && stored) stored(id);
            SubmitResult r;
            r.accepted = id > 0;
            r.id = id;
            r.error = id > 0 ? parseError : "not stored: " + error;
            r.malformed = true;
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
    // Its delivery rows may be committed before dispatch below queues them: no
    // page reads them meanwhile.
    auto arrival = decision->queued.empty() ? nullptr : std::make_shared<Arrival>(*this);
    store_.insert(std::move(nm), [this, decision, pending, done = deferred ? std::function<void(SubmitResult)>() : std::move(done),
                                  ack = std::move(ack), arrival, stored = std::move(stored)](store::MessageId id,
                                                                                           const std::string& error) mutable {
        if (id <= 0) {
            arrival.reset();
            counters_.errored.fetch_add(1, std::memory_order_relaxed);
            SubmitResult r;
            r.error = "not stored: " + error;
            r.response = refusal(pending.get(), ack, r.error);
            if (done) done(std::move(r));
            else answer(pending, "AE", "not stored: " + error);
            inFlight_.fetch_sub(1);
            return;
        }
        if (stored) stored(id);
        if (done) {
            SubmitResult r;
            r.accepted = true;
            r.id = id;
            r.response = std::move(ack);
            done(std::move(r));
        }
        if (pending) pending->id = id;
        dispatch(*decision, id, pending);
        arrival.reset();
        inFlight_.fetch_sub(1);
    });
}

std::optional<std::string> Channel::sourceMark() { return store_.sourceMark(markKey()); }

void Channel::submitMark(std::string mark, std::function<void(SubmitResult)> done) {
    store_.saveMark({markKey(), std::move(mark)}, [done = std::move(done)](bool ok, const std::string& error) {
        SubmitResult r;
        r.accepted = ok;
        if (!ok) r.error = "position not stored: " + error;
        done(std::move(r));
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

}  // namespace junction::core
