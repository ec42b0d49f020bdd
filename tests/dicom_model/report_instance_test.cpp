// Reports wrapped as DICOM instances (engine/dicom/report_instance.h): read
// back with DCMTK (SOP class, the study's attributes, new UIDs, the PDF bytes,
// the SR content tree), checked by dciodvfy (dicom3tools) and DCMTK's dsrdump,
// and the errors of bad input.
#include <catch2/catch.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "../dicom/dcmtk_test_support.h"
#include "engine/dicom/part10.h"
#include "engine/dicom/report_instance.h"

using namespace junction::dicom;
using junction::testing::get;

namespace {

// A study as a QIDO-RS answer gives it (DICOM JSON), with attributes the
// instance does not take (ModalitiesInStudy, RetrieveURL).
const char* kQidoStudy = R"({
  "00080005": {"vr": "CS", "Value": ["ISO_IR 100"]},
  "00080020": {"vr": "DA", "Value": ["20040119"]},
  "00080030": {"vr": "TM", "Value": ["072730"]},
  "00080050": {"vr": "SH", "Value": ["ACC20261123001"]},
  "00080061": {"vr": "CS", "Value": ["CT"]},
  "00080090": {"vr": "PN", "Value": [{"Alphabetic": "WELBY^MARCUS"}]},
  "00081190": {"vr": "UR", "Value": ["http://127.0.0.1:8042/dicom-web/studies/1.2.3"]},
  "00100010": {"vr": "PN", "Value": [{"Alphabetic": "DOE^JANE"}]},
  "00100020": {"vr": "LO", "Value": ["MRN482913"]},
  "00100030": {"vr": "DA", "Value": ["19770101"]},
  "00100040": {"vr": "CS", "Value": ["F"]},
  "0020000D": {"vr": "UI", "Value": ["1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"]},
  "00200010": {"vr": "SH", "Value": ["4"]},
  "00201206": {"vr": "IS", "Value": [1]}
})";

const std::string kPdf = std::string("%PDF-1.4\n1 0 obj<< /Type /Catalog >>endobj\n\0\x01\xff binary\ntrailer<<>>\n%%EOF", 72);

struct Parsed {
    DcmFileFormat file;
    DcmDataset& ds() { return *file.getDataset(); }
};

std::unique_ptr<Parsed> parse(const std::string& bytes) {
    auto p = std::make_unique<Parsed>();
    DcmInputBufferStream in;
    in.setBuffer(bytes.data(), static_cast<offile_off_t>(bytes.size()));
    in.setEos();
    p->file.transferInit();
    OFCondition c = p->file.read(in);
    p->file.transferEnd();
    INFO(c.text());
    REQUIRE(c.good());
    return p;
}

std::string meta(Parsed& p, const DcmTagKey& tag) { return get(*p.file.getMetaInfo(), tag); }

