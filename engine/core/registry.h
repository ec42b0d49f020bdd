// Connector types by name. The app fills one registry with the types it offers
// (engine/app/connectors.cpp) and hands it to the engine, which looks factories
// up in it when it checks and starts channels. Registering a name twice is an
// error (like Envoy's registry).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/connector.h"

namespace junction::core {

class ConnectorRegistry {
public:
    // Throw std::logic_error when the type is already registered.
    void addSource(const std::string& type, std::unique_ptr<SourceFactory> factory);
    void addDestination(const std::string& type, std::unique_ptr<DestinationFactory> factory);
    // nullptr for an unknown type.
    const SourceFactory* source(const std::string& type) const;
    const DestinationFactory* destination(const std::string& type) const;
    std::vector<std::string> sourceTypes() const;       // sorted
    std::vector<std::string> destinationTypes() const;  // sorted

private:
    std::map<std::string, std::unique_ptr<SourceFactory>> sources_;
    std::map<std::string, std::unique_ptr<DestinationFactory>> destinations_;
};

}  // namespace junction::core
