// Engine tests: the registry of every built-in connector type, as the app
// registers them (engine/app/connectors.cpp), and what every engine test sets
// up with it: a quiet engine in a folder of its own, channels read from text,
// the count of a channel's messages in a state.
#pragma once

#include <string>

#include "engine/app/connectors.h"
#include "engine/config/node.h"
#include "engine/core/engine.h"

namespace junction::testing {

inline const core::ConnectorRegistry& connectorRegistry() {
    static const core::ConnectorRegistry registry = app::builtinConnectors();
    return registry;
}

// An engine whose store, channels and relative paths are in `dir`, with no
// admin port and no disk flushes.
inline core::EngineOptions engineOptions(const std::string& dir) {
    core::EngineOptions o;
    o.config.baseDir = dir;
    o.config.store.path = dir + "/var/junction.db";
    o.config.channelsDir = dir + "/channels";
    o.config.admin.port = 0;
    o.store.synchronousFull = false;
    return o;
}

// A channel file's text, read as `dir`/test.yaml would be.
inline core::ChannelConfig testChannel(const std::string& dir, const std::string& yaml) {
    return core::parseChannel(config::loadYamlString(yaml, "test.yaml"), dir + "/test.yaml", dir, connectorRegistry());
}

// How many messages of `channel` the store holds in state `s`.
inline std::size_t countStatus(core::Engine& e, const std::string& channel, store::Status s) {
    for (auto& [status, n] : e.store().countByStatus(channel))
        if (status == s) return n;
    return 0;
}

}  // namespace junction::testing