// Writes `bytes` to a temporary file and returns what `command FILE` prints (stdout and stderr) and its status.
std::pair<int, std::string> runOn(const std::string& command, const std::string& bytes) {
    char path[] = "/tmp/junction-report-XXXXXX";
    int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    std::ofstream(path, std::ios::binary) << bytes;
    std::string out;
    FILE* p = ::popen((command + " " + path + " 2>&1").c_str(), "r");
    REQUIRE(p);
    std::array<char, 4096> buf;
    while (std::size_t n = std::fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
    int status = ::pclose(p);
    std::filesystem::remove(path);
    return {status, out};
}

// dciodvfy's findings other than the warnings about what a DICOMDIR would
// need, and whether it took the instance for the IOD `iod` ("BasicTextSR").
std::string iodProblems(const std::string& bytes, const std::string& iod) {
    auto [status, out] = runOn("dciodvfy", bytes);
    std::string problems;
    if (("\n" + out).find("\n" + iod + "\n") == std::string::npos) problems += "not checked as " + iod + ": " + out;
    std::size_t at = 0;
    while (at < out.size()) {
        std::size_t end = out.find('\n', at);
        std::string line = out.substr(at, end == std::string::npos ? std::string::npos : end - at);
        at = end == std::string::npos ? out.size() : end + 1;
        if ((line.rfind("Error", 0) == 0 || line.rfind("Warning", 0) == 0) && line.find("DICOMDIR") == std::string::npos)
            problems += line + "\n";
    }
    return problems;
}

void checkStudyCopied(DcmDataset& ds) {
    CHECK(get(ds, DCM_PatientName) == "DOE^JANE");
    CHECK(get(ds, DCM_PatientID) == "MRN482913");
    CHECK(get(ds, DCM_PatientBirthDate) == "19770101");
    CHECK(get(ds, DCM_PatientSex) == "F");
    CHECK(get(ds, DCM_StudyInstanceUID) == "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322");
    CHECK(get(ds, DCM_StudyDate) == "20040119");
    CHECK(get(ds, DCM_StudyTime) == "072730");
    CHECK(get(ds, DCM_AccessionNumber) == "ACC20261123001");
    CHECK(get(ds, DCM_ReferringPhysicianName) == "WELBY^MARCUS");
    CHECK(get(ds, DCM_StudyID) == "4");
    // What a study has but an instance does not take.
    CHECK_FALSE(ds.tagExists(DCM_ModalitiesInStudy));
    CHECK_FALSE(ds.tagExists(DCM_RetrieveURL));
    CHECK_FALSE(ds.tagExists(DCM_NumberOfStudyRelatedInstances));
    CHECK_FALSE(ds.tagExists(DCM_SpecificCharacterSet));  // every value is ASCII
}

}  // namespace

TEST_CASE("a PDF becomes an Encapsulated PDF instance of the study", "[dicom][report]") {
    ReportOptions o;
    o.title = "CT Chest report";
    o.dateTime = "20261123101500";
    ReportInstance r = encapsulatedPdf(kQidoStudy, kPdf, o);
    auto p = parse(r.bytes);
    DcmDataset& ds = p->ds();
    CHECK(meta(*p, DCM_TransferSyntaxUID) == UID_LittleEndianExplicitTransferSyntax);
    CHECK(meta(*p, DCM_MediaStorageSOPClassUID) == UID_EncapsulatedPDFStorage);
    CHECK(get(ds, DCM_SOPClassUID) == "1.2.840.10008.5.1.4.1.1.104.1");
    CHECK(get(ds, DCM_Modality) == "DOC");
    CHECK(get(ds, DCM_MIMETypeOfEncapsulatedDocument) == "application/pdf");
    CHECK(get(ds, DCM_DocumentTitle) == "CT Chest report");
    CHECK(get(ds, DCM_SeriesDescription) == "CT Chest report");
    CHECK(get(ds, DCM_BurnedInAnnotation) == "YES");
    CHECK(get(ds, DCM_ContentDate) == "20261123");
    CHECK(get(ds, DCM_ContentTime) == "101500");
    CHECK(get(ds, DCM_SeriesNumber) == "999");
    CHECK(get(ds, DCM_InstanceNumber) == "1");
    CHECK(ds.tagExists(DCM_ConceptNameCodeSequence));
    CHECK(get(ds, DCM_InstanceCreationDate).size() == 8);
    checkStudyCopied(ds);

    // The PDF's bytes, intact (the value is padded to an even length; the length attribute tells).
    const Uint8* doc = nullptr;
    unsigned long n = 0;
    REQUIRE(ds.findAndGetUint8Array(DCM_EncapsulatedDocument, doc, &n).good());
    Uint32 length = 0;
    REQUIRE(ds.findAndGetUint32(DCM_EncapsulatedDocumentLength, length).good());
    CHECK(length == kPdf.size());
    CHECK(n == kPdf.size() + kPdf.size() % 2);
    CHECK(std::string(reinterpret_cast<const char*>(doc), length) == kPdf);

    // New series and instance, named in the result.
    CHECK(r.studyInstanceUid == "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322");
    CHECK(get(ds, DCM_SeriesInstanceUID) == r.seriesInstanceUid);
    CHECK(get(ds, DCM_SOPInstanceUID) == r.sopInstanceUid);
    CHECK(meta(*p, DCM_MediaStorageSOPInstanceUID) == r.sopInstanceUid);
    CHECK(r.seriesInstanceUid != r.sopInstanceUid);
    CHECK(r.seriesInstanceUid.rfind("2.25.", 0) == 0);
    ReportInstance again = encapsulatedPdf(kQidoStudy, kPdf, o);
    CHECK(again.sopInstanceUid != r.sopInstanceUid);
    CHECK(again.seriesInstanceUid != r.seriesInstanceUid);

    // What identifies it, read back from the bytes alone.
    Part10Facts f = part10Facts(r.bytes);
    CHECK(f.sopClassUid == UID_EncapsulatedPDFStorage);
    CHECK(f.sopInstanceUid == r.sopInstanceUid);
    CHECK(f.studyInstanceUid == r.studyInstanceUid);
    CHECK(f.transferSyntaxUid == UID_LittleEndianExplicitTransferSyntax);

    INFO("dciodvfy:\n" << iodProblems(r.bytes, "EncapsulatedPDF"));
    CHECK(iodProblems(r.bytes, "EncapsulatedPDF").empty());
}

