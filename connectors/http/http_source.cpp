// The `http` source: an HTTP(S) listener on a port of its own taking POST and
// PUT requests on one path (or any), each body one message. A request is
// answered once its message is durably stored (or, with ack:
// after_destinations or script, once the channel has its answer): 200 with
// the message id or the channel's response, 400 for a body the channel cannot
// read (kept as ERROR), 401 without the credentials, 405, 413, 503 while the
// channel cannot take messages.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>

#include "connectors/http/http_settings.h"
#include "engine/http/server.h"
#include "engine/lua/script.h"
#include "engine/util/json_text.h"

namespace junction::connectors::http_connector {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct SourceTls {
    std::string cert, key, ca;
    bool verifyClient = false;
};

const config::Map<SourceTls>& sourceTlsMap() {
    using T = SourceTls;
    static const config::Map<T> map(
        {
            {"cert", &T::cert, config::path, "PEM certificate"},
            {"key", &T::key, config::path, "PEM private key"},
            {"ca", &T::ca, config::path, "PEM CA certificates client certificates must come from"},
            {"verify_client", &T::verifyClient, "require a client certificate signed by ca"},
        },
        [](T& t, const config::Node& n) {
            if (t.cert.empty() || t.key.empty()) n.fail("tls needs cert and key");
            if (t.verifyClient && t.ca.empty())
                n.find("verify_client")->fail("verify_client needs ca (the CAs client certificates must come from)");
        });
    return map;
}

struct HttpSourceSettings {
    int port = 0;
    std::string host = "0.0.0.0";
    std::string path;
    std::size_t maxBody = 16u << 20;
    int threads = 16;
    std::chrono::milliseconds timeout{30000};
    HttpAuth auth;
    std::optional<SourceTls> tls;
    std::string responseContentType;
};

const config::Map<HttpSourceSettings>& httpSourceMap() {
    using S = HttpSourceSettings;
    static const config::Map<S> map{
        {"port", &S::port, config::required, config::range(1, 65535), "TCP port to listen on"},
        {"host", &S::host, "address to bind"},
        {"path", &S::path, config::check([](const std::string& p) {
             return p.empty() || p[0] == '/' ? std::string() : "path must start with '/'";
         }),
         config::byDefault("any"), "the one path requests are taken on (others get 404)"},
        {"max_body", &S::maxBody, config::bytes, config::range(1, 1ull << 30), "largest request body (larger: 413)"},
        {"threads", &S::threads, config::range(1, 256),
         "connections served at once (a kept-alive connection holds its thread until it closes)"},
        {"timeout", &S::timeout, config::range(1s, 1h),
         "reading a request and sending its answer; also how long a request waits while the channel is paused or full"},
        {"auth", &S::auth, httpAuthMap(), "credentials every request must carry (401 without them)"},
        {"tls", &S::tls, sourceTlsMap(), "HTTPS on the port"},
        {"response_content_type", &S::responseContentType, config::byDefault("that of the channel's data type"),
         "Content-Type of a response the channel gives (an ACK, a relayed or scripted response)"},
    };
    return map;
}

// Credentials compared in a time that does not tell how much of them matched.
bool equalConstantTime(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

// What the request handlers and the engine's answers share: it outlives the
// source, since an answer may come after the source stopped.
struct Shared {
    std::mutex m;
    std::condition_variable cv;
    bool stopping = false;
    Clock::time_point giveUpAt{};
};

struct Pending {
    bool done = false;
    core::SubmitResult result;
};

class HttpSource : public core::Source {
public:
    HttpSource(HttpSourceSettings s, const std::string& dataType)
        : s_(std::move(s)),
          dataType_(lua::parseDataType(dataType).value_or(lua::DataType::Raw)),
          responseType_(s_.responseContentType.empty() ? contentTypeOfDataType(dataType) : s_.responseContentType),
          authorization_(s_.auth.header()),
          shared_(std::make_shared<Shared>()) {}
    ~HttpSource() override { stop(); }

    void start(core::SourceContext& ctx) override {
        ctx_ = &ctx;
        http::ServerOptions o;
        o.host = s_.host;
        o.port = s_.port;
        o.maxBodyBytes = s_.maxBody;
        o.threads = s_.threads;
        o.timeout = s_.timeout;
        if (s_.tls) {
            o.tls.enabled = true;
            o.tls.cert = s_.tls->cert;
            o.tls.key = s_.tls->key;
            o.tls.ca = s_.tls->ca;
            o.tls.verifyClient = s_.tls->verifyClient;
        }
        o.event = [this](const std::string& type, const std::string& text) { ctx_->event(type, describe() + ": " + text); };
        {
            std::lock_guard<std::mutex> lock(shared_->m);
            shared_->stopping = false;
        }
        server_ = std::make_unique<http::Server>(o, [this](const http::ServerRequest& r) { return handle(r); });
        server_->start();
    }

    void stop() override {
        if (!server_) return;
        {
            // Requests waiting for the channel's answer get it for a while
            // longer (a commit is a matter of milliseconds), then 503.
            std::lock_guard<std::mutex> lock(shared_->m);
            shared_->stopping = true;
            shared_->giveUpAt = Clock::now() + 3s;
        }
        shared_->cv.notify_all();
        server_->stop();
        server_.reset();
    }

    bool listens() const override { return true; }
    std::string describe() const override {
        return std::string(s_.tls ? "https " : "http ") + s_.host + ":" + std::to_string(s_.port) + (s_.path.empty() ? "" : s_.path);
    }

private:
    static http::ServerResponse error(int status, const std::string& text, std::vector<http::Header> headers = {}) {
        return {status, "application/json", std::move(headers), http::jsonError(text)};
    }

    http::ServerResponse handle(const http::ServerRequest& req) {
        if (!s_.path.empty() && req.path != s_.path) return error(404, "no such path: " + req.path);
        if (!authorization_.empty() && !equalConstantTime(req.header("Authorization"), authorization_))
            return error(401, "authentication required",
                         {{"WWW-Authenticate", s_.auth.type == "basic" ? "Basic realm=\"junction\"" : "Bearer realm=\"junction\""}});
        if (req.method != "POST" && req.method != "PUT")
            return error(405, "method " + req.method + " not allowed: POST or PUT", {{"Allow", "POST, PUT"}});
        if (auto refused = admit()) return *refused;

        core::Inbound in;
        in.raw = req.body;
        in.origin = "http " + req.peer + " " + req.method + " " + req.path + (req.query.empty() ? "" : "?" + req.query);
        in.error = lua::payloadError(dataType_, in.raw);
        auto pending = std::make_shared<Pending>();
        auto shared = shared_;
        ctx_->submit(std::move(in), [pending, shared](core::SubmitResult r) {
            {
                std::lock_guard<std::mutex> lock(shared->m);
                pending->result = std::move(r);
                pending->done = true;
            }
            shared->cv.notify_all();
        });
        core::SubmitResult r;
        {
            std::unique_lock<std::mutex> lock(shared->m);
            while (!pending->done) {
                if (shared->stopping && Clock::now() >= shared->giveUpAt)
                    return error(503, "channel " + ctx_->channelName() + " is stopping: the message may or may not be stored",
                                 {{"Retry-After", "5"}});
                shared->cv.wait_for(lock, 100ms);
            }
            r = std::move(pending->result);
        }
        return answer(r);
    }

    // Back-pressure and pauses: a request waits (up to `timeout`) while the
    // channel takes no messages; 503 when it still does not, or stops.
    std::optional<http::ServerResponse> admit() {
        const auto until = Clock::now() + s_.timeout;
        for (;;) {
            switch (ctx_->admission()) {
                case core::SourceContext::Admission::Accept: return std::nullopt;
                case core::SourceContext::Admission::Stop:
                    return error(503, "channel " + ctx_->channelName() + " is stopping", {{"Retry-After", "5"}});
                case core::SourceContext::Admission::Wait: break;
            }
            {
                std::lock_guard<std::mutex> lock(shared_->m);
                if (shared_->stopping) return error(503, "channel " + ctx_->channelName() + " is stopping", {{"Retry-After", "5"}});
            }
            if (Clock::now() >= until)
                return error(503, "channel " + ctx_->channelName() + " takes no messages now (paused or its queues are full)",
                             {{"Retry-After", "5"}});
            std::this_thread::sleep_for(20ms);
        }
    }

    http::ServerResponse answer(const core::SubmitResult& r) const {
        if (!r.accepted) return error(503, r.error, {{"Retry-After", "5"}});
        std::vector<http::Header> headers{{"X-Message-Id", std::to_string(r.id)}};
        std::string idJson = "{\"id\": " + std::to_string(r.id);
        if (r.malformed) {
            // Kept as ERROR; an HL7 sender gets its NAK, others the reason.
            if (!r.response.empty()) return {400, responseType_, headers, r.response};
            return {400, "application/json", headers, idJson + ", \"error\": " + util::jsonString(r.error) + "}"};
        }
        int status = r.error.empty() ? 200 : 500;  // 500: the destination the answer waited for failed
        if (!r.response.empty()) return {status, responseType_, headers, r.response};
        if (r.error.empty()) return {200, "application/json", headers, idJson + "}"};
        return {500, "application/json", headers, idJson + ", \"error\": " + util::jsonString(r.error) + "}"};
    }

    HttpSourceSettings s_;
    lua::DataType dataType_;
    std::string responseType_;
    std::string authorization_;
    std::shared_ptr<Shared> shared_;
    core::SourceContext* ctx_ = nullptr;
    std::unique_ptr<http::Server> server_;
};

class HttpSourceFactory : public core::MappedSourceFactory<HttpSourceSettings> {
public:
    HttpSourceFactory() : MappedSourceFactory(httpSourceMap()) {}
    std::string defaultDataType() const override { return "json"; }

protected:
    int port(const HttpSourceSettings& s) const override { return s.port; }
    std::unique_ptr<core::Source> build(HttpSourceSettings s, const core::BuildContext& ctx) const override {
        return std::make_unique<HttpSource>(std::move(s), ctx.dataType);
    }
};

}  // namespace

std::unique_ptr<core::SourceFactory> sourceFactory() { return std::make_unique<HttpSourceFactory>(); }

}  // namespace junction::connectors::http_connector
