// The `orthanc` connector type, registered by the app: a source that follows
// an Orthanc server's changes (/changes), each kept change a message, its
// position stored with the messages; a destination that uploads instances,
// stores resources to a modality or peer, sets metadata and labels, deletes.
#pragma once

#include "engine/core/registry.h"

namespace junction::connectors {

void registerOrthanc(core::ConnectorRegistry& registry);

}  // namespace junction::connectors
