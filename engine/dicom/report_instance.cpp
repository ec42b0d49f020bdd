// Reports wrapped as DICOM instances of their study (report_instance.h):
// Encapsulated PDF and Basic Text SR built with dcmdata, patient and study
// attributes taken from the study's DICOM JSON or keyword table.
#include "engine/dicom/report_instance.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcstack.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <cctype>
#include <ctime>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "engine/dicom/dataset_json.h"
#include "engine/dicom/keyword_json.h"
#include "engine/dicom/part10_dcmtk.h"
#include "engine/dicom/uid.h"

namespace junction::dicom {

namespace {

using Poco::JSON::Object;

struct StudyAttribute {
    DcmTagKey tag;
    const char* keyword;
    bool type2;  // written empty when the study has no value
};

// What the instance takes from its study (Patient and General Study modules).
const StudyAttribute kStudyAttributes[] = {
    {DCM_PatientName, "PatientName", true},
    {DCM_PatientID, "PatientID", true},
    {DCM_IssuerOfPatientID, "IssuerOfPatientID", false},
    {DCM_PatientBirthDate, "PatientBirthDate", true},
    {DCM_PatientSex, "PatientSex", true},
    {DCM_StudyInstanceUID, "StudyInstanceUID", false},
    {DCM_StudyDate, "StudyDate", true},
    {DCM_StudyTime, "StudyTime", true},
    {DCM_ReferringPhysicianName, "ReferringPhysicianName", true},
    {DCM_StudyID, "StudyID", true},
    {DCM_AccessionNumber, "AccessionNumber", true},
    {DCM_StudyDescription, "StudyDescription", false},
};

std::string hexOf(const DcmTagKey& t) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%04X%04X", t.getGroup(), t.getElement());
    return buf;
}

bool isHex8(const std::string& s) {
    if (s.size() != 8) return false;
    for (char c : s)
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    return true;
}

std::string upper(std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

// The study's attributes of kStudyAttributes as a dataset.
std::unique_ptr<DcmDataset> studyDataset(const std::string& studyJson) {
    Object::Ptr study;
    try {
        Poco::Dynamic::Var v = Poco::JSON::Parser().parse(studyJson);
        if (v.type() != typeid(Object::Ptr)) throw std::invalid_argument("study: not a JSON object of attributes");
        study = v.extract<Object::Ptr>();
    } catch (const Poco::Exception& e) {
        throw std::invalid_argument("study: not valid JSON: " + e.displayText());
    }
    // DICOM JSON when an attribute is keyed by its tag with an object value.
    bool dicomJson = false;
    for (const auto& [key, value] : *study)
        if (isHex8(key) && value.type() == typeid(Object::Ptr)) dicomJson = true;
    Object wanted;
    for (const auto& [key, value] : *study) {
        std::string hex = isHex8(key) ? upper(key) : std::string();
        for (const auto& a : kStudyAttributes)
            if (hex == hexOf(a.tag) || (!dicomJson && key == a.keyword)) wanted.set(key, value);
    }
    std::ostringstream text;
    wanted.stringify(text);
    try {
        return datasetFromJson(dicomJson ? text.str() : keywordsToDicomJson(text.str()));
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(std::string("study: ") + e.what());
    }
}

bool isUid(const std::string& s) {
    if (s.empty() || s.size() > 64 || s.front() == '.' || s.back() == '.') return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '.') {
            if (s[i + 1] == '.') return false;
        } else if (!std::isdigit(static_cast<unsigned char>(s[i]))) {
            return false;
        }
    }
    return true;
}

void check(OFCondition c, const char* what) {
    if (c.bad()) throw std::invalid_argument(std::string("cannot set ") + what + ": " + c.text());
}

void put(DcmItem& item, const DcmTagKey& tag, std::string_view value) {
    check(item.putAndInsertOFStringArray(tag, OFString(value.data(), value.size())), DcmTag(tag).getTagName());
}

void putEmpty(DcmItem& item, const DcmTagKey& tag) { check(item.insertEmptyElement(tag), DcmTag(tag).getTagName()); }

DcmItem& newItem(DcmItem& parent, const DcmTagKey& sequence) {
    DcmItem* item = nullptr;
    check(parent.findOrCreateSequenceItem(sequence, item, -2 /* a new item at the end */), DcmTag(sequence).getTagName());
    return *item;
}

void checkCode(const Code& c, const char* what) {
    if (c.value.empty() || c.scheme.empty() || c.meaning.empty())
        throw std::invalid_argument(std::string(what) + ": a code needs a value, a scheme and a meaning");
    if (c.value.size() > 16) throw std::invalid_argument(std::string(what) + ": code value '" + c.value + "' is longer than 16 characters");
}

