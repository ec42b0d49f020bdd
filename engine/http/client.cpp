// The HTTP client (client.h) on POCO's HTTPClientSession / HTTPSClientSession.
#include "engine/http/client.h"

#include <Poco/Base64Encoder.h>
#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/URI.h>

#include <algorithm>
#include <cctype>
#include <istream>
#include <mutex>
#include <optional>
#include <random>
#include <utility>
#include <sstream>

namespace junction::http {

std::string headerValue(const std::vector<Header>& headers, std::string_view name) {
    for (const auto& h : headers)
        if (h.name.size() == name.size() &&
            std::equal(h.name.begin(), h.name.end(), name.begin(), [](char a, char b) {
                return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
            }))
            return h.value;
    return {};
}

Outcome classify(const Result& r) {
    if (!r.answered) return Outcome::Retry;
    int s = r.response.status;
    if (s >= 200 && s < 300) return Outcome::Sent;
    if (s == 429 || s >= 500) return Outcome::Retry;
    return Outcome::Error;
}

namespace {

Poco::Timespan span(std::chrono::milliseconds ms) { return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(ms.count()) * 1000); }

struct Target {
    std::string scheme, host, pathAndQuery;
    unsigned short port = 0;
    std::string key() const { return scheme + "://" + host + ":" + std::to_string(port); }
};

Target parse(const std::string& url) {
    Poco::URI uri(url);
    Target t;
    t.scheme = uri.getScheme();
    if (t.scheme != "http" && t.scheme != "https") throw std::invalid_argument("not an http or https URL: " + url);
    t.host = uri.getHost();
    if (t.host.empty()) throw std::invalid_argument("no host in URL: " + url);
    t.port = uri.getPort();
    t.pathAndQuery = uri.getPathEtc();
    if (t.pathAndQuery.empty()) t.pathAndQuery = "/";
    return t;
}

// Reads at most `limit` bytes of `in`; false when there was more.
bool readLimited(std::istream& in, std::string& out, std::size_t limit) {
    char buf[16384];
    while (in) {
        in.read(buf, sizeof buf);
        std::streamsize n = in.gcount();
        if (n <= 0) break;
        if (out.size() + static_cast<std::size_t>(n) > limit) return false;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return true;
}

}  // namespace

struct Client::Impl {
    ClientOptions o;
    std::mutex m;
    std::string sessionKey;
    std::unique_ptr<Poco::Net::HTTPClientSession> session;
    Poco::Net::Context::Ptr context;
    // The socket of the request in progress, for abort() (which does not take `m`).
    std::mutex activeMutex;
    std::optional<Poco::Net::StreamSocket> active;
    bool aborted = false;

    Poco::Net::Context::Ptr tlsContext() {
        if (!context) {
            auto mode = o.tls.verify ? Poco::Net::Context::VERIFY_RELAXED : Poco::Net::Context::VERIFY_NONE;
            Poco::Net::Context::Params p;
            p.privateKeyFile = o.tls.key;
            p.certificateFile = o.tls.cert;
            p.caLocation = o.tls.ca;
            p.verificationMode = mode;
            p.loadDefaultCAs = o.tls.ca.empty();
            context = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, p);
        }
        return context;
    }

    Poco::Net::HTTPClientSession& sessionFor(const Target& t, bool* reused) {
        *reused = session && sessionKey == t.key() && session->connected();
        if (!*reused) {
            session.reset();
            if (t.scheme == "https") session = std::make_unique<Poco::Net::HTTPSClientSession>(t.host, t.port, tlsContext());
            else session = std::make_unique<Poco::Net::HTTPClientSession>(t.host, t.port);
            session->setKeepAlive(true);
            session->setTimeout(span(o.connectTimeout), span(o.timeout), span(o.timeout));
            sessionKey = t.key();
        }
        return *session;
    }

    // Forgets the socket of the request that ended; true when abort() cut it short.
    bool finishActive() {
        std::lock_guard<std::mutex> lock(activeMutex);
        active.reset();
        return std::exchange(aborted, false);
    }

