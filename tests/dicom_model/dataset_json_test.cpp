// DICOM JSON <-> DcmDataset: value representations, sequences, person names,
// numbers, binary data, empty values, round trips and malformed input.
#include <catch2/catch.hpp>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcsequen.h>

#include "engine/dicom/dataset_json.h"
#include "../dicom/dcmtk_test_support.h"

using namespace junction::dicom;
using junction::testing::get;

namespace {

Poco::JSON::Object::Ptr parse(const std::string& json) {
    return Poco::JSON::Parser().parse(json).extract<Poco::JSON::Object::Ptr>();
}

const char* kItem = R"({
  "00080005": {"vr": "CS", "Value": ["ISO_IR 192"]},
  "00080050": {"vr": "SH", "Value": ["ACC-1"]},
  "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Müller^Jürgen", "Ideographic": "ミュラー^ユルゲン"}]},
  "00100020": {"vr": "LO", "Value": ["P1"]},
  "00100030": {"vr": "DA"},
  "00101020": {"vr": "DS", "Value": [1.75]},
  "00101030": {"vr": "DS", "Value": [72.5]},
  "00200013": {"vr": "IS", "Value": [7]},
  "00280010": {"vr": "US", "Value": [512]},
  "00181310": {"vr": "US", "Value": [0, 256, 256, 0]},
  "00209161": {"vr": "UI", "Value": ["1.2.3.4"]},
  "00081030": {"vr": "LO", "Value": ["A", null, "C"]},
  "00091010": {"vr": "OB", "InlineBinary": "AAECAwQ="},
  "00209165": {"vr": "AT", "Value": ["00100020", "0020000D"]},
  "00400100": {"vr": "SQ", "Value": [
    {"00080060": {"vr": "CS", "Value": ["CT"]}, "00400002": {"vr": "DA", "Value": ["20260101"]},
     "00400008": {"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": ["X1"]}}]}},
    {"00080060": {"vr": "CS", "Value": ["MR"]}}
  ]},
  "00081110": {"vr": "SQ", "Value": []}
})";

}  // namespace

TEST_CASE("DICOM JSON builds a dataset with the VRs and values given") {
    auto ds = datasetFromJson(kItem);
    CHECK(get(*ds, DCM_AccessionNumber) == "ACC-1");
    CHECK(get(*ds, DCM_PatientName) == "Müller^Jürgen=ミュラー^ユルゲン");
    CHECK(get(*ds, DCM_PatientID) == "P1");
    CHECK(get(*ds, DCM_PatientSize) == "1.75");
    CHECK(get(*ds, DCM_PatientWeight) == "72.5");
    CHECK(get(*ds, DCM_InstanceNumber) == "7");
    Uint16 rows = 0;
    CHECK(ds->findAndGetUint16(DCM_Rows, rows).good());
    CHECK(rows == 512);
    Uint16 second = 0;
    CHECK(ds->findAndGetUint16(DCM_AcquisitionMatrix, second, 1).good());
    CHECK(second == 256);
    CHECK(get(*ds, DCM_StudyDescription) == "A\\\\C");

    // Present but empty.
    DcmElement* birth = nullptr;
    REQUIRE(ds->findAndGetElement(DCM_PatientBirthDate, birth).good());
    CHECK(birth->getLength() == 0);

    // Private binary element with its VR from the JSON.
    DcmElement* priv = nullptr;
    REQUIRE(ds->findAndGetElement(DcmTagKey(0x0009, 0x1010), priv).good());
    CHECK(priv->ident() == EVR_OB);
    Uint8* bytes = nullptr;
    priv->getUint8Array(bytes);
    REQUIRE(priv->getLength() >= 5);
    CHECK(bytes[0] == 0);
    CHECK(bytes[4] == 4);

    // Sequences, nested.
    DcmSequenceOfItems* sps = nullptr;
    REQUIRE(ds->findAndGetSequence(DCM_ScheduledProcedureStepSequence, sps).good());
    REQUIRE(sps->card() == 2);
    CHECK(get(*sps->getItem(0), DCM_Modality) == "CT");
    CHECK(get(*sps->getItem(1), DCM_Modality) == "MR");
    DcmItem* code = nullptr;
    REQUIRE(sps->getItem(0)->findAndGetSequenceItem(DCM_ScheduledProtocolCodeSequence, code, 0).good());
    CHECK(get(*code, DCM_CodeValue) == "X1");
    DcmSequenceOfItems* empty = nullptr;
    REQUIRE(ds->findAndGetSequence(DCM_ReferencedStudySequence, empty).good());
    CHECK(empty->card() == 0);
}

