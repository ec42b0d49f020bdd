// Registers the DICOM connector types (`dicom`, `dicom_mwl`) under their names.
#include "connectors/dicom/dicom_connectors.h"

#include "connectors/dicom/mwl_connectors.h"
#include "connectors/dicom/store_connectors.h"

namespace junction::connectors {

void registerDicom(core::ConnectorRegistry& registry) {
    registry.addSource("dicom", dicomSourceFactory());
    registry.addDestination("dicom", dicomDestinationFactory());
    registry.addSource("dicom_mwl", dicomMwlSourceFactory());
}

}  // namespace junction::connectors
