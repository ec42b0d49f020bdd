// The `orthanc` connector type's registration and what its source and
// destination share: the server a channel names, Orthanc's error answers.
#include "connectors/orthanc/orthanc_connectors.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <stdexcept>

#include "connectors/orthanc/orthanc_common.h"

namespace junction::connectors {

namespace orthanc_connector {

orthanc::Server& serverNamed(const core::BuildContext& ctx, const std::string& name, const std::string& section) {
    orthanc::Server* server = ctx.orthanc ? ctx.orthanc->find(name) : nullptr;
    if (server) return *server;
    std::string known;
    if (ctx.orthanc)
        for (const auto& n : ctx.orthanc->names()) known += (known.empty() ? "" : ", ") + n;
    throw std::runtime_error(section + ": server '" + name + "' is not named in junction.yaml's orthanc section (" +
                             (known.empty() ? "it names none" : "it names " + known) + ")");
}

std::string orthancError(const std::string& body) {
    try {
        Poco::Dynamic::Var v = Poco::JSON::Parser().parse(body);
        if (v.type() != typeid(Poco::JSON::Object::Ptr)) return {};
        auto o = v.extract<Poco::JSON::Object::Ptr>();
        std::string text = o->optValue<std::string>("Message", "");
        std::string details = o->optValue<std::string>("Details", "");
        if (!details.empty()) text += (text.empty() ? "" : ": ") + details;
        return text;
    } catch (const Poco::Exception&) {
        return {};
    }
}

std::string callError(const orthanc::Server& server, const std::string& method, const std::string& path,
                      const http::Result& r) {
    std::string text = server.describe(method, path, r);
    if (r.answered) {
        std::string why = orthancError(r.response.body);
        if (!why.empty()) text += ": " + why;
    }
    return text;
}

}  // namespace orthanc_connector

void registerOrthanc(core::ConnectorRegistry& registry) {
    registry.addSource("orthanc", orthanc_connector::sourceFactory());
    registry.addDestination("orthanc", orthanc_connector::destinationFactory());
}

}  // namespace junction::connectors