TEST_CASE("DICOM JSON round-trips through a dataset") {
    auto ds = datasetFromJson(kItem);
    std::string json = datasetToJson(*ds);
    auto o = parse(json);
    CHECK(o->getObject("00100010")->getValue<std::string>("vr") == "PN");
    auto pn = o->getObject("00100010")->getArray("Value")->getObject(0);
    CHECK(pn->getValue<std::string>("Alphabetic") == "Müller^Jürgen");
    CHECK(pn->getValue<std::string>("Ideographic") == "ミュラー^ユルゲン");
    CHECK(!pn->has("Phonetic"));
    CHECK(o->getObject("00101030")->getArray("Value")->get(0).convert<double>() == Approx(72.5));
    CHECK(o->getObject("00200013")->getArray("Value")->get(0).isInteger());
    CHECK(o->getObject("00200013")->getArray("Value")->get(0).convert<int>() == 7);
    CHECK(o->getObject("00280010")->getArray("Value")->get(0).convert<int>() == 512);
    CHECK(!o->getObject("00100030")->has("Value"));
    CHECK(o->getObject("00100030")->getValue<std::string>("vr") == "DA");
    // Five bytes come back as six: DICOM values have even length (padded with 0).
    CHECK(o->getObject("00091010")->getValue<std::string>("InlineBinary") == "AAECAwQA");
    auto desc = o->getObject("00081030")->getArray("Value");
    REQUIRE(desc->size() == 3);
    CHECK(desc->isNull(1));
    auto at = o->getObject("00209165")->getArray("Value");
    CHECK(at->getElement<std::string>(0) == "00100020");
    CHECK(at->getElement<std::string>(1) == "0020000D");
    auto sps = o->getObject("00400100")->getArray("Value");
    REQUIRE(sps->size() == 2);
    CHECK(sps->getObject(0)->getObject("00400008")->getArray("Value")->getObject(0)->getObject("00080100")
              ->getArray("Value")->getElement<std::string>(0) == "X1");
    CHECK(!o->getObject("00081110")->has("Value"));

    // A second pass gives the same JSON: nothing lost or changed.
    auto again = datasetFromJson(json);
    CHECK(datasetToJson(*again) == json);
}

TEST_CASE("DICOM JSON takes the VR from the dictionary when it is missing") {
    auto ds = datasetFromJson(R"({"00100020": {"Value": ["X"]}, "00280011": {"Value": [256]}})");
    CHECK(get(*ds, DCM_PatientID) == "X");
    Uint16 cols = 0;
    CHECK(ds->findAndGetUint16(DCM_Columns, cols).good());
    CHECK(cols == 256);
}

