// The DCMTK version and implementation class UID, from dcmdata (see dicom_toolkit.h).
#include "engine/dicom/dicom_toolkit.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>

namespace junction::dicom {

std::string toolkitVersion() {
    return std::string("DCMTK ") + OFFIS_DCMTK_VERSION_STRING + " (" + OFFIS_DCMTK_RELEASEDATE + ")";
}

std::string implementationClassUid() { return OFFIS_IMPLEMENTATION_CLASS_UID; }

}  // namespace junction::dicom
