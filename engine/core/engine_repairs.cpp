// The engine's repairs of stored messages (engine.h), for operators: a message
// reprocessed into its channel as a new one linked to it, a delivery sent
// again by its destination's lanes, a message deleted.
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "engine/core/channel.h"
#include "engine/core/engine.h"

namespace junction::core {

namespace {

// How long a reprocess waits for its new message to be stored (a store that
// cannot write answers with an error well before).
constexpr std::chrono::seconds kStoreWait{60};

bool runs(ChannelState s) { return s == ChannelState::Running || s == ChannelState::Paused; }

}  // namespace

RepairResult Engine::reprocess(store::MessageId id, const std::optional<std::string>& raw, const std::string& user) {
    auto original = store_->get(id);
    if (!original) return RepairResult::notFound("no message " + std::to_string(id));
    const std::string& channel = original->summary.channel;
    std::string content = raw ? *raw : original->raw;
    if (!raw && content.empty())
        return RepairResult::conflict("the raw content of message " + std::to_string(id) +
                                      " was not kept (its channel's storage mode); send an edited one");

    // The outcome of the hand-off: stored (its id) or refused (why).
    struct Handoff {
        std::mutex mutex;
        std::condition_variable cv;
        long long id = 0;
        bool refused = false;
        std::string error;
    };
    auto handoff = std::make_shared<Handoff>();
    Inbound in;
    in.raw = std::move(content);
    in.origin = "reprocess of #" + std::to_string(id) + " by " + user;
    in.copyOf = id;
    in.stored = [handoff](long long newId) {
        std::lock_guard<std::mutex> lock(handoff->mutex);
        handoff->id = newId;
        handoff->cv.notify_all();
    };
    bool handed = submitTo(channel, std::move(in), [handoff](SubmitResult r) {
        std::lock_guard<std::mutex> lock(handoff->mutex);
        if (!r.accepted) {
            handoff->refused = true;
            handoff->error = r.error;
        }
        handoff->cv.notify_all();
    });
    if (!handed) return RepairResult::conflict("channel '" + channel + "' is not running");
    long long newId = 0;
    {
        std::unique_lock<std::mutex> lock(handoff->mutex);
        if (!handoff->cv.wait_for(lock, kStoreWait, [&] { return handoff->id > 0 || handoff->refused; }))
            return RepairResult::conflict("channel '" + channel + "' did not store the message in time");
        if (handoff->id <= 0) return RepairResult::conflict("channel '" + channel + "' did not take it: " + handoff->error);
        newId = handoff->id;
    }
    RepairResult r;
    r.id = newId;
    return r;
}

RepairResult Engine::resend(store::MessageId id, const std::string& destination) {
    auto m = store_->get(id);
    if (!m) return RepairResult::notFound("no message " + std::to_string(id));
    const store::DeliveryRecord* delivery = nullptr;
    for (const auto& d : m->deliveries)
        if (d.destination == destination) delivery = &d;
    if (!delivery)
        return RepairResult::notFound("message " + std::to_string(id) + " has no delivery to '" + destination + "'");
    if (delivery->status == store::Status::Queued)
        return RepairResult::conflict("the delivery to '" + destination + "' is queued already");
    if (delivery->encoded.empty())
        return RepairResult::conflict("the content sent to '" + destination + "' was not kept (storage: production" +
                                      " keeps it only until it is sent); reprocess the message instead");
    std::lock_guard<std::recursive_mutex> lock(mutex_);  // no stop, start or redeploy meanwhile
    Channel* ch = find(m->summary.channel);
    if (!ch || !runs(ch->state())) return RepairResult::conflict("channel '" + m->summary.channel + "' is not running");
    switch (ch->requeue(destination, id, delivery->encoded, m->deliveries.size() == 1)) {
        case store::RepairOutcome::Done: return {};
        case store::RepairOutcome::NotFound:
            return RepairResult::notFound("channel '" + m->summary.channel + "' has no destination '" + destination + "'");
        case store::RepairOutcome::Busy: break;
    }
    return RepairResult::conflict("the delivery to '" + destination + "' is queued already");
}

RepairResult Engine::deleteMessage(store::MessageId id) {
    switch (store_->deleteMessage(id)) {
        case store::RepairOutcome::Done: return {};
        case store::RepairOutcome::NotFound: return RepairResult::notFound("no message " + std::to_string(id));
        case store::RepairOutcome::Busy: break;
    }
    return RepairResult::conflict("message " + std::to_string(id) +
                                  " is still being processed or has a queued delivery; stop its channel or wait");
}

}  // namespace junction::core
