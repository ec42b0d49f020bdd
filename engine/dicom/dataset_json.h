// DICOM JSON (PS3.18 F.2) <-> DCMTK datasets. DCMTK 3.6.7 writes JSON but
// cannot read it, so both directions live here: values keep their VR from the
// JSON ("vr", the dictionary when missing), sequences nest, PN values are
// {"Alphabetic": ..., "Ideographic": ..., "Phonetic": ...} objects, numeric
// VRs are JSON numbers, binary VRs travel as InlineBinary (base64), and an
// attribute without "Value" is present and empty. Strings are UTF-8.
// DCMTK types: for the code built on DCMTK (connectors/dicom, the DICOM
// tests); the rest of the engine uses the plain keyword_json.h.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

class DcmItem;
class DcmDataset;
class DcmObject;

namespace junction::dicom {

struct JsonError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

// Parses a DICOM JSON object into a new dataset. Throws JsonError naming the
// offending tag on malformed input.
std::unique_ptr<DcmDataset> datasetFromJson(const std::string& json);
// Adds the attributes of a DICOM JSON object to `item` (replacing present ones).
void mergeJson(DcmItem& item, const std::string& json);
// Serializes every attribute of `item` (group lengths skipped) as DICOM JSON.
std::string datasetToJson(DcmItem& item);
// Appends `item` as a DICOM JSON object to `out`, leaving out group lengths and,
// at every level, the elements `skip` (when given) names. IS/DS values that are
// no number stay strings; LT, ST, UT and UR are one value each.
void appendItemJson(DcmItem& item, std::string& out, bool (*skip)(DcmObject&) = nullptr);

}  // namespace junction::dicom
