// `channel` source and destination: an in-process hand-off from one channel to
// another, durable like any other (the target stores the message before the
// sending destination counts it as sent).
#include "connectors/channel/channel_connectors.h"

#include <condition_variable>
#include <mutex>

namespace junction::connectors {

namespace {

class ChannelSource : public core::Source {
public:
    void start(core::SourceContext&) override {}
    void stop() override {}
    std::string describe() const override { return "channel (in-process)"; }
};

class ChannelSourceFactory : public core::MappedSourceFactory<config::NoSettings> {
public:
    ChannelSourceFactory() : MappedSourceFactory(config::noSettings()) {}

protected:
    std::unique_ptr<core::Source> build(config::NoSettings, const core::BuildContext&) const override {
        return std::make_unique<ChannelSource>();
    }
};

class ChannelDestination : public core::Destination {
public:
    ChannelDestination(core::ChannelRouter* router, std::string target, std::string from)
        : router_(router), target_(std::move(target)), from_(std::move(from)) {}

    core::SendResult send(const core::Outbound& m) override {
        if (!router_) return core::SendResult::fail("no engine to hand the message to");
        std::mutex mu;
        std::condition_variable cv;
        bool ready = false;
        core::SubmitResult result;
        bool found = router_->submitTo(target_, core::Inbound{m.content, "channel " + from_}, [&](core::SubmitResult r) {
            std::lock_guard<std::mutex> lock(mu);
            result = std::move(r);
            ready = true;
            cv.notify_one();
        });
        if (!found) return core::SendResult::retry("channel " + target_ + " is not running");
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return ready; });
        if (!result.accepted) return core::SendResult::retry("channel " + target_ + ": " + result.error, result.response);
        if (!result.error.empty()) return core::SendResult::fail(result.error, result.response);
        return core::SendResult::ok(result.response);
    }
    std::string describe() const override { return "channel " + target_; }

private:
    core::ChannelRouter* router_;
    std::string target_, from_;
};

struct ChannelDestinationSettings {
    std::string channel;
};

const config::Map<ChannelDestinationSettings>& channelDestinationMap() {
    static const config::Map<ChannelDestinationSettings> map{
        {"channel", &ChannelDestinationSettings::channel, config::required, "the channel that receives the message"},
    };
    return map;
}

class ChannelDestinationFactory : public core::MappedDestinationFactory<ChannelDestinationSettings> {
public:
    ChannelDestinationFactory() : MappedDestinationFactory(channelDestinationMap()) {}

protected:
    std::unique_ptr<core::Destination> build(ChannelDestinationSettings s, const core::BuildContext& ctx) const override {
        return std::make_unique<ChannelDestination>(ctx.router, s.channel, ctx.channel);
    }
};

}  // namespace

void registerChannel(core::ConnectorRegistry& registry) {
    registry.addSource("channel", std::make_unique<ChannelSourceFactory>());
    registry.addDestination("channel", std::make_unique<ChannelDestinationFactory>());
}

}  // namespace junction::connectors
