// `mllp` source (an MLLP listener: io_uring or epoll loops, with TLS on the
// same loops, see listener.h) and destination (a persistent MLLP client that
// checks the ACK).
#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "connectors/mllp/mllp_connectors.h"

#include "connectors/mllp/client.h"
#include "connectors/mllp/listener.h"
#include "engine/hl7/ack.h"
#include "engine/hl7/message.h"

namespace junction::connectors {

namespace {

using namespace std::chrono_literals;
using TlsMap = config::Map<mllp::ListenerTls>;

// The settings of `tls` on both sides; a source has more (sourceTlsMap).
std::vector<TlsMap::Entry> tlsEntries() {
    return {{"cert", &mllp::ListenerTls::cert, config::path, "PEM certificate"},
            {"key", &mllp::ListenerTls::key, config::path, "PEM private key"},
            {"ca", &mllp::ListenerTls::ca, config::path, "PEM CA certificates"},
            {"verify_client", &mllp::ListenerTls::verifyClient, "require a client certificate signed by ca"}};
}

const TlsMap& sourceTlsMap() {
    static const TlsMap map(
        [] {
            auto e = tlsEntries();
            e.push_back({"allowed_names", &mllp::ListenerTls::allowedNames,
                         config::check([](const std::vector<std::string>& names) {
                             bool empty = std::find(names.begin(), names.end(), "") != names.end();
                             return empty ? std::string("tls.allowed_names has an empty name") : std::string();
                         }),
                         config::byDefault("any the CA signed"),
                         "client certificate CNs or DNS names let in (needs verify_client)"});
            e.push_back({"handshake_timeout", &mllp::ListenerTls::handshakeTimeout, config::range(100ms, 5min),
                         "close a connection not through its handshake this long"});
            return e;
        }(),
        [](mllp::ListenerTls& t, const config::Node& n) {
            if (t.cert.empty() || t.key.empty()) n.fail("tls needs cert and key");
            if (t.verifyClient && t.ca.empty())
                n.find("verify_client")->fail("verify_client needs ca (the CAs client certificates must come from)");
            if (auto a = n.find("allowed_names"); a && !t.verifyClient) a->fail("allowed_names needs verify_client: true");
            t.enabled = true;
        });
    return map;
}

// A destination verifies its peer with `ca`; the other keys are taken as on a source.
const TlsMap& destinationTlsMap() {
    static const TlsMap map(tlsEntries(), [](mllp::ListenerTls& t, const config::Node&) { t.enabled = true; });
    return map;
}

// ---------------------------------------------------------------- source

class MllpSource : public core::Source {
public:
    explicit MllpSource(mllp::ListenerOptions o) : o_(std::move(o)) {}
    ~MllpSource() override { stop(); }

    void start(core::SourceContext& ctx) override {
        ctx_ = &ctx;
        mllp::Listener::Handlers h;
        h.message = [this](std::string payload, const std::string& origin, mllp::Listener::Reply reply) {
            ctx_->submit(core::Inbound{std::move(payload), origin},
                         [reply = std::move(reply)](core::SubmitResult r) { reply(std::move(r.response)); });
        };
        h.admit = [this] {
            switch (ctx_->admission()) {
                case core::SourceContext::Admission::Accept: return mllp::Listener::Handlers::Admit::Yes;
                case core::SourceContext::Admission::Wait: return mllp::Listener::Handlers::Admit::Wait;
                case core::SourceContext::Admission::Stop: break;
            }
            return mllp::Listener::Handlers::Admit::Stop;
        };
        h.log = [this](const std::string& level, const std::string& text) { ctx_->log(level, text); };
        h.event = [this](const std::string& type, const std::string& text) { ctx_->event(type, text); };
        listener_ = std::make_unique<mllp::Listener>(o_, std::move(h));
        listener_->start();
    }

    void stop() override {
        if (!listener_) return;
        listener_->stop();
        listener_.reset();
    }

