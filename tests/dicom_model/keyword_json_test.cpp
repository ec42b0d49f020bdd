// Keyword tables ↔ DICOM JSON with DCMTK's dictionary.
#include <catch2/catch.hpp>

#include <string>

#include "engine/dicom/keyword_json.h"
#include "engine/dicom/uid.h"

using namespace junction;

TEST_CASE("keyword tables become DICOM JSON in tag order", "[dicom][json]") {
    std::string out = dicom::keywordsToDicomJson(R"({
        "PatientName": "DOE^JOHN", "PatientID": "123", "AccessionNumber": "A1",
        "ScheduledProcedureStepSequence": [{"Modality": "CT", "ScheduledStationAETitle": "CT1",
            "ScheduledProcedureStepStartDate": "20261123", "ScheduledProcedureStepStartTime": "093000"}]
    })");
    CHECK(out ==
          R"({"00080050":{"vr":"SH","Value":["A1"]},)"
          R"("00100010":{"vr":"PN","Value":[{"Alphabetic":"DOE^JOHN"}]},)"
          R"("00100020":{"vr":"LO","Value":["123"]},)"
          R"("00400100":{"vr":"SQ","Value":[{"00080060":{"vr":"CS","Value":["CT"]},)"
          R"("00400001":{"vr":"AE","Value":["CT1"]},"00400002":{"vr":"DA","Value":["20261123"]},)"
          R"("00400003":{"vr":"TM","Value":["093000"]}}]}})");
}

TEST_CASE("numbers, multiple values, empty values, PN groups, binary", "[dicom][json]") {
    CHECK(dicom::keywordsToDicomJson(R"({"SeriesNumber":"5","PatientWeight":"72.5","Rows":512})") ==
          R"({"00101030":{"vr":"DS","Value":[72.5]},"00200011":{"vr":"IS","Value":[5]},)"
          R"("00280010":{"vr":"US","Value":[512]}})");
    // a backslash separates values; an array gives them one by one
    CHECK(dicom::keywordsToDicomJson(R"({"ImageType":"ORIGINAL\\PRIMARY","PixelSpacing":[0.5,"0.25"]})") ==
          R"({"00080008":{"vr":"CS","Value":["ORIGINAL","PRIMARY"]},"00280030":{"vr":"DS","Value":[0.5,0.25]}})");
    // text VRs keep backslashes
    CHECK(dicom::keywordsToDicomJson(R"({"AdditionalPatientHistory":"a\\b"})") ==
          R"({"001021B0":{"vr":"LT","Value":["a\\b"]}})");
    // "" and null: present without value (type 2 attributes); empty sequence
    CHECK(dicom::keywordsToDicomJson(R"({"PatientBirthDate":"","PatientSex":null,"ReferencedStudySequence":[]})") ==
          R"({"00081110":{"vr":"SQ"},"00100030":{"vr":"DA"},"00100040":{"vr":"CS"}})");
    CHECK(dicom::keywordsToDicomJson(R"({"PatientName":{"Alphabetic":"Yamada^Tarou","Ideographic":"山田^太郎"}})") ==
          R"({"00100010":{"vr":"PN","Value":[{"Alphabetic":"Yamada^Tarou","Ideographic":"山田^太郎"}]}})");
    // hex tags and escapes
    CHECK(dicom::keywordsToDicomJson(R"({"00100020":"Q\"1"})") == R"({"00100020":{"vr":"LO","Value":["Q\"1"]}})");
    CHECK(dicom::keywordsToDicomJson(R"({"EncapsulatedDocument":"AAEC"})") ==
          R"({"00420011":{"vr":"OB","InlineBinary":"AAEC"}})");
    // skipped keys
    CHECK(dicom::keywordsToDicomJson(R"({"action":"cancel","AccessionNumber":"A1"})", {"action"}) ==
          R"({"00080050":{"vr":"SH","Value":["A1"]}})");
    CHECK(dicom::tagOfKeyword("PatientName") == "(0010,0010)");
    CHECK(dicom::tagOfKeyword("NoSuchKeyword").empty());
    std::string uid = dicom::newUid();
    CHECK(uid.rfind("2.25.", 0) == 0);
    CHECK(uid.size() <= 64);
    CHECK(uid.find_first_not_of("0123456789.") == std::string::npos);
    CHECK(dicom::newUid() != uid);
}

