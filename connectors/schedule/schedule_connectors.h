// The `schedule` connector type: a source that produces one message every
// `interval` (and at start, and whenever it is triggered on demand), for
// channels whose scripts do the work: poll a REST API, sync a server.
#pragma once

#include "engine/core/registry.h"

namespace junction::connectors {

void registerSchedule(core::ConnectorRegistry& registry);

}  // namespace junction::connectors
