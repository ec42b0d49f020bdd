// DICOM UIDs made by Junction (plain types only).
#pragma once

#include <string>

namespace junction::dicom {

// A new UID: "2.25." followed by the decimal value of a random UUID (ITU-T
// X.667, PS3.5 B.2): for Lua's dicom.uid() and the worklist items that come
// without a StudyInstanceUID.
std::string newUid();

}  // namespace junction::dicom
