// DCMTK datasets written as DICOM Part-10 bytes in memory. DCMTK types: for
// the code built on DCMTK (engine/dicom, connectors/dicom, their tests).
#pragma once

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <string>

class DcmFileFormat;

namespace junction::dicom {

// `file` as a Part-10 file (preamble, "DICM", a new meta header, the dataset)
// in transfer syntax `xfer`. Throws std::runtime_error when DCMTK cannot
// write it (e.g. a compressed dataset asked for in another syntax).
std::string writePart10(DcmFileFormat& file, E_TransferSyntax xfer);

}  // namespace junction::dicom
