// What the orthanc source and destination share (internal to connectors/orthanc):
// the server a channel names, and what an Orthanc error answer says.
#pragma once

#include <memory>
#include <string>

#include "engine/core/connector.h"
#include "engine/core/registry.h"
#include "engine/orthanc/server.h"

namespace junction::connectors::orthanc_connector {

// The server `name` of junction.yaml's orthanc section. Throws
// std::runtime_error naming it (and the servers there are) when there is none.
orthanc::Server& serverNamed(const core::BuildContext& ctx, const std::string& name, const std::string& section);

// The explanation in an Orthanc error answer's JSON body ("Bad file format:
// Cannot parse an invalid DICOM file (size: 7 bytes)"), "" when it has none.
std::string orthancError(const std::string& body);

// What a failed call says: the server, method, path and status, and Orthanc's explanation.
std::string callError(const orthanc::Server& server, const std::string& method, const std::string& path,
                      const http::Result& r);

std::unique_ptr<core::SourceFactory> sourceFactory();
std::unique_ptr<core::DestinationFactory> destinationFactory();

}  // namespace junction::connectors::orthanc_connector
