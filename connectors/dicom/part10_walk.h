// A structural check of a DICOM Part 10 file in memory, without DCMTK: every
// element's header and length, the items of sequences and of encapsulated
// pixel data, down to the end of the data. It finds what a truncated or
// garbled transfer leaves (lengths running past the end, missing delimiters,
// bytes that are no element header) and reads the UIDs an instance is filed
// under, in a few microseconds where a full parse takes hundreds.
//
// It does not look values up in a dictionary: with implicit VR, a sequence of
// defined length is skipped as one value. Deflated datasets cannot be walked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace junction::dicom {

struct Part10Walk {
    bool ok = false;
    bool walkable = true;  // false for deflated data: parse it instead
    std::string error;     // why not ok
    std::string transferSyntaxUid;
    std::string sopClassUid, sopInstanceUid, studyUid, seriesUid;  // top-level values, trimmed
};

// `data` is the whole file: 128-byte preamble, "DICM", meta group, dataset.
Part10Walk walkPart10(const std::uint8_t* data, std::size_t size);

}  // namespace junction::dicom
