// dicom.wrap_pdf and dicom.text_sr: a report wrapped as a DICOM instance from
// a script, returned as Part-10 bytes that survive the return of a transform
// (the message becomes those bytes), and the errors of bad arguments.
#include "tests/lua/lua_test_util.h"

#include "engine/dicom/part10.h"

using namespace junction;
using namespace junction::lua;
using namespace junction::lua::test;

namespace {

const char* kScript = R"(
local study = {PatientName = "DOE^JANE", PatientID = "MRN482913", StudyInstanceUID = "1.2.826.0.1.3680043.10.1001.20261123.1",
               AccessionNumber = "ACC20261123001"}

function pdf(msg)
  local bytes, uids = dicom.wrap_pdf(study, "%PDF-1.4\n\0\255 report\n%%EOF", {title = "CT Chest"})
  assert(bytes:sub(129, 132) == "DICM")
  assert(uids.StudyInstanceUID == study.StudyInstanceUID)
  assert(uids.SOPInstanceUID:match("^2%.25%.%d+$") and uids.SeriesInstanceUID ~= uids.SOPInstanceUID)
  assert(bytes:find("%PDF-1.4\n\0\255 report\n%%EOF", 1, true))        -- the PDF's bytes, as they were
  return bytes
end

function sr(msg)
  -- the study as DICOM JSON (a QIDO-RS answer), the text from the report
  local qido = dicom.json(study)
  local text = "No focal consolidation.\nIMPRESSION: " .. msg:get("OBR-4.2") .. " normal."
  local bytes = dicom.text_sr(qido, text, {title = {"18748-4", "LN", "Diagnostic Imaging Report"},
                                           observer = "WELBY^MARCUS", verified = true, datetime = "20261123101500"})
  assert(bytes:find("IMPRESSION: CT Chest without contrast normal.", 1, true))
  assert(bytes:find("WELBY^MARCUS", 1, true))
  return bytes
end

local function err(f, ...)
  local ok, e = pcall(f, ...)
  assert(not ok, "no error")
  return e
end

function errors(msg)
  local e = err(dicom.text_sr, {PatientID = "P1"}, "text")
  assert(e:find("dicom.text_sr: study: no StudyInstanceUID", 1, true), e)
  e = err(dicom.wrap_pdf, study, "<html>", {title = "x"})
  assert(e:find("dicom.wrap_pdf: not a PDF", 1, true), e)
  e = err(dicom.text_sr, study, "text", {titel = "x"})
  assert(e:find("unknown option 'titel' (title, observer,", 1, true), e)
  e = err(dicom.text_sr, study, "text", {title = "Report"})
  assert(e:find("option title must be a code", 1, true), e)
  e = err(dicom.text_sr, study, "text", {title = {"18748-4", "LN"}})
  assert(e:find("needs a code, a scheme and a meaning", 1, true), e)
  e = err(dicom.text_sr, study, "text", {verified = "yes"})
  assert(e:find("option verified must be true or false", 1, true), e)
  e = err(dicom.text_sr, study, "text", {verified = true})
  assert(e:find("needs an observer", 1, true), e)
  e = err(dicom.text_sr, study, "text", {series_number = "x"})
  assert(e:find("option series_number must be a whole number", 1, true), e)
  e = err(dicom.wrap_pdf, 42, "%PDF-")
  assert(e:find("bad argument #1", 1, true), e)
  e = err(dicom.text_sr, {StudyInstanceUID = "1.2.3", PatientID = {a = 1}}, "text")
  assert(e:find("dicom.text_sr: study: PatientID", 1, true), e)
end
)";

}  // namespace

TEST_CASE("dicom.wrap_pdf: the transform's result is the instance's bytes, intact", "[lua][dicom]") {
    Harness h(kScript);
    h.ok("pdf");
    CHECK(h.payload.type == DataType::Raw);  // an HL7 message replaced by the DICOM file
    dicom::Part10Facts f = dicom::part10Facts(h.payload.serialize());
    CHECK(f.sopClassUid == "1.2.840.10008.5.1.4.1.1.104.1");
    CHECK(f.studyInstanceUid == "1.2.826.0.1.3680043.10.1001.20261123.1");
    std::string pdf("%PDF-1.4\n\0\xff report\n%%EOF", 23);
    CHECK(h.payload.text.find(pdf) != std::string::npos);
}

TEST_CASE("dicom.text_sr builds a Basic Text SR of the study from DICOM JSON", "[lua][dicom]") {
    Harness h(kScript);
    h.ok("sr");
    dicom::Part10Facts f = dicom::part10Facts(h.payload.serialize());
    CHECK(f.sopClassUid == "1.2.840.10008.5.1.4.1.1.88.11");
    CHECK(f.studyInstanceUid == "1.2.826.0.1.3680043.10.1001.20261123.1");
}

TEST_CASE("dicom.wrap_pdf and dicom.text_sr say what is wrong with their arguments", "[lua][dicom]") {
    Harness h(kScript);
    h.ok("errors");
}
