// Facts about the DICOM toolkit Junction is built with (for `junction
// version`): plain strings, no DCMTK type crosses this header.
#pragma once

#include <string>

namespace junction::dicom {

// "DCMTK 3.6.7 (2022-04-22)"
std::string toolkitVersion();
// Junction's implementation class UID root as used in associations.
std::string implementationClassUid();

}  // namespace junction::dicom
