// DCMTK helpers shared by the DICOM tests.
#pragma once

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcitem.h>

#include <string>

namespace junction::testing {

// An attribute's value as DCMTK gives it (all values, backslash-separated); "" when absent.
inline std::string get(DcmItem& ds, const DcmTagKey& tag) {
    OFString v;
    ds.findAndGetOFStringArray(tag, v);
    return v.c_str();
}

}  // namespace junction::testing
