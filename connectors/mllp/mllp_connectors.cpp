// `mllp` source (an MLLP listener: io_uring or epoll loops, with TLS on the
// same loops, see listener.h) and destination (a persistent MLLP client that
// checks the ACK).
#include <algorithm>
#include <chrono>
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

using config::Setting;
using T = config::Setting::Type;

struct TlsConfig {
    bool enabled = false;
    std::string cert, key, ca;
    bool verifyClient = false;
};

// The settings of `tls` on both sides; a source has more (sourceTlsSettings).
std::vector<Setting> tlsSettings() {
    return {{T::String, "cert", false, "PEM certificate"},
            {T::String, "key", false, "PEM private key"},
            {T::String, "ca", false, "PEM CA certificates"},
            {T::Bool, "verify_client", false, "require a client certificate signed by ca"}};
}

std::vector<Setting> sourceTlsSettings() {
    auto s = tlsSettings();
    s.push_back({T::StringList, "allowed_names", false,
                 "client certificate CNs or DNS names let in (default: any the CA signed; needs verify_client)"});
    s.push_back({T::Duration, "handshake_timeout", false, "close a connection not through its handshake this long (default 10s, 100ms-5m)"});
    return s;
}

TlsConfig readTls(const config::Node& conf, const std::string& base, const std::vector<Setting>& settings) {
    TlsConfig t;
    const config::Node* n = conf.find("tls");
    if (!n) return t;
    config::checkSettings(*n, settings, "tls");
    t.enabled = true;
    auto path = [&](const char* k) {
        if (!n->find(k)) return std::string();
        std::string p = n->find(k)->asString(k);
        return p.empty() || p[0] == '/' ? p : base + "/" + p;
    };
    t.cert = path("cert");
    t.key = path("key");
    t.ca = path("ca");
    if (auto v = n->find("verify_client")) t.verifyClient = v->asBool("verify_client");
    return t;
}

std::string durationText(std::chrono::milliseconds t) {
    for (auto [unit, ms] : {std::pair{"h", 3600000LL}, {"m", 60000LL}, {"s", 1000LL}})
        if (t.count() % ms == 0) return std::to_string(t.count() / ms) + unit;
    return std::to_string(t.count()) + "ms";
}

// A duration setting of at least `min` and at most `max` (0 too when `zero`).
std::chrono::milliseconds boundedDuration(const config::Node& n, const std::string& what, std::chrono::milliseconds min,
                                          std::chrono::milliseconds max, bool zero) {
    auto t = n.asDuration(what);
    if ((t.count() != 0 || !zero) && (t < min || t > max))
        n.fail(what + " must be " + (zero ? "0 (never) or " : "") + "from " + durationText(min) + " to " + durationText(max));
    return t;
}

mllp::ListenerTls readSourceTls(const config::Node& conf, const std::string& base) {
    mllp::ListenerTls l;
    TlsConfig t = readTls(conf, base, sourceTlsSettings());
    if (!t.enabled) return l;
    const config::Node& n = *conf.find("tls");
    if (t.cert.empty() || t.key.empty()) n.fail("tls needs cert and key");
    if (t.verifyClient && t.ca.empty()) n.find("verify_client")->fail("verify_client needs ca (the CAs client certificates must come from)");
    l.enabled = true;
    l.cert = t.cert;
    l.key = t.key;
    l.ca = t.ca;
    l.verifyClient = t.verifyClient;
    if (auto a = n.find("allowed_names")) {
        l.allowedNames = a->asStringList("tls.allowed_names");
        if (!t.verifyClient) a->fail("allowed_names needs verify_client: true");
        for (const auto& name : l.allowedNames)
            if (name.empty()) a->fail("tls.allowed_names has an empty name");
    }
    if (auto h = n.find("handshake_timeout"))
        l.handshakeTimeout = boundedDuration(*h, "tls.handshake_timeout", std::chrono::milliseconds(100), std::chrono::minutes(5), false);
    return l;
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
        listener_ = std::make_unique<mllp::Listener>(o_, std::move(h));
        listener_->start();
    }

    void stop() override {
        if (!listener_) return;
        listener_->stop();
        listener_.reset();
    }

    std::string describe() const override { return "mllp " + o_.host + ":" + std::to_string(o_.port); }

private:
    mllp::ListenerOptions o_;
    core::SourceContext* ctx_ = nullptr;
    std::unique_ptr<mllp::Listener> listener_;
};