TEST_CASE("report text becomes a Basic Text SR instance of the study", "[dicom][report]") {
    ReportOptions o;
    o.observer = "WELBY^MARCUS";
    o.verified = true;
    o.organization = "City Hospital";
    o.dateTime = "20261123101500.123+0100";  // an HL7 timestamp: the zone is dropped
    const std::string text = "No focal consolidation.\r\nIMPRESSION: normal chest CT.";
    ReportInstance r = basicTextSr(kQidoStudy, text, o);
    auto p = parse(r.bytes);
    DcmDataset& ds = p->ds();
    CHECK(get(ds, DCM_SOPClassUID) == "1.2.840.10008.5.1.4.1.1.88.11");
    CHECK(get(ds, DCM_Modality) == "SR");
    CHECK(get(ds, DCM_CompletionFlag) == "COMPLETE");
    CHECK(get(ds, DCM_VerificationFlag) == "VERIFIED");
    CHECK(get(ds, DCM_ContentDate) == "20261123");
    CHECK(get(ds, DCM_ContentTime) == "101500.123");
    CHECK(get(ds, DCM_ValueType) == "CONTAINER");
    CHECK(get(ds, DCM_SeriesDescription) == "Diagnostic Imaging Report");
    checkStudyCopied(ds);

    DcmItem* title = nullptr;
    REQUIRE(ds.findAndGetSequenceItem(DCM_ConceptNameCodeSequence, title, 0).good());
    CHECK(get(*title, DCM_CodeValue) == "18748-4");
    CHECK(get(*title, DCM_CodingSchemeDesignator) == "LN");
    DcmItem* verifier = nullptr;
    REQUIRE(ds.findAndGetSequenceItem(DCM_VerifyingObserverSequence, verifier, 0).good());
    CHECK(get(*verifier, DCM_VerifyingObserverName) == "WELBY^MARCUS");
    CHECK(get(*verifier, DCM_VerifyingOrganization) == "City Hospital");
    CHECK(get(*verifier, DCM_VerificationDateTime) == "20261123101500.123");

    // The content tree: observer type, observer name, the text.
    DcmItem* item = nullptr;
    REQUIRE(ds.findAndGetSequenceItem(DCM_ContentSequence, item, 1).good());
    CHECK(get(*item, DCM_ValueType) == "PNAME");
    CHECK(get(*item, DCM_PersonName) == "WELBY^MARCUS");
    REQUIRE(ds.findAndGetSequenceItem(DCM_ContentSequence, item, 2).good());
    CHECK(get(*item, DCM_RelationshipType) == "CONTAINS");
    CHECK(get(*item, DCM_ValueType) == "TEXT");
    CHECK(get(*item, DCM_TextValue) == text);

    INFO("dciodvfy:\n" << iodProblems(r.bytes, "BasicTextSR"));
    CHECK(iodProblems(r.bytes, "BasicTextSR").empty());
    auto [status, dump] = runOn("dsrdump +Pl", r.bytes);
    INFO(dump);
    CHECK(status == 0);
    CHECK(dump.find("Basic Text SR") != std::string::npos);
    CHECK(dump.find("IMPRESSION: normal chest CT.") != std::string::npos);
    CHECK(dump.find("Warning") == std::string::npos);
}

