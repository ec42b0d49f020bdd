// The `worklist` connector type: its destination factory, registered by the app.
#pragma once

#include "engine/core/registry.h"

namespace junction::connectors {

void registerWorklist(core::ConnectorRegistry& registry);

}  // namespace junction::connectors