    bool listens() const override { return true; }
    std::string describe() const override { return "mllp " + o_.host + ":" + std::to_string(o_.port); }

private:
    mllp::ListenerOptions o_;
    core::SourceContext* ctx_ = nullptr;
    std::unique_ptr<mllp::Listener> listener_;
};

// The listener's options as a channel file sets them.
struct MllpSourceSettings : mllp::ListenerOptions {
    std::optional<int> loops;  // `threads`
};

const config::Map<MllpSourceSettings>& mllpSourceMap() {
    using S = MllpSourceSettings;
    static const config::Map<S> map{
        {"port", &S::port, config::required, config::range(1, 65535), "TCP port to listen on"},
        {"host", &S::host, "address to bind"},
        {"max_message_bytes", &S::maxMessageBytes, config::bytes, "largest accepted message"},
        {"idle_timeout", &S::idleTimeout, "close connections idle this long (0: never)"},
        {"frame_timeout", &S::frameTimeout, config::range(100ms, 1h).orZero("never"),
         "close a connection whose frame is not complete this long after its first byte"},
        {"max_connections", &S::maxConnections, config::range(1, 10000),
         "concurrent connections; a new one past it takes the place of the longest-idle one"},
        {"max_connections_per_address", &S::maxConnectionsPerAddress, config::range(1, 10000),
         config::byDefault("no limit"), "concurrent connections from one address"},
        {"threads", &S::loops, config::range(1, 64), config::byDefault("the channel's workers, at most one a core"),
         "threads serving the connections"},
        {"tls", &S::tls, sourceTlsMap(), "TLS on the listener's connections"},
    };
    return map;
}

class MllpSourceFactory : public core::MappedSourceFactory<MllpSourceSettings> {
public:
    MllpSourceFactory() : MappedSourceFactory(mllpSourceMap()) {}

protected:
    int port(const MllpSourceSettings& s) const override { return s.port; }
    std::unique_ptr<core::Source> build(MllpSourceSettings s, const core::BuildContext& ctx) const override {
        mllp::ListenerOptions o = s;
        // As many loops as the channel may process messages at once, one a core at most.
        o.threads = s.loops.value_or(
            std::clamp(ctx.workers, 1, std::max(1, static_cast<int>(std::thread::hardware_concurrency()))));
        return std::make_unique<MllpSource>(o);
    }
};

// ---------------------------------------------------------------- destination

class MllpDestination : public core::Destination {
public:
    MllpDestination(mllp::ClientOptions o, bool checkAck, std::size_t window)
        : client_(std::move(o)), checkAck_(checkAck), window_(window) {}

    core::SendResult send(const core::Outbound& m) override { return judge(client_.send(m.content)); }

    std::size_t window() const override { return window_; }
    std::vector<core::SendResult> sendAll(const std::vector<const core::Outbound*>& messages) override {
        std::vector<std::string_view> payloads;
        payloads.reserve(messages.size());
        for (const auto* m : messages) payloads.emplace_back(m->content);
        std::vector<core::SendResult> out;
        out.reserve(messages.size());
        for (auto& r : client_.sendAll(payloads)) out.push_back(judge(std::move(r)));
        return out;
    }

    void stop() override { client_.close(); }
    void abort() override { client_.abort(); }
    std::string describe() const override {
        return "mllp " + client_.options().host + ":" + std::to_string(client_.options().port);
    }

private:
    // What a response means: AA/CA sent; AE/AR (or no HL7 ACK) refused; no response: retry.
    core::SendResult judge(mllp::ClientResult r) {
        if (!r.ok()) return core::SendResult::retry(r.error);
        if (!checkAck_) return core::SendResult::ok(std::move(r.response));
        auto parsed = hl7::Message::parse(r.response);
        if (!parsed) {
            client_.close();
            return core::SendResult::fail("response is not an HL7 ACK: " + parsed.error.describe(), r.response);
        }
        std::string code = parsed.message->get("MSA-1");
        if (code == "AA" || code == "CA") return core::SendResult::ok(std::move(r.response));
        std::string text = parsed.message->get("MSA-3");
        if (text.empty()) text = parsed.message->get("ERR-8");
        if (code.empty()) return core::SendResult::fail("response has no MSA-1 acknowledgment code", r.response);
        return core::SendResult::fail("peer answered " + code + (text.empty() ? "" : ": " + text), r.response);
    }

    mllp::Client client_;
    bool checkAck_;
    std::size_t window_;
};

// The client's options as a channel file sets them.
struct MllpDestinationSettings : mllp::ClientOptions {
    bool checkAck = true;
    std::size_t window = 1;
    mllp::ListenerTls tlsFiles;  // `tls`
};

const config::Map<MllpDestinationSettings>& mllpDestinationMap() {
    using S = MllpDestinationSettings;
    static const config::Map<S> map{
        {"host", &S::host, config::required, "peer address"},
        {"port", &S::port, config::required, config::range(1, 65535), "peer port"},
        {"connect_timeout", &S::connectTimeout, "give up a connection attempt after this long"},
        {"response_timeout", &S::responseTimeout, "wait for each ACK this long"},
        {"check_ack", &S::checkAck, "AE/AR answers are errors"},
        {"max_response_bytes", &S::maxResponseBytes, config::bytes, "largest accepted response"},
        {"window", &S::window, config::range(1, 1000),
         "messages sent before their ACKs are awaited (more than 1 pipelines them)"},
        {"tls", &S::tlsFiles, destinationTlsMap(), "TLS to the peer, verified with ca"},
    };
    return map;
}

class MllpDestinationFactory : public core::MappedDestinationFactory<MllpDestinationSettings> {
public:
    MllpDestinationFactory() : MappedDestinationFactory(mllpDestinationMap()) {}

protected:
    std::unique_ptr<core::Destination> build(MllpDestinationSettings s, const core::BuildContext&) const override {
        mllp::ClientOptions o = s;
        o.tls = s.tlsFiles.enabled;
        o.caFile = s.tlsFiles.ca;
        return std::make_unique<MllpDestination>(o, s.checkAck, s.window);
    }
};

}  // namespace

void registerMllp(core::ConnectorRegistry& registry) {
    registry.addSource("mllp", std::make_unique<MllpSourceFactory>());
    registry.addDestination("mllp", std::make_unique<MllpDestinationFactory>());
}

}  // namespace junction::connectors
