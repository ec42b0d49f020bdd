// The `file` connector type: its source and destination factories, registered
// by the app.
#pragma once

#include "engine/core/registry.h"

namespace junction::connectors {

void registerFile(core::ConnectorRegistry& registry);

}  // namespace junction::connectors
