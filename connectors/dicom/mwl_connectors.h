// The `dicom_mwl` source factory (registered by registerDicom). It serves the
// worklist its BuildContext offers. No DICOM toolkit types here.
#pragma once

#include <memory>

#include "engine/core/connector.h"

namespace junction::connectors {

std::unique_ptr<core::SourceFactory> dicomMwlSourceFactory();

}  // namespace junction::connectors
