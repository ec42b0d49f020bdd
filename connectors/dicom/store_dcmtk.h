// Internal to connectors/dicom: the DCMTK side of store_json.h, used by the
// store client. Never include this outside connectors/dicom.
#pragma once

#include <string>

class DcmItem;

namespace junction::dicom::detail {

// `item` as DICOM JSON without pixel data and large binaries.
bool itemToJson(DcmItem& item, std::string& out, std::string& error);

// Applies the differences between `json` (a DICOM JSON object, non-tag keys
// ignored) and `item`; returns the number of elements changed, or -1 with `error`.
int applyJson(DcmItem& item, const std::string& json, std::string& error);

}  // namespace junction::dicom::detail

struct T_ASC_Association;

namespace junction::dicom::detail {

// The socket of an association (-1 when there is none), for TCP_NODELAY and
// for shutting a blocked association down from another thread.
int associationSocket(T_ASC_Association* assoc);

}  // namespace junction::dicom::detail