void putCode(DcmItem& parent, const DcmTagKey& sequence, const Code& c) {
    DcmItem& item = newItem(parent, sequence);
    put(item, DCM_CodeValue, c.value);
    put(item, DCM_CodingSchemeDesignator, c.scheme);
    put(item, DCM_CodeMeaning, c.meaning);
}

struct DateTime {
    std::string date, time;  // DA, TM
};

DateTime now() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    char d[16], h[16];
    std::strftime(d, sizeof d, "%Y%m%d", &tm);
    std::strftime(h, sizeof h, "%H%M%S", &tm);
    return {d, h};
}

DateTime parseDateTime(const std::string& s) {
    if (s.empty()) return now();
    auto bad = [&] {
        return std::invalid_argument("date and time '" + s + "': expected YYYYMMDD[HHMM[SS[.ffffff]]]");
    };
    std::string v = s;
    std::size_t zone = v.find_first_of("+-", 8);
    if (zone != std::string::npos) v.resize(zone);
    std::size_t dot = v.find('.');
    std::string whole = v.substr(0, dot), fraction = dot == std::string::npos ? "" : v.substr(dot);
    if (whole.size() != 8 && whole.size() != 10 && whole.size() != 12 && whole.size() != 14) throw bad();
    if (!fraction.empty() && (whole.size() != 14 || fraction.size() < 2 || fraction.size() > 7)) throw bad();
    for (char c : whole + fraction.substr(fraction.empty() ? 0 : 1))
        if (!std::isdigit(static_cast<unsigned char>(c))) throw bad();
    std::string time = whole.substr(8);
    while (time.size() < 6) time += "00";
    return {whole.substr(0, 8), time + fraction};
}

// True when a text value anywhere in `ds` has a byte beyond ASCII.
bool hasNonAscii(DcmDataset& ds) {
    DcmStack stack;
    while (ds.nextObject(stack, OFTrue).good()) {
        DcmObject* o = stack.top();
        if (!o->isLeaf() || !static_cast<DcmElement*>(o)->isaString()) continue;
        OFString v;
        if (static_cast<DcmElement*>(o)->getOFStringArray(v).bad()) continue;
        for (std::size_t i = 0; i < v.length(); ++i)
            if (static_cast<unsigned char>(v[i]) >= 0x80) return true;
    }
    return false;
}

// The attributes every report instance has: patient and study from the
// study, a new series and instance, the equipment, the SOP common ones.
struct Common {
    DcmFileFormat file;
    DcmDataset& ds;
    ReportInstance out;
    DateTime content;
    Common() : ds(*file.getDataset()) {}
};

void fillCommon(Common& c, const std::string& studyJson, const char* sopClass, const char* modality,
                const ReportOptions& o, const std::string& seriesDescription) {
    c.content = parseDateTime(o.dateTime);
    std::unique_ptr<DcmDataset> study = studyDataset(studyJson);
    for (const auto& a : kStudyAttributes) {
        DcmElement* e = nullptr;
        if (study->findAndGetElement(a.tag, e).good() && e) {
            study->remove(e);
            check(c.ds.insert(e, true), a.keyword);
        } else if (a.type2) {
            putEmpty(c.ds, a.tag);
        }
    }
    OFString uid;
    c.ds.findAndGetOFString(DCM_StudyInstanceUID, uid);
    c.out.studyInstanceUid = uid.c_str();
    if (c.out.studyInstanceUid.empty()) throw std::invalid_argument("study: no StudyInstanceUID");
    if (!isUid(c.out.studyInstanceUid))
        throw std::invalid_argument("study: StudyInstanceUID '" + c.out.studyInstanceUid + "' is not a UID");

    c.out.seriesInstanceUid = newUid();
    c.out.sopInstanceUid = newUid();
    DateTime created = now();
    put(c.ds, DCM_SOPClassUID, sopClass);
    put(c.ds, DCM_SOPInstanceUID, c.out.sopInstanceUid);
    put(c.ds, DCM_InstanceCreationDate, created.date);
    put(c.ds, DCM_InstanceCreationTime, created.time);
    put(c.ds, DCM_Modality, modality);
    put(c.ds, DCM_SeriesInstanceUID, c.out.seriesInstanceUid);
    put(c.ds, DCM_SeriesNumber, std::to_string(o.seriesNumber));
    if (!seriesDescription.empty()) put(c.ds, DCM_SeriesDescription, seriesDescription);
    put(c.ds, DCM_InstanceNumber, std::to_string(o.instanceNumber));
    put(c.ds, DCM_Manufacturer, "Junction");
    put(c.ds, DCM_ContentDate, c.content.date);
    put(c.ds, DCM_ContentTime, c.content.time);
}

ReportInstance finish(Common& c) {
    if (hasNonAscii(c.ds)) put(c.ds, DCM_SpecificCharacterSet, "ISO_IR 192");
    try {
        c.out.bytes = writePart10(c.file, EXS_LittleEndianExplicit);
    } catch (const std::runtime_error& e) {
        throw std::invalid_argument(e.what());
    }
    return std::move(c.out);
}

}  // namespace

