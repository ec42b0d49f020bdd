// DICOM datasets as keyword tables (what Lua scripts and JSON channel content
// write) and as the DICOM JSON model (PS3.18 F.2, what the store keeps).
//
// A keyword table is a JSON object keyed by DICOM keywords (or 8 hex digit
// tags): {"PatientID":"123","PatientName":"DOE^JOHN","ScheduledProcedureStepSequence":
// [{"Modality":"CT"}]}. Tags and VRs come from DCMTK's data dictionary. Plain
// types only: no DCMTK type crosses this header.
#pragma once

#include <string>
#include <vector>

#include "engine/store/worklist_store.h"

namespace junction::dicom {

// Keyword table (JSON text) → DICOM JSON text, attributes in tag order.
//   strings          → {"vr":"LO","Value":["123"]}; a backslash separates values
//                      (except in LT, ST, UT, UR); "" or null → {"vr":"LO"}
//   PN               → {"vr":"PN","Value":[{"Alphabetic":"DOE^JOHN"}]}; an object
//                      with Alphabetic/Ideographic/Phonetic is taken as is
//   IS DS SS US SL UL SV UV FL FD → JSON numbers (strings holding numbers are converted)
//   SQ               → an array of keyword tables (a single non-empty table is one
//                      item; {} and [] are an empty sequence)
//   binary VRs       → {"InlineBinary": the string (base64)}
//   an array         → several values
// Keys listed in `skip` are ignored (e.g. "action", "status", "id").
// Throws std::invalid_argument with the attribute's path on bad input:
// unknown keyword, a value that does not fit the VR, text that is not JSON.
std::string keywordsToDicomJson(const std::string& keywordJson, const std::vector<std::string>& skip = {});

// DICOM JSON text → keyword table JSON text (the reverse; keywords from the
// dictionary, 8 hex digits for tags it does not know; attributes in tag order).
// Single values come back
// as strings or numbers, several string values joined by backslashes, several
// numbers as an array, PN as its Alphabetic string, sequences as arrays of
// tables, attributes without value as "". Throws std::invalid_argument.
std::string dicomJsonToKeywords(const std::string& dicomJson);

// A worklist item from a keyword table: the dataset as DICOM JSON and the
// matching keys (the SPS keys from the first item of
// ScheduledProcedureStepSequence). Status Scheduled. Throws std::invalid_argument.
store::WorklistItem worklistItemFromKeywords(const std::string& keywordJson, const std::vector<std::string>& skip = {});

// DICOM tag "(gggg,eeee)" of a keyword, or "" if the dictionary does not know it.
std::string tagOfKeyword(const std::string& keyword);

}  // namespace junction::dicom
