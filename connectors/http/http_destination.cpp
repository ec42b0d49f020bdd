// The `http` destination: each message becomes one request to an HTTP API
// (URL and header values templated from the message, basic or bearer auth,
// the content as the body or a multipart/form-data body built from it). 2xx is
// sent; 429, 5xx and no answer are retried; other answers are errors. What the
// peer answered is kept as JSON: {"status", "headers", "body"}.
#include <Poco/Base64Decoder.h>
#include <Poco/Base64Encoder.h>
#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <iterator>
#include <map>
#include <sstream>

#include "connectors/http/http_settings.h"
#include "engine/core/message_template.h"
#include "engine/http/client.h"
#include "engine/util/json_text.h"

namespace junction::connectors::http_connector {

namespace {

using namespace std::chrono_literals;

struct DestinationTls {
    std::string ca, cert, key;
    bool verify = true;
};

const config::Map<DestinationTls>& destinationTlsMap() {
    using T = DestinationTls;
    static const config::Map<T> map(
        {
            {"ca", &T::ca, config::path, config::byDefault("the system's CAs"), "PEM CA certificates the server's must come from"},
            {"verify", &T::verify, "check the server's certificate and name"},
            {"cert", &T::cert, config::path, "PEM client certificate (for servers that ask for one)"},
            {"key", &T::key, config::path, "PEM private key of cert"},
        },
        [](T& t, const config::Node& n) {
            if (t.cert.empty() != t.key.empty()) n.fail("tls needs both cert and key, or neither");
        });
    return map;
}

struct HttpDestinationSettings {
    std::string url;
    std::string method = "POST";
    config::StringMap headers;
    HttpAuth auth;
    std::string contentType;
    std::string body = "content";
    DestinationTls tls;
    std::chrono::milliseconds connectTimeout{5000};
    std::chrono::milliseconds timeout{30000};
    std::size_t maxResponseBytes = 16u << 20;
};

std::string templateError(const std::string& text) { return core::MessageTemplate::check(text); }

bool sendsBody(const std::string& method) { return method == "POST" || method == "PUT" || method == "PATCH"; }

bool headerName(const std::string& name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
        return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
    });
}