TEST_CASE("a report's study may be a keyword table, and non-ASCII text is UTF-8", "[dicom][report]") {
    const std::string study = R"({"PatientName": "MÜLLER^JÜRGEN", "PatientID": "P1", "StudyInstanceUID": "1.2.3.4",
                                  "AccessionNumber": "A1", "file": "/var/dicom/x.dcm", "Modality": "CT"})";
    ReportOptions o;
    o.titleCode = {"11528-7", "LN", "Radiology Report"};
    o.complete = false;
    ReportInstance r = basicTextSr(study, "Befund: unauffällig.", o);
    auto p = parse(r.bytes);
    DcmDataset& ds = p->ds();
    CHECK(get(ds, DCM_SpecificCharacterSet) == "ISO_IR 192");
    CHECK(get(ds, DCM_PatientName) == "MÜLLER^JÜRGEN");
    CHECK(get(ds, DCM_StudyInstanceUID) == "1.2.3.4");
    CHECK(get(ds, DCM_Modality) == "SR");  // the study's Modality is not taken
    CHECK(get(ds, DCM_CompletionFlag) == "PARTIAL");
    CHECK(get(ds, DCM_VerificationFlag) == "UNVERIFIED");
    CHECK_FALSE(ds.tagExists(DCM_VerifyingObserverSequence));
    CHECK(ds.tagExists(DCM_StudyDate));  // type 2: present, empty
    CHECK(get(ds, DCM_StudyDate).empty());
    CHECK(get(ds, DCM_SeriesDescription) == "Radiology Report");
    INFO("dciodvfy:\n" << iodProblems(r.bytes, "BasicTextSR"));
    CHECK(iodProblems(r.bytes, "BasicTextSR").empty());
}

TEST_CASE("bad input to a report gets an error that says what is wrong", "[dicom][report]") {
    auto error = [](auto&& f) {
        try {
            f();
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(error([] { basicTextSr(R"({"PatientID": "P1"})", "text"); }) == "study: no StudyInstanceUID");
    CHECK(error([] { basicTextSr(R"({"StudyInstanceUID": "1.2.x"})", "text"); }) ==
          "study: StudyInstanceUID '1.2.x' is not a UID");
    CHECK(error([] { basicTextSr("[1, 2]", "text"); }) == "study: not a JSON object of attributes");
    CHECK(error([] { basicTextSr("{oops", "text"); }).rfind("study: not valid JSON", 0) == 0);
    CHECK(error([] { basicTextSr(R"({"StudyInstanceUID": "1.2.3", "PatientName": {"x": 1}})", "text"); })
              .find("PatientName") != std::string::npos);
    CHECK(error([] { basicTextSr(R"({"StudyInstanceUID": "1.2.3"})", ""); }) == "the report text is empty");
    CHECK(error([] {
              ReportOptions o;
              o.verified = true;
              basicTextSr(R"({"StudyInstanceUID": "1.2.3"})", "text", o);
          }).find("needs an observer") != std::string::npos);
    CHECK(error([] {
              ReportOptions o;
              o.dateTime = "2026-11-23";
              basicTextSr(R"({"StudyInstanceUID": "1.2.3"})", "text", o);
          }).find("expected YYYYMMDD") != std::string::npos);
    CHECK(error([] { encapsulatedPdf(R"({"StudyInstanceUID": "1.2.3"})", "<html>not a pdf</html>"); }) ==
          "not a PDF: it does not start with %PDF-");
    CHECK(error([] { part10Facts("not dicom"); }).find("no \"DICM\"") != std::string::npos);
}
