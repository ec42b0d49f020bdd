// STOW-RS requests and answers (stow.h): the multipart/related body, the
// POST to an Orthanc server of junction.yaml or to a DICOMweb root URL, and
// the answer read for the instances it stored and those it refused.
#include "connectors/dicomweb/stow.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <cstdio>

#include "engine/orthanc/server.h"

namespace junction::dicomweb {

namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;

std::string withoutTrailingSlashes(std::string s) {
    while (!s.empty() && s.back() == '/') s.pop_back();
    return s;
}

// The items of the sequence `tag` of a DICOM JSON object (none when absent).
Array::Ptr itemsOf(const Object::Ptr& o, const char* tag) {
    if (!o->has(tag) || o->get(tag).type() != typeid(Object::Ptr)) return nullptr;
    auto attr = o->get(tag).extract<Object::Ptr>();
    if (!attr->has("Value") || attr->get("Value").type() != typeid(Array::Ptr)) return nullptr;
    return attr->get("Value").extract<Array::Ptr>();
}

// The first value of the attribute `tag` as text ("" when absent).
std::string firstValue(const Object::Ptr& o, const char* tag) {
    Array::Ptr v = itemsOf(o, tag);
    if (!v || v->size() == 0 || v->get(0).isEmpty()) return {};
    return v->get(0).convert<std::string>();
}

// PS3.4 status codes a STOW-RS failure reason carries.
std::string reasonText(unsigned code) {
    if ((code & 0xFF00) == 0xA700) return "out of resources";
    if ((code & 0xFF00) == 0xA900) return "data set does not match SOP class";
    if ((code & 0xF000) == 0xC000) return "cannot understand";
    switch (code) {
    case 0x0110: return "processing failure";
    case 0x0122: return "SOP class not supported";
    case 0x0124: return "not authorized";
    case 0xA770: return "out of resources";
    default: return {};
    }
}

}  // namespace

bool readStowAnswer(const std::string& body, StowAnswer& answer) {
    answer = StowAnswer{};
    Object::Ptr o;
    try {
        Poco::Dynamic::Var v = Poco::JSON::Parser().parse(body);
        if (v.type() != typeid(Object::Ptr)) return false;
        o = v.extract<Object::Ptr>();
    } catch (const Poco::Exception&) {
        return false;
    }
    try {
        if (Array::Ptr stored = itemsOf(o, "00081199")) answer.stored = static_cast<int>(stored->size());
        if (Array::Ptr failed = itemsOf(o, "00081198")) {
            answer.failed = static_cast<int>(failed->size());
            for (std::size_t i = 0; i < failed->size(); ++i) {
                auto item = failed->get(static_cast<unsigned>(i));
                if (item.type() != typeid(Object::Ptr)) continue;
                auto it = item.extract<Object::Ptr>();
                std::string uid = firstValue(it, "00081155"), reason = firstValue(it, "00081197");
                std::string text = uid.empty() ? "an instance" : uid;
                if (!reason.empty()) {
                    unsigned code = static_cast<unsigned>(std::stoul(reason));
                    char hex[8];
                    std::snprintf(hex, sizeof hex, "0x%04X", code);
                    std::string meaning = reasonText(code);
                    text += std::string(" (") + hex + (meaning.empty() ? "" : " " + meaning) + ")";
                }
                answer.failures.push_back(text);
            }
        }
    } catch (const std::exception&) {
        return false;
    }
    return true;
}

struct StowClient::Impl {
    StowTarget t;
    std::string base;           // the root path (server) or root URL, without a trailing slash
    std::string authorization;  // for a URL
    std::unique_ptr<http::Client> client;
};

StowClient::StowClient(StowTarget target) : impl_(std::make_unique<Impl>()) {
    Impl& m = *impl_;
    m.t = std::move(target);
    if (m.t.server) {
        m.base = withoutTrailingSlashes(m.t.root);
        if (m.base.empty() || m.base.front() != '/') m.base.insert(m.base.begin(), '/');
        if (m.base == "/") m.base.clear();
        return;
    }
    m.base = withoutTrailingSlashes(m.t.url);
    if (!m.t.bearer.empty()) m.authorization = "Bearer " + m.t.bearer;
    else if (!m.t.username.empty() || !m.t.password.empty()) m.authorization = http::basicAuth(m.t.username, m.t.password);
    http::ClientOptions co;
    if (m.t.timeout.count() > 0) co.timeout = m.t.timeout;
    co.connectTimeout = std::min(co.connectTimeout, co.timeout);
    co.tls = m.t.tls;
    m.client = std::make_unique<http::Client>(co);
}

StowClient::~StowClient() = default;

std::string StowClient::describe() const {
    if (impl_->t.server) return "orthanc '" + impl_->t.server->options().name + "' " + (impl_->base.empty() ? "/" : impl_->base);
    return impl_->base;
}

void StowClient::reset() {
    if (impl_->client) impl_->client->reset();
}

StowResult StowClient::store(const std::vector<std::string_view>& instances, const std::string& studyUid) {
    Impl& m = *impl_;
    std::vector<http::BodyPart> parts;
    parts.reserve(instances.size());
    for (std::string_view bytes : instances) parts.push_back({{{"Content-Type", "application/dicom"}}, bytes});
    std::string boundary;
    std::string body = http::multipartBody(parts, &boundary);
    std::string type = "multipart/related; type=\"application/dicom\"; boundary=" + boundary;
    std::string path = m.base + "/studies" + (studyUid.empty() ? "" : "/" + studyUid);

    http::Result r;
    std::string what;
    if (m.t.server) {
        r = m.t.server->call("POST", path, body, type, m.t.timeout, "application/dicom+json");
        what = m.t.server->describe("POST", path, r);
    } else {
        http::Request q;
        q.method = "POST";
        q.url = path;
        q.headers = {{"Content-Type", type}, {"Accept", "application/dicom+json"}};
        if (!m.authorization.empty()) q.headers.push_back({"Authorization", m.authorization});
        q.body = std::move(body);
        r = m.client->send(q);
        what = r.answered ? "POST " + path + ": " + std::to_string(r.response.status) + " " + r.response.reason : r.error;
    }

    StowResult out;
    out.answer = r.response.body;
    StowAnswer a;
    bool json = r.answered && readStowAnswer(r.response.body, a);
    out.stored = a.stored;
    out.failed = a.failed;
    switch (http::classify(r)) {
    case http::Outcome::Sent: out.kind = a.failed == 0 ? StowResult::Kind::Stored : StowResult::Kind::Error; break;
    case http::Outcome::Retry: out.kind = StowResult::Kind::Retry; break;
    case http::Outcome::Error: out.kind = StowResult::Kind::Error; break;
    }
    if (out.kind == StowResult::Kind::Stored) return out;
    out.error = what;
    if (a.failed > 0) {
        out.error += ": " + std::to_string(a.failed) + " of " + std::to_string(a.failed + a.stored) +
                     (a.failed + a.stored == 1 ? " instance" : " instances") + " refused:";
        for (std::size_t i = 0; i < a.failures.size(); ++i) out.error += (i ? ", " : " ") + a.failures[i];
    } else if (r.answered && !json && !r.response.body.empty()) {
        out.error += ": " + r.response.body.substr(0, 300);
    }
    return out;
}

}  // namespace junction::dicomweb