TEST_CASE("bad keyword tables get clear errors", "[dicom][json]") {
    auto err = [](const std::string& json) {
        try {
            dicom::keywordsToDicomJson(json);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(err(R"({"PatientNme":"X"})") == "PatientNme: unknown DICOM keyword 'PatientNme'");
    CHECK(err(R"({"ScheduledProcedureStepSequence":[{"Modalty":"CT"}]})") ==
          "ScheduledProcedureStepSequence[1].Modalty: unknown DICOM keyword 'Modalty'");
    CHECK(err(R"({"ScheduledProcedureStepSequence":"CT"})") ==
          "ScheduledProcedureStepSequence: a sequence takes an array of tables");
    CHECK(err(R"({"SeriesNumber":"five"})") == "SeriesNumber: 'five' is not an integer (IS)");
    CHECK(err(R"({"Rows":-1})") == "Rows: '-1' is negative (US is unsigned)");
    CHECK(err(R"({"PatientWeight":"heavy"})") == "PatientWeight: 'heavy' is not a number (DS)");
    CHECK(err(R"({"PatientID":true})") == "PatientID: true/false is not a DICOM value");
    CHECK(err(R"({"PatientID":{"a":1}})") == "PatientID: a table is not a value for VR LO");
    CHECK(err(R"(["PatientID"])") == "a keyword table must be a JSON object");
    CHECK(err("{nope").rfind("the keyword table is not valid JSON", 0) == 0);
    CHECK(err(R"({"Patient Name":"X"})") == "Patient Name: unknown DICOM keyword 'Patient Name'");
}

TEST_CASE("DICOM JSON becomes a keyword table and back", "[dicom][json]") {
    // in tag order, as the reverse conversion writes them
    std::string keywords = R"({"ImageType":"ORIGINAL\\PRIMARY","StudyDate":"","AccessionNumber":"A1",)"
                           R"("ReferencedStudySequence":[],"PatientName":"DOE^JOHN","PatientID":"123",)"
                           R"("PatientWeight":72.5,"SeriesNumber":5,"PixelSpacing":[0.5,0.25],)"
                           R"("ScheduledProcedureStepSequence":[{"Modality":"CT","ScheduledStationAETitle":"CT1"}]})";
    std::string dj = dicom::keywordsToDicomJson(keywords);
    std::string back = dicom::dicomJsonToKeywords(dj);
    CHECK(back == keywords);
    CHECK(dicom::keywordsToDicomJson(back) == dj);
    // tags the dictionary does not know keep their hex form
    CHECK(dicom::dicomJsonToKeywords(R"({"00091001":{"vr":"LO","Value":["private"]}})") ==
          R"({"00091001":"private"})");
    CHECK_THROWS_AS(dicom::dicomJsonToKeywords(R"({"PatientID":{"vr":"LO"}})"), std::invalid_argument);
    CHECK_THROWS_AS(dicom::dicomJsonToKeywords("[1]"), std::invalid_argument);
}

TEST_CASE("a worklist item from a keyword table", "[dicom][json][worklist]") {
    auto item = dicom::worklistItemFromKeywords(R"({
        "PatientID": "MRN1", "PatientName": "DOE^JANE", "AccessionNumber": "ACC1",
        "RequestedProcedureID": "RP1", "StudyInstanceUID": "1.2.3.4", "status": "ignored",
        "ScheduledProcedureStepSequence": [{"Modality": "MR", "ScheduledStationAETitle": "MR_AE",
            "ScheduledProcedureStepStartDate": "20261123", "ScheduledProcedureStepStartTime": "101500"},
            {"Modality": "CT"}]
    })", {"status"});
    CHECK(item.patientId == "MRN1");
    CHECK(item.patientName == "DOE^JANE");
    CHECK(item.accessionNumber == "ACC1");
    CHECK(item.requestedProcedureId == "RP1");
    CHECK(item.studyInstanceUid == "1.2.3.4");
    CHECK(item.modality == "MR");
    CHECK(item.stationAeTitle == "MR_AE");
    CHECK(item.spsStartDate == "20261123");
    CHECK(item.spsStartTime == "101500");
    CHECK(item.status == store::WorklistStatus::Scheduled);
    CHECK(item.dataset.find(R"("0020000D":{"vr":"UI","Value":["1.2.3.4"]})") != std::string::npos);
    CHECK(item.dataset.find("ignored") == std::string::npos);
}
