// Part-10 bytes in memory (part10.h, part10_dcmtk.h): what identifies the
// instance in them, and DCMTK datasets written as them.
#include "engine/dicom/part10.h"
#include "engine/dicom/part10_dcmtk.h"

#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcostrmb.h>

#include <stdexcept>
#include <vector>

#include "engine/dicom/dicom_text.h"

namespace junction::dicom {

namespace {

std::string stringOf(DcmItem& item, const DcmTagKey& tag) {
    OFString v;
    if (item.findAndGetOFStringArray(tag, v).bad()) return {};
    return trimSpaces(std::string_view(v.c_str(), v.length()));
}

}  // namespace

bool isPart10(std::string_view bytes) { return bytes.size() >= 132 && bytes.substr(128, 4) == "DICM"; }

Part10Facts part10Facts(std::string_view bytes) {
    if (!isPart10(bytes))
        throw std::invalid_argument("not a DICOM Part-10 file (no \"DICM\" after a 128-byte preamble)");
    DcmInputBufferStream in;
    in.setBuffer(bytes.data(), static_cast<offile_off_t>(bytes.size()));
    in.setEos();
    DcmFileFormat file;
    file.transferInit();
    // The whole dataset: readUntilTag would log a warning for every file.
    OFCondition c = file.read(in);
    file.transferEnd();
    if (c.bad()) throw std::invalid_argument(std::string("not a readable DICOM file: ") + c.text());
    Part10Facts f;
    DcmMetaInfo& meta = *file.getMetaInfo();
    DcmDataset& ds = *file.getDataset();
    f.transferSyntaxUid = stringOf(meta, DCM_TransferSyntaxUID);
    f.sopClassUid = stringOf(ds, DCM_SOPClassUID);
    if (f.sopClassUid.empty()) f.sopClassUid = stringOf(meta, DCM_MediaStorageSOPClassUID);
    f.sopInstanceUid = stringOf(ds, DCM_SOPInstanceUID);
    if (f.sopInstanceUid.empty()) f.sopInstanceUid = stringOf(meta, DCM_MediaStorageSOPInstanceUID);
    f.studyInstanceUid = stringOf(ds, DCM_StudyInstanceUID);
    if (f.sopInstanceUid.empty()) throw std::invalid_argument("the DICOM file has no SOP Instance UID");
    return f;
}

std::string writePart10(DcmFileFormat& file, E_TransferSyntax xfer) {
    std::vector<char> buffer(64 * 1024);
    DcmOutputBufferStream out(buffer.data(), static_cast<offile_off_t>(buffer.size()));
    std::string bytes;
    file.transferInit();
    OFCondition c;
    do {
        c = file.write(out, xfer, EET_ExplicitLength, nullptr);
        void* chunk = nullptr;
        offile_off_t n = 0;
        out.flushBuffer(chunk, n);
        bytes.append(static_cast<const char*>(chunk), static_cast<std::size_t>(n));
    } while (c == EC_StreamNotifyClient);
    file.transferEnd();
    if (c.bad()) throw std::runtime_error(std::string("cannot write the DICOM file: ") + c.text());
    return bytes;
}

}  // namespace junction::dicom