    Result once(const Target& t, const Request& r, bool* reused) {
        Result out;
        const std::string where = r.method + " " + t.scheme + "://" + t.host + ":" + std::to_string(t.port) + t.pathAndQuery;
        try {
            auto& s = sessionFor(t, reused);
            const auto wait = r.timeout.count() > 0 ? r.timeout : o.timeout;
            s.setTimeout(span(std::min(o.connectTimeout, wait)), span(wait), span(wait));
            if (*reused) {
                s.socket().setSendTimeout(span(wait));
                s.socket().setReceiveTimeout(span(wait));
            }
            {
                std::lock_guard<std::mutex> lock(activeMutex);
                if (aborted) {
                    session.reset();
                    return Result{false, {}, where + ": aborted"};
                }
                active = s.socket();
            }
            Poco::Net::HTTPRequest req(r.method, t.pathAndQuery, Poco::Net::HTTPMessage::HTTP_1_1);
            req.setKeepAlive(true);
            for (const auto& h : r.headers) req.set(h.name, h.value);
            if (!r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH")
                req.setContentLength(static_cast<std::streamsize>(r.body.size()));
            std::ostream& body = s.sendRequest(req);
            body.write(r.body.data(), static_cast<std::streamsize>(r.body.size()));
            body.flush();
            Poco::Net::HTTPResponse res;
            std::istream& in = s.receiveResponse(res);
            out.answered = true;
            out.response.status = static_cast<int>(res.getStatus());
            out.response.reason = res.getReason();
            for (const auto& [k, v] : res) out.response.headers.push_back({k, v});
            if (!readLimited(in, out.response.body, o.maxResponseBytes)) {
                session.reset();
                return Result{false, {}, where + ": response larger than " + std::to_string(o.maxResponseBytes) + " bytes"};
            }
            if (!res.getKeepAlive()) session.reset();
        } catch (const Poco::TimeoutException&) {
            session.reset();
            out = Result{false, {}, where + ": timed out"};
        } catch (const Poco::Net::ConnectionRefusedException&) {
            session.reset();
            out = Result{false, {}, where + ": connection refused"};
        } catch (const Poco::Net::SSLException& e) {
            session.reset();
            out = Result{false, {}, where + ": TLS: " + e.displayText()};
        } catch (const Poco::Exception& e) {
            session.reset();
            out = Result{false, {}, where + ": " + e.displayText()};
        } catch (const std::exception& e) {
            session.reset();
            out = Result{false, {}, where + ": " + e.what()};
        }
        return out;
    }
};

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>()) { impl_->o = std::move(options); }

Client::~Client() = default;

Result Client::send(const Request& request) {
    Target t;
    try {
        t = parse(request.url);
    } catch (const std::exception& e) {
        return Result{false, {}, e.what()};
    }
    std::lock_guard<std::mutex> lock(impl_->m);
    bool reused = false;
    Result r = impl_->once(t, request, &reused);
    bool aborted = impl_->finishActive();
    // A kept-alive connection closed by the server while idle fails at once
    // without an answer: open a new one and send again.
    if (!r.answered && reused && !aborted) {
        r = impl_->once(t, request, &reused);
        aborted = impl_->finishActive();
    }
    if (aborted && !r.answered && r.error.find("aborted") == std::string::npos) r.error += " (aborted)";
    return r;
}

void Client::abort() {
    std::lock_guard<std::mutex> lock(impl_->activeMutex);
    impl_->aborted = true;
    if (!impl_->active) return;
    try {
        impl_->active->shutdown();
    } catch (const Poco::Exception&) {
    }
}

void Client::reset() {
    std::lock_guard<std::mutex> lock(impl_->m);
    impl_->session.reset();
}

std::string basicAuth(const std::string& user, const std::string& password) {
    std::ostringstream out;
    Poco::Base64Encoder enc(out);
    enc.rdbuf()->setLineLength(0);
    enc << user << ':' << password;
    enc.close();
    return "Basic " + out.str();
}

namespace {
// A name or file name inside a part's header, as browsers write them: a quote
// or a line break would end the value or the header early.
std::string dispositionValue(std::string_view v) {
    std::string out;
    for (char c : v) {
        if (c == '"') out += "%22";
        else if (c == '\r') out += "%0D";
        else if (c == '\n') out += "%0A";
        else out += c;
    }
    return out;
}
}  // namespace

std::string multipartBody(const std::vector<BodyPart>& parts, std::string* boundary) {
    static thread_local std::mt19937_64 rng(std::random_device{}());
    std::string b = "----junction";
    for (int i = 0; i < 2; ++i) {
        char hex[17];
        std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(rng()));
        b += hex;
    }
    std::size_t size = b.size() + 8;
    for (const auto& p : parts) {
        size += b.size() + 8 + p.data.size();
        for (const auto& h : p.headers) size += h.name.size() + h.value.size() + 4;
    }
    std::string out;
    out.reserve(size);
    for (const auto& p : parts) {
        out += "--" + b + "\r\n";
        for (const auto& h : p.headers) out += h.name + ": " + h.value + "\r\n";
        out += "\r\n";
        out += p.data;
        out += "\r\n";
    }
    out += "--" + b + "--\r\n";
    if (boundary) *boundary = b;
    return out;
}

std::string multipartBody(const std::vector<FormPart>& parts, std::string* boundary) {
    std::vector<BodyPart> body;
    for (const auto& p : parts) {
        std::string disposition = "form-data; name=\"" + dispositionValue(p.name) + "\"";
        if (!p.filename.empty()) disposition += "; filename=\"" + dispositionValue(p.filename) + "\"";
        BodyPart part{{{"Content-Disposition", disposition}}, p.data};
        if (!p.contentType.empty()) part.headers.push_back({"Content-Type", dispositionValue(p.contentType)});
        body.push_back(std::move(part));
    }
    return multipartBody(body, boundary);
}

std::string urlEncode(std::string_view s) {
    std::string out;
    static const char* hex = "0123456789ABCDEF";
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
    return out;
}

}  // namespace junction::http
