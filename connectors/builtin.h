// Factories of the built-in connector types (registered in connectors/registry.cpp).
#pragma once

#include <memory>

#include "engine/core/connector.h"

namespace junction::connectors {

std::unique_ptr<core::SourceFactory> mllpSourceFactory();
std::unique_ptr<core::DestinationFactory> mllpDestinationFactory();
std::unique_ptr<core::SourceFactory> fileSourceFactory();
std::unique_ptr<core::DestinationFactory> fileDestinationFactory();
std::unique_ptr<core::SourceFactory> channelSourceFactory();
std::unique_ptr<core::DestinationFactory> channelDestinationFactory();
std::unique_ptr<core::DestinationFactory> worklistDestinationFactory();
std::unique_ptr<core::SourceFactory> dicomMwlSourceFactory();

}  // namespace junction::connectors
