// The `dicomweb` connector type: a destination that stores the message's DICOM
// file on a DICOMweb server with STOW-RS (an Orthanc server of junction.yaml,
// or any server by URL). Registered by the app.
#pragma once

#include "engine/core/registry.h"

namespace junction::connectors {

void registerDicomweb(core::ConnectorRegistry& registry);

}  // namespace junction::connectors
