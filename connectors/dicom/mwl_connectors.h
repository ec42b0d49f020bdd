// The `dicom_mwl` source factory with an explicit way to reach the worklist
// (the registered factory takes the engine's). No DICOM toolkit types here.
#pragma once

#include <functional>
#include <memory>

#include "engine/core/connector.h"
#include "engine/store/worklist_store.h"

namespace junction::connectors {

using WorklistResolver = std::function<store::WorklistStore&(const core::BuildContext&)>;
std::unique_ptr<core::SourceFactory> dicomMwlSourceFactory(WorklistResolver worklist);

}  // namespace junction::connectors