ReportInstance encapsulatedPdf(const std::string& studyJson, std::string_view pdf, const ReportOptions& o) {
    if (pdf.empty()) throw std::invalid_argument("the PDF is empty");
    if (pdf.substr(0, 5) != "%PDF-") throw std::invalid_argument("not a PDF: it does not start with %PDF-");
    if (pdf.size() > 0xFFFFFFF0u) throw std::invalid_argument("the PDF is larger than a DICOM value can hold (4 GB)");
    if (!o.titleCode.empty()) checkCode(o.titleCode, "title code");
    std::string title = o.title.empty() ? "Report" : o.title;
    Common c;
    fillCommon(c, studyJson, UID_EncapsulatedPDFStorage, "DOC", o, o.seriesDescription.empty() ? title : o.seriesDescription);
    DcmDataset& ds = c.ds;
    put(ds, DCM_ConversionType, "WSD");
    putEmpty(ds, DCM_AcquisitionDateTime);
    put(ds, DCM_BurnedInAnnotation, o.burnedInAnnotation ? "YES" : "NO");
    put(ds, DCM_DocumentTitle, title);
    if (o.titleCode.empty()) putEmpty(ds, DCM_ConceptNameCodeSequence);
    else putCode(ds, DCM_ConceptNameCodeSequence, o.titleCode);
    put(ds, DCM_MIMETypeOfEncapsulatedDocument, "application/pdf");
    check(ds.putAndInsertUint8Array(DCM_EncapsulatedDocument, reinterpret_cast<const Uint8*>(pdf.data()),
                                    static_cast<unsigned long>(pdf.size())),
          "EncapsulatedDocument");
    check(ds.putAndInsertUint32(DCM_EncapsulatedDocumentLength, static_cast<Uint32>(pdf.size())),
          "EncapsulatedDocumentLength");
    return finish(c);
}

ReportInstance basicTextSr(const std::string& studyJson, std::string_view text, const ReportOptions& o) {
    if (text.empty()) throw std::invalid_argument("the report text is empty");
    if (o.verified && o.observer.empty())
        throw std::invalid_argument("a verified report needs an observer (the name of who verified it)");
    Code title = o.titleCode.empty() ? Code{"18748-4", "LN", "Diagnostic Imaging Report"} : o.titleCode;
    checkCode(title, "title");
    Common c;
    fillCommon(c, studyJson, UID_BasicTextSRStorage, "SR", o, o.seriesDescription.empty() ? title.meaning : o.seriesDescription);
    DcmDataset& ds = c.ds;
    putEmpty(ds, DCM_ReferencedPerformedProcedureStepSequence);
    put(ds, DCM_CompletionFlag, o.complete ? "COMPLETE" : "PARTIAL");
    put(ds, DCM_VerificationFlag, o.verified ? "VERIFIED" : "UNVERIFIED");
    if (o.verified) {
        DcmItem& v = newItem(ds, DCM_VerifyingObserverSequence);
        put(v, DCM_VerifyingObserverName, o.observer);
        putEmpty(v, DCM_VerifyingObserverIdentificationCodeSequence);
        put(v, DCM_VerifyingOrganization, o.organization);
        put(v, DCM_VerificationDateTime, c.content.date + c.content.time);
    }
    putEmpty(ds, DCM_PerformedProcedureCodeSequence);

    // The content tree: the root CONTAINER, who observed, the text.
    put(ds, DCM_ValueType, "CONTAINER");
    putCode(ds, DCM_ConceptNameCodeSequence, title);
    put(ds, DCM_ContinuityOfContent, "SEPARATE");
    if (!o.observer.empty()) {
        DcmItem& type = newItem(ds, DCM_ContentSequence);
        put(type, DCM_RelationshipType, "HAS OBS CONTEXT");
        put(type, DCM_ValueType, "CODE");
        putCode(type, DCM_ConceptNameCodeSequence, {"121005", "DCM", "Observer Type"});
        putCode(type, DCM_ConceptCodeSequence, {"121006", "DCM", "Person"});
        DcmItem& name = newItem(ds, DCM_ContentSequence);
        put(name, DCM_RelationshipType, "HAS OBS CONTEXT");
        put(name, DCM_ValueType, "PNAME");
        putCode(name, DCM_ConceptNameCodeSequence, {"121008", "DCM", "Person Observer Name"});
        put(name, DCM_PersonName, o.observer);
    }
    DcmItem& item = newItem(ds, DCM_ContentSequence);
    put(item, DCM_RelationshipType, "CONTAINS");
    put(item, DCM_ValueType, "TEXT");
    putCode(item, DCM_ConceptNameCodeSequence, {"121071", "DCM", "Finding"});
    put(item, DCM_TextValue, text);
    return finish(c);
}

}  // namespace junction::dicom
