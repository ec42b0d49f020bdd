// Reports archived next to the images of their study: a PDF wrapped as an
// Encapsulated PDF instance, or report text as a Basic Text SR instance, each
// a DICOM Part-10 file (Explicit VR Little Endian) ready to be stored (STOW-RS,
// C-STORE, Orthanc's POST /instances). Patient and study attributes are copied
// from the study; the instance gets a new series and SOP Instance UID. Plain
// types only: no DCMTK type crosses this header.
#pragma once

#include <string>
#include <string_view>

namespace junction::dicom {

// A coded concept: (18748-4, LN, "Diagnostic Imaging Report").
struct Code {
    std::string value, scheme, meaning;
    bool empty() const { return value.empty(); }
};

struct ReportOptions {
    // PDF: DocumentTitle ("" = "Report"). Not used by the SR (its title is `titleCode`).
    std::string title;
    // PDF: ConceptNameCodeSequence (none: the sequence is present and empty).
    // SR: the document title, the root CONTAINER's concept name ((18748-4,
    // LN, "Diagnostic Imaging Report") when none).
    Code titleCode;
    // PDF: BurnedInAnnotation YES (the default: a report names its patient and
    // the date, which is what the attribute tells), or NO.
    bool burnedInAnnotation = true;
    // SR: the person who observed (the radiologist), as a DICOM person name
    // ("WELBY^MARCUS"): an observer context item of the content tree, and the
    // verifying observer when `verified`.
    std::string observer;
    bool verified = false;     // SR: VerificationFlag VERIFIED (needs observer), else UNVERIFIED
    std::string organization;  // SR: the verifying observer's organization
    bool complete = true;      // SR: CompletionFlag COMPLETE, else PARTIAL
    std::string seriesDescription;  // "" = the title (PDF) or the title's meaning (SR)
    int seriesNumber = 999;
    int instanceNumber = 1;
    // ContentDate/ContentTime (and VerificationDateTime): YYYYMMDD[HHMM[SS[.F]]];
    // an HL7 timestamp's time zone (+hhmm) is dropped. "" = now (local time).
    std::string dateTime;
};

struct ReportInstance {
    std::string bytes;  // the Part-10 file
    std::string studyInstanceUid, seriesInstanceUid, sopInstanceUid;
};

// The attributes copied from the study (when present; the type 2 ones are
// written empty when absent): PatientName, PatientID, IssuerOfPatientID,
// PatientBirthDate, PatientSex, StudyInstanceUID (required), StudyDate,
// StudyTime, ReferringPhysicianName, StudyID, AccessionNumber, StudyDescription.
//
// `studyJson` is a JSON object: a DICOM JSON dataset (tags as "0020000D"
// keys with {"vr", "Value"} objects: a QIDO-RS answer's study, a `dicom`
// source's message) or a keyword table ({"StudyInstanceUID": "1.2.3", ...}).
// Other attributes and keys are ignored. Text is UTF-8; a non-ASCII value
// makes SpecificCharacterSet ISO_IR 192.
//
// Both throw std::invalid_argument saying what is wrong: a study that is no
// JSON object, a value that does not fit its attribute, no StudyInstanceUID
// (or one that is no UID), a PDF that does not start with "%PDF-", empty
// text, `verified` without an observer, a bad dateTime.

// Encapsulated PDF Storage (1.2.840.10008.5.1.4.1.1.104.1), Modality DOC.
ReportInstance encapsulatedPdf(const std::string& studyJson, std::string_view pdf, const ReportOptions& options = {});

// Basic Text SR Storage (1.2.840.10008.5.1.4.1.1.88.11), Modality SR: a
// CONTAINER titled `titleCode` holding one TEXT item (121071, DCM, "Finding")
// with `text`, preceded by the observer context when `observer` is given.
ReportInstance basicTextSr(const std::string& studyJson, std::string_view text, const ReportOptions& options = {});

}  // namespace junction::dicom
