// The `http` connector type's registration, and what its source and
// destination share: the `auth` section and the media types of messages.
#include "connectors/http/http_connectors.h"

#include <cctype>

#include "connectors/http/http_settings.h"
#include "engine/http/client.h"

namespace junction::connectors {

namespace http_connector {

std::string HttpAuth::header() const {
    if (type == "basic") return http::basicAuth(username, password);
    if (type == "bearer") return "Bearer " + token;
    return {};
}

const config::Map<HttpAuth>& httpAuthMap() {
    using A = HttpAuth;
    static const config::Map<A> map(
        {
            {"type", &A::type, config::oneOf({"none", "basic", "bearer"}), "how requests authenticate"},
            {"username", &A::username, "basic: the user name"},
            {"password", &A::password, "basic: the password"},
            {"token", &A::token, "bearer: the token"},
        },
        [](A& a, const config::Node& n) {
            auto misplaced = [&](const char* key, const char* belongs) {
                if (auto k = n.find(key)) k->fail(std::string("auth.") + key + " is for type: " + belongs);
            };
            if (a.type != "basic") {
                misplaced("username", "basic");
                misplaced("password", "basic");
            }
            if (a.type != "bearer") misplaced("token", "bearer");
            if (a.type == "basic" && a.username.empty()) n.fail("auth type basic needs username (and password)");
            if (a.type == "bearer" && a.token.empty()) n.fail("auth type bearer needs token");
        });
    return map;
}

std::string contentTypeOfDataType(const std::string& dataType) {
    if (dataType == "json") return "application/json";
    if (dataType == "xml") return "application/xml";
    if (dataType == "hl7v2") return "x-application/hl7-v2+er7";
    return "text/plain";
}

std::string contentTypeOfContent(std::string_view content) {
    std::size_t i = 0;
    while (i < content.size() && std::isspace(static_cast<unsigned char>(content[i]))) ++i;
    std::string_view s = content.substr(i);
    if (!s.empty() && (s[0] == '{' || s[0] == '[')) return contentTypeOfDataType("json");
    if (s.starts_with("MSH") || s.starts_with("FHS") || s.starts_with("BHS")) return contentTypeOfDataType("hl7v2");
    if (!s.empty() && s[0] == '<') return contentTypeOfDataType("xml");
    return contentTypeOfDataType("raw");
}

}  // namespace http_connector

void registerHttp(core::ConnectorRegistry& registry) {
    registry.addSource("http", http_connector::sourceFactory());
    registry.addDestination("http", http_connector::destinationFactory());
}

}  // namespace junction::connectors
