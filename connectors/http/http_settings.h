// Internal to connectors/http: what the `http` source and destination share
// (the `auth` section, content types by data type) and their factories.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "engine/core/connector.h"

namespace junction::connectors::http_connector {

// `auth`: none, basic (username, password) or bearer (token). A source asks
// for these credentials, a destination sends them.
struct HttpAuth {
    std::string type = "none";
    std::string username, password, token;
    // The Authorization header value they make ("" for none).
    std::string header() const;
};
const config::Map<HttpAuth>& httpAuthMap();

// The media type of a channel's data type: application/json, application/xml,
// x-application/hl7-v2+er7 (HL7 over HTTP), text/plain for raw.
std::string contentTypeOfDataType(const std::string& dataType);
// The media type of a message from its first bytes: JSON ('{' or '['), HL7
// (MSH, FHS or BHS), XML ('<'), else text/plain.
std::string contentTypeOfContent(std::string_view content);

std::unique_ptr<core::SourceFactory> sourceFactory();
std::unique_ptr<core::DestinationFactory> destinationFactory();

}  // namespace junction::connectors::http_connector
