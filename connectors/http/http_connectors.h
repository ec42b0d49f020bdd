// The `http` connector type: a source that takes POST and PUT requests on a
// port of its own, and a destination that sends each message to an HTTP API.
#pragma once

#include "engine/core/registry.h"

namespace junction::connectors {

void registerHttp(core::ConnectorRegistry& registry);

}  // namespace junction::connectors
