// The DICOM connector types, registered by the app: `dicom` (C-STORE source and
// destination) and `dicom_mwl` (Modality Worklist and MPPS source).
#pragma once

#include "engine/core/registry.h"

namespace junction::connectors {

void registerDicom(core::ConnectorRegistry& registry);

}  // namespace junction::connectors
