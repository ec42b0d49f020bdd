// Modality Worklist matching (PS3.4 C.2.2.2 and K.2.2): decides whether a
// worklist item matches a C-FIND identifier and builds the response, which
// carries exactly the keys the query asked for (nested keys of sequences
// included), with the item's values or empty when the item has none; a
// sequence the item lacks comes back with no item. A Scheduled Procedure Step
// Sequence key with one empty item (or none) asks for every attribute of the
// step (K.6.1), as do such keys of the code and referenced study / patient
// sequences for theirs. Internal to connectors/dicom (DCMTK types).
#pragma once

#include <memory>
#include <string>

#include "engine/store/worklist_store.h"

class DcmItem;
class DcmDataset;

namespace junction::dicom {

// Matching of one value (exposed for tests). `query` is in DICOM matching
// syntax for the given VR ("DA", "TM", "DT", "PN", ...): empty = universal,
// * and ? wildcards, ranges for DA/TM/DT, PN case-insensitive, a backslash
// list of UIDs for UI. `value` is the candidate's value (possibly multi-valued).
bool matchValue(const std::string& vr, const std::string& query, const std::string& value);
// Combined date and time range matching (C.2.2.2.5.2): the candidate's date
// and time against the query's date and time (each may be a range or empty).
bool matchDateTime(const std::string& queryDate, const std::string& queryTime, const std::string& date,
                   const std::string& time);

// The response for `item` if it matches `query`, otherwise nullptr. Both are
// in UTF-8 (see toUtf8). SpecificCharacterSet in the query is not a matching
// key; the response sets it to ISO_IR 192 when it holds non-ASCII text.
std::unique_ptr<DcmDataset> matchWorklistItem(DcmItem& query, DcmItem& item);

// Converts a dataset to UTF-8 according to its SpecificCharacterSet. Returns
// false (and leaves the text as is) when the character set is not supported.
bool toUtf8(DcmDataset& ds, std::string* error = nullptr);

// The keys of `query` the worklist store indexes, as a WorklistFilter (keys
// the store cannot apply exactly are left universal; the matcher still checks
// everything on the returned items).
store::WorklistFilter worklistFilterFor(DcmItem& query);

}  // namespace junction::dicom
