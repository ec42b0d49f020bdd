// The connector types of the `junction` binary (engine/app/connectors.cpp).
#pragma once

#include "engine/core/registry.h"

namespace junction::app {

// A registry with every built-in connector type, for an Engine, parseChannel
// and channelJsonSchema. The tests use it too.
core::ConnectorRegistry builtinConnectors();

}  // namespace junction::app
