// DICOM Part-10 files as bytes in memory (a message's content, a STOW-RS
// part): what identifies the instance in one, read without parsing the rest.
// Plain types only; part10_dcmtk.h writes DCMTK datasets as such bytes.
#pragma once

#include <string>
#include <string_view>

namespace junction::dicom {

struct Part10Facts {
    std::string sopClassUid;        // from the dataset (the meta header's when absent)
    std::string sopInstanceUid;
    std::string studyInstanceUid;   // "" when the dataset has none
    std::string transferSyntaxUid;  // from the meta header
};

// True when `bytes` look like a Part-10 file: a 128-byte preamble then "DICM".
bool isPart10(std::string_view bytes);

// Reads the meta header and the dataset. Throws
// std::invalid_argument saying what is wrong: no preamble and "DICM", a meta
// header or dataset DCMTK cannot parse, no SOP Instance UID.
Part10Facts part10Facts(std::string_view bytes);

}  // namespace junction::dicom
