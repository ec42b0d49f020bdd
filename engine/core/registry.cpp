// The connector registry: factories by type name, each name registered once.
#include "engine/core/registry.h"

#include <stdexcept>

namespace junction::core {

void ConnectorRegistry::addSource(const std::string& type, std::unique_ptr<SourceFactory> factory) {
    if (!sources_.emplace(type, std::move(factory)).second)
        throw std::logic_error("source type '" + type + "' registered twice");
}

void ConnectorRegistry::addDestination(const std::string& type, std::unique_ptr<DestinationFactory> factory) {
    if (!destinations_.emplace(type, std::move(factory)).second)
        throw std::logic_error("destination type '" + type + "' registered twice");
}

const SourceFactory* ConnectorRegistry::source(const std::string& type) const {
    auto it = sources_.find(type);
    return it == sources_.end() ? nullptr : it->second.get();
}

const DestinationFactory* ConnectorRegistry::destination(const std::string& type) const {
    auto it = destinations_.find(type);
    return it == destinations_.end() ? nullptr : it->second.get();
}

std::vector<std::string> ConnectorRegistry::sourceTypes() const {
    std::vector<std::string> out;
    for (const auto& [k, v] : sources_) out.push_back(k);
    return out;
}

std::vector<std::string> ConnectorRegistry::destinationTypes() const {
    std::vector<std::string> out;
    for (const auto& [k, v] : destinations_) out.push_back(k);
    return out;
}

}  // namespace junction::core
