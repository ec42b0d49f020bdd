// `mllp` source (an MLLP listener: io_uring or epoll loops, see listener.h; with TLS a POCO
// TCPServer, one thread per connection)
// and destination (a persistent MLLP client that checks the ACK).
#include <Poco/Net/Context.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/Net/TCPServerConnection.h>
#include <Poco/Net/TCPServerConnectionFactory.h>
#include <Poco/Net/TCPServerParams.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "connectors/builtin.h"
#include "connectors/mllp/client.h"
#include "connectors/mllp/framing.h"
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

TlsConfig readTls(const config::Node& conf, const std::string& base) {
    TlsConfig t;
    const config::Node* n = conf.find("tls");
    if (!n) return t;
    config::checkSettings(*n, {{T::String, "cert", false, "PEM certificate"},
                               {T::String, "key", false, "PEM private key"},
                               {T::String, "ca", false, "PEM CA certificates"},
                               {T::Bool, "verify_client", false, "require a client certificate"}},
                          "tls");
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

// ---------------------------------------------------------------- source

struct MllpSourceConfig {
    mllp::ListenerOptions listen;  // host, port, sizes, timeouts, loops (also used with TLS)
    TlsConfig tls;
};

class MllpSource;

class MllpConnection : public Poco::Net::TCPServerConnection {
public:
    MllpConnection(const Poco::Net::StreamSocket& s, MllpSource& source)
        : Poco::Net::TCPServerConnection(s), source_(source) {}
    void run() override;

private:
    MllpSource& source_;
};

class MllpSource : public core::Source {
public:
    explicit MllpSource(MllpSourceConfig c) : c_(std::move(c)) {}
    ~MllpSource() override { stop(); }

    void start(core::SourceContext& ctx) override {
        ctx_ = &ctx;
        stopping_ = false;
        if (!c_.tls.enabled) {
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
            listener_ = std::make_unique<mllp::Listener>(c_.listen, std::move(h));
            listener_->start();
            return;
        }
        Poco::Net::SocketAddress addr(c_.listen.host, static_cast<Poco::UInt16>(c_.listen.port));
        std::unique_ptr<Poco::Net::ServerSocket> socket;
        try {
            if (c_.tls.enabled) {
                auto context = Poco::Net::Context::Ptr(new Poco::Net::Context(
                    Poco::Net::Context::TLS_SERVER_USE, c_.tls.key, c_.tls.cert, c_.tls.ca,
                    c_.tls.verifyClient ? Poco::Net::Context::VERIFY_STRICT : Poco::Net::Context::VERIFY_NONE));
                socket = std::make_unique<Poco::Net::SecureServerSocket>(addr, 64, context);
            } else {
                socket = std::make_unique<Poco::Net::ServerSocket>(addr, 64);
            }
        } catch (const Poco::Exception& e) {
            throw std::runtime_error("cannot listen on " + c_.listen.host + ":" + std::to_string(c_.listen.port) + ": " +
                                     e.displayText());
        }
        auto params = new Poco::Net::TCPServerParams;
        params->setMaxThreads(c_.listen.maxConnections);
        params->setMaxQueued(c_.listen.maxConnections);
        server_ = std::make_unique<Poco::Net::TCPServer>(new Factory(*this), *socket, params);
        socket_ = std::move(socket);
        server_->start();
    }

    void stop() override {
        stopping_ = true;
        if (listener_) {
            listener_->stop();
            listener_.reset();
        }
        if (!server_) return;
        server_->stop();  // no new connections
        {
            std::lock_guard<std::mutex> lock(connMutex_);
            for (auto* s : connections_) {
                try {
                    s->shutdown();
                } catch (...) {
                }
            }
        }
        // Wait for connection threads to finish their current message.
        for (int i = 0; i < 500 && server_->currentConnections() > 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        server_.reset();
        socket_.reset();
    }

    std::string describe() const override { return "mllp " + c_.listen.host + ":" + std::to_string(c_.listen.port); }

    void serve(Poco::Net::StreamSocket& socket) {
        std::string peer;
        try {
            peer = socket.peerAddress().toString();
        } catch (...) {
            peer = "?";
        }
        {
            std::lock_guard<std::mutex> lock(connMutex_);
            connections_.insert(&socket);
        }
        try {
            socket.setNoDelay(true);
            if (c_.listen.idleTimeout.count() > 0)
                socket.setReceiveTimeout(Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(c_.listen.idleTimeout.count()) * 1000));
            mllp::FrameDecoder decoder(c_.listen.maxMessageBytes);
            std::string origin = "mllp " + peer;
            char buf[65536];
            bool open = true;
            while (open && !stopping_) {
                if (!ctx_->waitUntilAccepting()) break;
                int n = socket.receiveBytes(buf, sizeof buf);
                if (n <= 0) break;
                decoder.feed(buf, static_cast<std::size_t>(n));
                mllp::FrameDecoder::Event ev;
                while (open && decoder.next(ev)) {
                    if (ev.isError) {
                        // Broken framing: this connection only is closed.
                        ctx_->log("warn", "mllp " + peer + ": " + ev.detail + "; closing the connection");
                        open = false;
                        break;
                    }
                    core::SubmitResult r = ctx_->submitAndWait(core::Inbound{std::move(ev.payload), origin});
                    if (!r.response.empty()) {
                        std::string framed = mllp::frame(r.response);
                        socket.sendBytes(framed.data(), static_cast<int>(framed.size()));
                    }
                }
            }
        } catch (const Poco::TimeoutException&) {
            ctx_->log("info", "mllp " + peer + ": idle timeout, closing");
        } catch (const Poco::Exception& e) {
            if (!stopping_) ctx_->log("warn", "mllp " + peer + ": " + e.displayText());
        }
        std::lock_guard<std::mutex> lock(connMutex_);
        connections_.erase(&socket);
    }

private:
    class Factory : public Poco::Net::TCPServerConnectionFactory {
    public:
        explicit Factory(MllpSource& s) : source_(s) {}
        Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override {
            return new MllpConnection(socket, source_);
        }

    private:
        MllpSource& source_;
    };

    MllpSourceConfig c_;
    core::SourceContext* ctx_ = nullptr;
    std::unique_ptr<Poco::Net::ServerSocket> socket_;
    std::unique_ptr<Poco::Net::TCPServer> server_;
    std::unique_ptr<mllp::Listener> listener_;
    std::atomic<bool> stopping_{false};
    std::mutex connMutex_;
    std::set<Poco::Net::StreamSocket*> connections_;
};

void MllpConnection::run() { source_.serve(socket()); }

std::vector<Setting> tlsSetting() { return {{T::Map, "tls", false, "{ cert, key, ca, verify_client }"}}; }

class MllpSourceFactory : public core::SourceFactory {
public:
    std::vector<Setting> settings() const override {
        auto s = std::vector<Setting>{
            {T::Int, "port", true, "TCP port to listen on", 1, 65535},
            {T::String, "host", false, "address to bind (default 0.0.0.0)"},
            {T::Bytes, "max_message_bytes", false, "largest accepted message (default 16MB)"},
            {T::Duration, "idle_timeout", false, "close connections idle this long (default 5m, 0 = never)"},
            {T::Int, "max_connections", false, "concurrent connections (default 200)", 1, 10000},
            {T::Int, "threads", false, "threads serving the connections (default: the channel's workers, at most one a core)", 1, 64},
        };
        auto t = tlsSetting();
        s.insert(s.end(), t.begin(), t.end());
        return s;
    }
    int listenPort(const config::Node& conf) const override {
        auto p = conf.find("port");
        return p ? static_cast<int>(p->asInt("port", 1, 65535)) : 0;
    }
    std::unique_ptr<core::Source> create(const config::Node& conf, const core::BuildContext& ctx) const override {
        MllpSourceConfig c;
        c.listen.port = static_cast<int>(conf.find("port")->asInt("port", 1, 65535));
        if (auto n = conf.find("host")) c.listen.host = n->asString("host");
        if (auto n = conf.find("max_message_bytes")) c.listen.maxMessageBytes = n->asBytes("max_message_bytes");
        if (auto n = conf.find("idle_timeout")) c.listen.idleTimeout = n->asDuration("idle_timeout");
        if (auto n = conf.find("max_connections")) c.listen.maxConnections = static_cast<int>(n->asInt("max_connections", 1, 10000));
        c.tls = readTls(conf, ctx.baseDir);
        // As many loops as the channel may process messages at once, one a core at most.
        c.listen.threads = std::clamp(ctx.workers, 1, std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
        if (auto n = conf.find("threads")) c.listen.threads = static_cast<int>(n->asInt("threads", 1, 64));
        return std::make_unique<MllpSource>(c);
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
        auto t = tlsSetting();
        s.insert(s.end(), t.begin(), t.end());
        return s;
    }
    std::unique_ptr<core::Destination> create(const config::Node& conf, const core::BuildContext& ctx) const override {
        mllp::ClientOptions o;
        o.host = conf.find("host")->asString("host");
        o.port = static_cast<int>(conf.find("port")->asInt("port", 1, 65535));
        if (auto n = conf.find("connect_timeout")) o.connectTimeout = n->asDuration("connect_timeout");
        if (auto n = conf.find("response_timeout")) o.responseTimeout = n->asDuration("response_timeout");
        if (auto n = conf.find("max_response_bytes")) o.maxResponseBytes = n->asBytes("max_response_bytes");
        TlsConfig tls = readTls(conf, ctx.baseDir);
        o.tls = tls.enabled;
        o.caFile = tls.ca;
        bool check = !conf.find("check_ack") || conf.find("check_ack")->asBool("check_ack");
        std::size_t window = 1;
        if (auto n = conf.find("window")) window = static_cast<std::size_t>(n->asInt("window", 1, 1000));
        return std::make_unique<MllpDestination>(o, check, window);
    }
};

}  // namespace

std::unique_ptr<core::SourceFactory> mllpSourceFactory() { return std::make_unique<MllpSourceFactory>(); }
std::unique_ptr<core::DestinationFactory> mllpDestinationFactory() { return std::make_unique<MllpDestinationFactory>(); }

}  // namespace junction::connectors