class MllpSourceFactory : public core::SourceFactory {
public:
    std::vector<Setting> settings() const override {
        return {
            {T::Int, "port", true, "TCP port to listen on", 1, 65535},
            {T::String, "host", false, "address to bind (default 0.0.0.0)"},
            {T::Bytes, "max_message_bytes", false, "largest accepted message (default 16MB)"},
            {T::Duration, "idle_timeout", false, "close connections idle this long (default 5m, 0 = never)"},
            {T::Duration, "frame_timeout", false,
             "close a connection whose frame is not complete this long after its first byte (default 30s, 0 = never, else 100ms-1h)"},
            {T::Int, "max_connections", false,
             "concurrent connections (default 200); a new one past it takes the place of the longest-idle one", 1, 10000},
            {T::Int, "max_connections_per_address", false, "concurrent connections from one address (default: no limit)", 1, 10000},
            {T::Int, "threads", false, "threads serving the connections (default: the channel's workers, at most one a core)", 1, 64},
            {T::Map, "tls", false, "{ cert, key, ca, verify_client, allowed_names, handshake_timeout }"},
        };
    }
    int listenPort(const config::Node& conf) const override {
        auto p = conf.find("port");
        return p ? static_cast<int>(p->asInt("port", 1, 65535)) : 0;
    }
    std::unique_ptr<core::Source> create(const config::Node& conf, const core::BuildContext& ctx) const override {
        mllp::ListenerOptions o;
        o.port = static_cast<int>(conf.find("port")->asInt("port", 1, 65535));
        if (auto n = conf.find("host")) o.host = n->asString("host");
        if (auto n = conf.find("max_message_bytes")) o.maxMessageBytes = n->asBytes("max_message_bytes");
        if (auto n = conf.find("idle_timeout")) o.idleTimeout = n->asDuration("idle_timeout");
        if (auto n = conf.find("frame_timeout"))
            o.frameTimeout = boundedDuration(*n, "frame_timeout", std::chrono::milliseconds(100), std::chrono::hours(1), true);
        if (auto n = conf.find("max_connections")) o.maxConnections = static_cast<int>(n->asInt("max_connections", 1, 10000));
        if (auto n = conf.find("max_connections_per_address"))
            o.maxConnectionsPerAddress = static_cast<int>(n->asInt("max_connections_per_address", 1, 10000));
        o.tls = readSourceTls(conf, ctx.baseDir);
        // As many loops as the channel may process messages at once, one a core at most.
        o.threads = std::clamp(ctx.workers, 1, std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
        if (auto n = conf.find("threads")) o.threads = static_cast<int>(n->asInt("threads", 1, 64));
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

class MllpDestinationFactory : public core::DestinationFactory {
public:
    std::vector<Setting> settings() const override {
        auto s = std::vector<Setting>{
            {T::String, "host", true, "peer address"},
            {T::Int, "port", true, "peer port", 1, 65535},
            {T::Duration, "connect_timeout", false, "default 5s"},
            {T::Duration, "response_timeout", false, "wait for the ACK this long (default 30s)"},
            {T::Bool, "check_ack", false, "AE/AR answers are errors (default true)"},
            {T::Bytes, "max_response_bytes", false, "default 16MB"},
            {T::Int, "window", false,
             "messages sent before their ACKs are awaited (default 1; more pipelines them: see docs/channels.md)", 1,
             1000},
        };
        s.push_back({T::Map, "tls", false, "{ cert, key, ca, verify_client }"});
        return s;
    }
    std::unique_ptr<core::Destination> create(const config::Node& conf, const core::BuildContext& ctx) const override {
        mllp::ClientOptions o;
        o.host = conf.find("host")->asString("host");
        o.port = static_cast<int>(conf.find("port")->asInt("port", 1, 65535));
        if (auto n = conf.find("connect_timeout")) o.connectTimeout = n->asDuration("connect_timeout");
        if (auto n = conf.find("response_timeout")) o.responseTimeout = n->asDuration("response_timeout");
        if (auto n = conf.find("max_response_bytes")) o.maxResponseBytes = n->asBytes("max_response_bytes");
        TlsConfig tls = readTls(conf, ctx.baseDir, tlsSettings());
        o.tls = tls.enabled;
        o.caFile = tls.ca;
        bool check = !conf.find("check_ack") || conf.find("check_ack")->asBool("check_ack");
        std::size_t window = 1;
        if (auto n = conf.find("window")) window = static_cast<std::size_t>(n->asInt("window", 1, 1000));
        return std::make_unique<MllpDestination>(o, check, window);
    }
};

}  // namespace

void registerMllp(core::ConnectorRegistry& registry) {
    registry.addSource("mllp", std::make_unique<MllpSourceFactory>());
    registry.addDestination("mllp", std::make_unique<MllpDestinationFactory>());
}

}  // namespace junction::connectors