bool sameName(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

const config::Map<HttpDestinationSettings>& httpDestinationMap() {
    using S = HttpDestinationSettings;
    static const config::Map<S> map(
        {
            {"url", &S::url, config::required, config::check(templateError),
             std::string("http:// or https:// URL; fields (URL-encoded): ") + core::MessageTemplate::kFields},
            {"method", &S::method, config::oneOf({"POST", "PUT", "PATCH", "GET", "DELETE"}),
             "request method (GET and DELETE send no body)"},
            {"headers", &S::headers, "request headers: name: value (values take the url's fields)"},
            {"auth", &S::auth, httpAuthMap(), "credentials sent with every request"},
            {"content_type", &S::contentType, config::byDefault("by content: JSON, HL7, XML or text/plain"),
             "Content-Type of the body"},
            {"body", &S::body, config::oneOf({"content", "multipart", "none"}),
             "content: the message as it is; multipart: a multipart/form-data body from the message's JSON parts; "
             "none: no body (the message only fills the url's fields)"},
            {"tls", &S::tls, destinationTlsMap(), "for https:// URLs: the CAs to trust, verification, a client certificate"},
            {"connect_timeout", &S::connectTimeout, config::range(100ms, 5min), "give up a connection attempt after this long"},
            {"timeout", &S::timeout, config::range(100ms, 1h), "wait this long for each answer"},
            {"max_response_bytes", &S::maxResponseBytes, config::bytes, config::range(1024, 1ull << 30),
             "largest accepted answer"},
        },
        [](S& s, const config::Node& n) {
            std::string_view url = s.url;
            if (!url.starts_with("http://") && !url.starts_with("https://"))
                n.find("url")->fail("url must start with http:// or https://", "e.g. url: https://emr.example.org/api/orders");
            if (url.substr(0, url.find('/', 8)).find("${") != std::string_view::npos)
                n.find("url")->fail("the url's scheme, host and port cannot take fields");
            const config::Node* headers = n.find("headers");
            for (const auto& [name, value] : s.headers) {
                if (!headerName(name)) headers->fail("headers: '" + name + "' is no header name");
                if (std::string why = templateError(value); !why.empty()) headers->find(name)->fail("headers." + name + ": " + why);
                if (sameName(name, "Authorization") && s.auth.type != "none")
                    headers->fail("headers sets Authorization and auth sets it too: keep one");
                if (sameName(name, "Content-Type") && n.find("content_type"))
                    headers->fail("headers sets Content-Type and content_type sets it too: keep one");
                if (sameName(name, "Content-Length") || sameName(name, "Host") || sameName(name, "Transfer-Encoding"))
                    headers->fail("headers cannot set " + name + ": the client sets it");
            }
            if (s.body == "none" && n.find("content_type"))
                n.find("content_type")->fail("body: none sends no body, so no Content-Type");
            if (s.body == "multipart") {
                if (!sendsBody(s.method)) n.find("body")->fail("body: multipart needs method POST, PUT or PATCH");
                if (n.find("content_type")) n.find("content_type")->fail("body: multipart sets the Content-Type itself");
            }
        });
    return map;
}

// ---------------------------------------------------------------- multipart

// The parts of a multipart body from the message: a JSON array of
// {"name", "value" | "base64", "filename"?, "content_type"?}. Empty with
// `error` set when the message is not that.
std::vector<http::FormPart> formParts(const std::string& content, std::string& error) {
    Poco::Dynamic::Var root;
    try {
        root = Poco::JSON::Parser().parse(content);
    } catch (const Poco::Exception& e) {
        error = "body: multipart needs the message to be a JSON array of parts, and it is not JSON (" + e.displayText() + ")";
        return {};
    }
    if (root.type() != typeid(Poco::JSON::Array::Ptr)) {
        error = "body: multipart needs the message to be a JSON array of parts";
        return {};
    }
    auto list = root.extract<Poco::JSON::Array::Ptr>();
    std::vector<http::FormPart> parts;
    for (unsigned i = 0; i < list->size(); ++i) {
        std::string which = "multipart part " + std::to_string(i + 1);
        auto o = list->getObject(i);
        if (!o) {
            error = which + " is not an object";
            return {};
        }
        auto text = [&](const std::string& key, std::string& out) {
            if (!o->has(key)) return true;
            Poco::Dynamic::Var v = o->get(key);
            if (!v.isString()) {
                error = which + ": " + key + " must be a string";
                return false;
            }
            out = v.extract<std::string>();
            return true;
        };
        for (const auto& [key, value] : *o)
            if (key != "name" && key != "value" && key != "base64" && key != "filename" && key != "content_type") {
                error = which + ": unknown key '" + key + "' (name, value or base64, filename, content_type)";
                return {};
            }
        http::FormPart p;
        std::string encoded;
        if (!text("name", p.name) || !text("value", p.data) || !text("base64", encoded) || !text("filename", p.filename) ||
            !text("content_type", p.contentType))
            return {};
        if (p.name.empty()) {
            error = which + " has no name";
            return {};
        }
        if (o->has("value") == o->has("base64")) {
            error = which + " (" + p.name + ") needs one of value (text) or base64 (bytes)";
            return {};
        }
        if (o->has("base64")) {
            std::string clean;
            for (char c : encoded)
                if (!std::isspace(static_cast<unsigned char>(c))) clean += c;
            std::istringstream in(clean);
            Poco::Base64Decoder dec(in);
            try {
                p.data.assign(std::istreambuf_iterator<char>(dec), std::istreambuf_iterator<char>());
            } catch (const Poco::Exception&) {
                error = which + " (" + p.name + "): base64 is not base64";
                return {};
            }
        }
        parts.push_back(std::move(p));
    }
    if (parts.empty()) error = "body: multipart needs at least one part";
    return parts;
}

// ---------------------------------------------------------------- the answer

// What the peer answered, as kept and shown to a response script:
// {"status": 201, "headers": {"location": "..."}, "body": "..."} (header names
// in lower case; a body that is no UTF-8 text as "body_base64").
std::string responseJson(const http::Response& r) {
    std::map<std::string, std::string> headers;
    for (const auto& h : r.headers) {
        std::string name = h.name;
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        auto [it, fresh] = headers.emplace(name, h.value);
        if (!fresh) it->second += ", " + h.value;
    }
    std::string out = "{\"status\":" + std::to_string(r.status) + ",\"headers\":{";
    bool first = true;
    for (const auto& [name, value] : headers) {
        if (!first) out += ',';
        first = false;
        util::appendJsonString(out, name);
        out += ':';
        util::appendJsonString(out, value);
    }
    out += "},";
    if (util::validUtf8(r.body)) {
        out += "\"body\":";
        util::appendJsonString(out, r.body);
    } else {
        std::ostringstream b64;
        Poco::Base64Encoder enc(b64);
        enc.rdbuf()->setLineLength(0);
        enc.write(r.body.data(), static_cast<std::streamsize>(r.body.size()));
        enc.close();
        out += "\"body_base64\":";
        util::appendJsonString(out, b64.str());
    }
    return out + "}";
}

// "HTTP 404 Not Found: <the start of the body>"
std::string statusText(const http::Response& r) {
    std::string out = "HTTP " + std::to_string(r.status) + (r.reason.empty() ? "" : " " + r.reason);
    std::string body = r.body.substr(0, 300);
    if (!util::validUtf8(body)) body.clear();
    for (char& c : body)
        if (c == '\r' || c == '\n') c = ' ';
    if (!body.empty()) out += ": " + body + (r.body.size() > 300 ? "..." : "");
    return out;
}

// Header values take message fields: line breaks in them would end the header.
std::string headerSafe(std::string_view v) {
    std::string out(v);
    for (char& c : out)
        if (c == '\r' || c == '\n') c = ' ';
    return out;
}

class HttpDestination : public core::Destination {
public:
    explicit HttpDestination(HttpDestinationSettings s)
        : s_(std::move(s)), url_(s_.url), client_(clientOptions(s_)), authorization_(s_.auth.header()) {
        for (const auto& [name, value] : s_.headers) headers_.emplace_back(name, core::MessageTemplate(value));
    }

    core::SendResult send(const core::Outbound& m) override {
        http::Request r;
        r.method = s_.method;
        r.url = url_.expand(m, http::urlEncode);
        for (const auto& [name, value] : headers_) r.headers.push_back({name, value.expand(m, headerSafe)});
        if (!authorization_.empty()) r.headers.push_back({"Authorization", authorization_});
        if (sendsBody(s_.method) && s_.body == "none") {
            r.body.clear();  // an empty POST: Content-Length 0, no Content-Type
        } else if (sendsBody(s_.method)) {
            std::string type = s_.contentType;
            if (s_.body == "multipart") {
                std::string error;
                auto parts = formParts(m.content, error);
                if (!error.empty()) return core::SendResult::fail(error);
                std::string boundary;
                r.body = http::multipartBody(parts, &boundary);
                type = "multipart/form-data; boundary=" + boundary;
            } else {
                r.body = m.content;
                if (type.empty()) type = contentTypeOfContent(m.content);
            }
            if (http::headerValue(r.headers, "Content-Type").empty()) r.headers.push_back({"Content-Type", type});
        }
        http::Result res = client_.send(r);
        if (!res.answered) return core::SendResult::retry(res.error);
        std::string answer = responseJson(res.response);
        switch (http::classify(res)) {
            case http::Outcome::Sent: return core::SendResult::ok(std::move(answer));
            case http::Outcome::Retry: return core::SendResult::retry(where(r) + ": " + statusText(res.response), std::move(answer));
            case http::Outcome::Error: break;
        }
        return core::SendResult::fail(where(r) + ": " + statusText(res.response), std::move(answer));
    }

    void stop() override { client_.reset(); }
    void abort() override { client_.abort(); }
    std::string describe() const override { return "http " + s_.method + " " + s_.url; }

private:
    static http::ClientOptions clientOptions(const HttpDestinationSettings& s) {
        http::ClientOptions o;
        o.connectTimeout = std::min(s.connectTimeout, s.timeout);
        o.timeout = s.timeout;
        o.maxResponseBytes = s.maxResponseBytes;
        o.tls.ca = s.tls.ca;
        o.tls.verify = s.tls.verify;
        o.tls.cert = s.tls.cert;
        o.tls.key = s.tls.key;
        return o;
    }
    // "POST https://host/path" without the query (it may carry values of the message).
    static std::string where(const http::Request& r) { return r.method + " " + r.url.substr(0, r.url.find('?')); }

    HttpDestinationSettings s_;
    core::MessageTemplate url_;
    std::vector<std::pair<std::string, core::MessageTemplate>> headers_;
    http::Client client_;
    std::string authorization_;
};

class HttpDestinationFactory : public core::MappedDestinationFactory<HttpDestinationSettings> {
public:
    HttpDestinationFactory() : MappedDestinationFactory(httpDestinationMap()) {}

protected:
    std::unique_ptr<core::Destination> build(HttpDestinationSettings s, const core::BuildContext&) const override {
        return std::make_unique<HttpDestination>(std::move(s));
    }
};

}  // namespace

std::unique_ptr<core::DestinationFactory> destinationFactory() { return std::make_unique<HttpDestinationFactory>(); }

}  // namespace junction::connectors::http_connector