TEST_CASE("Malformed DICOM JSON is reported with the offending tag") {
    CHECK_THROWS_AS(datasetFromJson("not json"), JsonError);
    CHECK_THROWS_AS(datasetFromJson("[1,2]"), JsonError);
    CHECK_THROWS_WITH(datasetFromJson(R"({"0010002": {"vr": "LO"}})"), Catch::Contains("0010002"));
    CHECK_THROWS_WITH(datasetFromJson(R"({"00100020": {"vr": "XX", "Value": ["a"]}})"), Catch::Contains("unknown VR"));
    CHECK_THROWS_WITH(datasetFromJson(R"({"00100020": {"vr": "LO", "Value": "a"}})"), Catch::Contains("array"));
    CHECK_THROWS_WITH(datasetFromJson(R"({"00091001": {"Value": ["a"]}})"), Catch::Contains("dictionary"));
    CHECK_THROWS_WITH(datasetFromJson(R"({"00400100": {"vr": "SQ", "Value": [{"00080060": {"vr": "CS", "Value": [{}]}}]}})"),
                      Catch::Contains("00400100[0].00080060"));
    CHECK_THROWS_WITH(datasetFromJson(R"({"00280010": {"vr": "US", "Value": ["abc"]}})"), Catch::Contains("00280010"));
}

TEST_CASE("mergeJson replaces attributes and keeps the others") {
    auto ds = datasetFromJson(R"({"00100020": {"vr": "LO", "Value": ["A"]}, "00080050": {"vr": "SH", "Value": ["X"]}})");
    mergeJson(*ds, R"({"00100020": {"vr": "LO", "Value": ["B"]}})");
    CHECK(get(*ds, DCM_PatientID) == "B");
    CHECK(get(*ds, DCM_AccessionNumber) == "X");
}

TEST_CASE("DICOM JSON writing: text VRs keep backslashes, DS/IS text becomes numbers when it is one") {
    DcmDataset ds;
    ds.putAndInsertString(DCM_ImageComments, "a\\b");       // LT: one value, backslash included
    ds.putAndInsertString(DCM_SliceThickness, "5.");        // DS forms JSON has no literal for
    ds.putAndInsertString(DCM_SliceLocation, "+.5");
    ds.putAndInsertString(DCM_PixelSpacing, "1E2\\abc");    // a DS that is no number stays text
    ds.putAndInsertString(DCM_InstanceNumber, "+12");       // IS
    ds.putAndInsertFloat64(DCM_DiffusionBValue, 0.25);       // FD: a binary number
    ds.putAndInsertString(DCM_AccessionNumber, "");         // present, empty
    Uint8 one[2] = {0xFF, 0x00};
    ds.putAndInsertUint8Array(DcmTag(0x0009, 0x1010, EVR_OB), one, 2);
    std::string json = datasetToJson(ds);
    auto o = parse(json);
    auto lt = o->getObject("00204000")->getArray("Value");
    REQUIRE(lt->size() == 1);
    CHECK(lt->getElement<std::string>(0) == "a\\b");
    CHECK(o->getObject("00180050")->getArray("Value")->get(0).convert<double>() == Approx(5.0));
    CHECK(o->getObject("00201041")->getArray("Value")->get(0).convert<double>() == Approx(0.5));
    auto ps = o->getObject("00280030")->getArray("Value");
    REQUIRE(ps->size() == 2);
    CHECK(ps->get(0).convert<double>() == Approx(100.0));
    CHECK(ps->get(1).isString());
    CHECK(ps->getElement<std::string>(1) == "abc");
    CHECK(o->getObject("00200013")->getArray("Value")->get(0).convert<int>() == 12);
    CHECK(o->getObject("00189087")->getArray("Value")->get(0).convert<double>() == Approx(0.25));
    CHECK(!o->getObject("00080050")->has("Value"));
    CHECK(o->getObject("00091010")->getValue<std::string>("InlineBinary") == "/wA=");
}

TEST_CASE("appendItemJson leaves out what the caller names, at every level") {
    auto ds = datasetFromJson(kItem);
    std::string out = "prefix:";
    appendItemJson(*ds, out, [](DcmObject& obj) { return obj.getTag() == DCM_Modality; });
    REQUIRE(out.rfind("prefix:", 0) == 0);
    auto o = parse(out.substr(7));
    auto sps = o->getObject("00400100")->getArray("Value");
    CHECK(!sps->getObject(0)->has("00080060"));
    CHECK(sps->getObject(0)->has("00400002"));
    CHECK(o->has("00100020"));
}
