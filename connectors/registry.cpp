// The connector registry and the list of built-in connector types.
#include <mutex>
#include <stdexcept>

#include "connectors/builtin.h"
#include "connectors/dicom/store_connectors.h"
#include "engine/core/connector.h"

namespace junction::core {

ConnectorRegistry& ConnectorRegistry::instance() {
    static ConnectorRegistry registry;
    return registry;
}

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

void registerBuiltinConnectors() {
    static std::once_flag once;
    std::call_once(once, [] {
        auto& r = ConnectorRegistry::instance();
        r.addSource("mllp", connectors::mllpSourceFactory());
        r.addDestination("mllp", connectors::mllpDestinationFactory());
        r.addSource("file", connectors::fileSourceFactory());
        r.addDestination("file", connectors::fileDestinationFactory());
        r.addSource("channel", connectors::channelSourceFactory());
        r.addDestination("channel", connectors::channelDestinationFactory());
        r.addDestination("worklist", connectors::worklistDestinationFactory());
        r.addSource("dicom", connectors::dicomSourceFactory());
        r.addDestination("dicom", connectors::dicomDestinationFactory());
        r.addSource("dicom_mwl", connectors::dicomMwlSourceFactory());
    });
}

}  // namespace junction::core
