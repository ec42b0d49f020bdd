// Engine tests: the registry of every built-in connector type, as the app
// registers them (engine/app/connectors.cpp).
#pragma once

#include "engine/app/connectors.h"

namespace junction::testing {

inline const core::ConnectorRegistry& connectorRegistry() {
    static const core::ConnectorRegistry registry = app::builtinConnectors();
    return registry;
}

}  // namespace junction::testing
