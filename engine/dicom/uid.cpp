// DICOM UIDs under the UUID root 2.25 (see uid.h).
#include "engine/dicom/uid.h"

#include "engine/util/uuid.h"

namespace junction::dicom {

std::string newUid() {
    util::Uuid u = util::randomUuid();
    unsigned __int128 v = (static_cast<unsigned __int128>(u.hi) << 64) | u.lo;
    std::string digits;
    do {
        digits += static_cast<char>('0' + static_cast<int>(v % 10));
        v /= 10;
    } while (v);
    return "2.25." + std::string(digits.rbegin(), digits.rend());
}

}  // namespace junction::dicom
