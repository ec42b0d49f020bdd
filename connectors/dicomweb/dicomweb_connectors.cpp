// `dicomweb` destination: the message is a DICOM file (Part 10: what the Lua
// dicom.text_sr and dicom.wrap_pdf return, a file read by a `raw` source),
// stored with one STOW-RS request into its study (stow.h). The server's answer
// is the delivery's response. Content that is no DICOM file, a refused
// instance or a 4xx answer is an Error; no answer, 429 and 5xx are retried.
#include "connectors/dicomweb/dicomweb_connectors.h"

#include <stdexcept>

#include "connectors/dicomweb/stow.h"
#include "engine/core/connector.h"
#include "engine/dicom/part10.h"
#include "engine/orthanc/server.h"

namespace junction::connectors {

namespace {

using namespace std::chrono_literals;

struct DicomwebAuth {
    std::string username, password, bearer;
};

struct DicomwebSettings {
    std::string server;
    std::string root = "/dicom-web";
    std::string url;
    DicomwebAuth auth;
    http::TlsOptions tls;
    std::optional<std::chrono::milliseconds> timeout;
};

const config::Map<DicomwebAuth>& authMap() {
    static const config::Map<DicomwebAuth> map(
        {
            {"username", &DicomwebAuth::username, "basic authentication: the user"},
            {"password", &DicomwebAuth::password, "basic authentication: the password"},
            {"bearer", &DicomwebAuth::bearer, "bearer authentication: the token"},
        },
        [](DicomwebAuth& a, const config::Node& n) {
            if (!a.bearer.empty() && (!a.username.empty() || !a.password.empty()))
                n.fail("auth takes username and password, or bearer, not both");
            if (a.username.empty() != a.password.empty()) n.fail("auth: username and password go together");
        });
    return map;
}

const config::Map<http::TlsOptions>& tlsMap() {
    using T = http::TlsOptions;
    static const config::Map<T> map(
        {
            {"ca", &T::ca, config::path, config::byDefault("the system's CAs"), "PEM file of the CAs to trust"},
            {"verify", &T::verify, "check the server's certificate and name"},
            {"cert", &T::cert, config::path, "PEM client certificate"},
            {"key", &T::key, config::path, "PEM private key of the client certificate"},
        },
        [](T& t, const config::Node& n) {
            if (t.cert.empty() != t.key.empty()) n.fail("tls: cert and key go together");
        });
    return map;
}

const config::Map<DicomwebSettings>& dicomwebMap() {
    using S = DicomwebSettings;
    static const config::Map<S> map(
        {
            {"server", &S::server, config::byDefault("none: url"),
             "an Orthanc server of junction.yaml (its URL, credentials and TLS)"},
            {"root", &S::root, "with server: the path of its DICOMweb root"},
            {"url", &S::url, config::byDefault("none: server"),
             "the DICOMweb root URL of any server, e.g. https://pacs.example.org/dicom-web"},
            {"auth", &S::auth, authMap(), "with url: { username, password } or { bearer }"},
            {"tls", &S::tls, tlsMap(), "with url: { ca, verify, cert, key }"},
            {"timeout", &S::timeout, config::range(100ms, 1h), config::byDefault("the server's; 30s for a url"),
             "per request"},
        },
        [](S& s, const config::Node& n) {
            if (s.server.empty() == s.url.empty())
                n.fail("a dicomweb destination takes server (an Orthanc of junction.yaml) or url, one of them",
                       "server: main, or url: https://pacs.example.org/dicom-web");
            if (!s.url.empty()) {
                if (s.url.rfind("http://", 0) != 0 && s.url.rfind("https://", 0) != 0)
                    n.find("url")->fail("url: '" + s.url + "' is not an http:// or https:// URL",
                                        "e.g. url: http://127.0.0.1:8042/dicom-web");
                if (const config::Node* root = n.find("root"))
                    root->fail("root goes with server; with url, the URL is the DICOMweb root");
            } else {
                for (const char* key : {"auth", "tls"})
                    if (const config::Node* k = n.find(key))
                        k->fail(std::string(key) + " goes with url; a server's credentials and TLS are those of junction.yaml");
            }
        });
    return map;
}

class DicomwebDestination : public core::Destination {
public:
    explicit DicomwebDestination(dicomweb::StowTarget t) : client_(std::move(t)) {}

    core::SendResult send(const core::Outbound& m) override {
        if (!dicom::isPart10(m.content))
            return core::SendResult::fail(
                "the message is no DICOM file (Part 10: \"DICM\" after a 128-byte preamble); a dicomweb destination "
                "stores DICOM files, such as what dicom.text_sr or dicom.wrap_pdf return");
        dicom::Part10Facts facts;
        try {
            facts = dicom::part10Facts(m.content);
        } catch (const std::invalid_argument& e) {
            return core::SendResult::fail(std::string("the message is no readable DICOM file: ") + e.what());
        }
        dicomweb::StowResult r = client_.store({m.content}, facts.studyInstanceUid);
        switch (r.kind) {
        case dicomweb::StowResult::Kind::Stored: return core::SendResult::ok(r.answer);
        case dicomweb::StowResult::Kind::Retry: return core::SendResult::retry(r.error, r.answer);
        default: return core::SendResult::fail(r.error, r.answer);
        }
    }

    void stop() override { client_.reset(); }
    std::string describe() const override { return "dicomweb " + client_.describe(); }

private:
    dicomweb::StowClient client_;
};

class DicomwebDestinationFactory : public core::MappedDestinationFactory<DicomwebSettings> {
public:
    DicomwebDestinationFactory() : MappedDestinationFactory(dicomwebMap()) {}

protected:
    std::unique_ptr<core::Destination> build(DicomwebSettings s, const core::BuildContext& ctx) const override {
        dicomweb::StowTarget t;
        t.timeout = s.timeout.value_or(0ms);
        if (!s.server.empty()) {
            t.server = ctx.orthanc ? ctx.orthanc->find(s.server) : nullptr;
            if (!t.server) {
                std::string names;
                if (ctx.orthanc)
                    for (const auto& n : ctx.orthanc->names()) names += (names.empty() ? "" : ", ") + n;
                throw std::runtime_error("destination (dicomweb): no orthanc server named '" + s.server +
                                         "' in junction.yaml (" + (names.empty() ? "none is" : names + " are") + ")");
            }
            t.root = s.root;
        } else {
            t.url = s.url;
            t.username = s.auth.username;
            t.password = s.auth.password;
            t.bearer = s.auth.bearer;
            t.tls = s.tls;
        }
        return std::make_unique<DicomwebDestination>(std::move(t));
    }
};

}  // namespace

void registerDicomweb(core::ConnectorRegistry& registry) {
    registry.addDestination("dicomweb", std::make_unique<DicomwebDestinationFactory>());
}

}  // namespace junction::connectors
