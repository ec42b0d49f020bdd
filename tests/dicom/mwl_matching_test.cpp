// Modality Worklist matching rules (PS3.4 C.2.2.2, K.2.2) and the response
// built from the query's keys.
#include <catch2/catch.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcsequen.h>

#include "engine/dicom/dataset_json.h"
#include "connectors/dicom/mwl_matching.h"
#include "dcmtk_test_support.h"
#include "dicom_test_support.h"

using namespace junction;
using namespace junction::dicom;
using junction::testing::get;

namespace {

std::unique_ptr<DcmDataset> item(const testing::Order& o) { return datasetFromJson(testing::worklistItem(o).dataset); }

testing::Order ctOrder() {
    return {"P1001", "Doe^John", "ACC1", "CT", "CT01", "20260315", "093000", "CT Head", "1.2.3.1"};
}

// A query with top-level keys and (optionally) one SPS item of keys.
std::unique_ptr<DcmDataset> query(std::initializer_list<std::pair<DcmTagKey, const char*>> top,
                                  std::initializer_list<std::pair<DcmTagKey, const char*>> sps = {}, bool withSps = true) {
    auto q = std::make_unique<DcmDataset>();
    for (auto& [t, v] : top) q->putAndInsertString(t, v);
    if (withSps) {
        DcmItem* spsItem = nullptr;
        q->findOrCreateSequenceItem(DCM_ScheduledProcedureStepSequence, spsItem, 0);
        for (auto& [t, v] : sps) spsItem->putAndInsertString(t, v);
    }
    return q;
}

bool matches(DcmDataset& q, DcmDataset& it) { return matchWorklistItem(q, it) != nullptr; }

}  // namespace

TEST_CASE("Single values, universal and wildcard matching") {
    CHECK(matchValue("LO", "", "anything"));
    CHECK(matchValue("LO", "*", ""));
    CHECK(matchValue("LO", "P1001", "P1001"));
    CHECK_FALSE(matchValue("LO", "P1001", "P1002"));
    CHECK_FALSE(matchValue("LO", "p1001", "P1001"));  // case matters outside PN
    CHECK(matchValue("LO", "P10*", "P1001"));
    CHECK(matchValue("LO", "P?00?", "P1001"));
    CHECK_FALSE(matchValue("LO", "P?00", "P1001"));
    CHECK(matchValue("LO", "*01", "P1001"));
    CHECK(matchValue("LO", "*", "P1001"));
    CHECK(matchValue("LO", "ü?", "üx"));  // ? is one character, not one byte
    CHECK_FALSE(matchValue("LO", "?", "ü?"));
    CHECK(matchValue("CS", "CT", "MR\\CT"));      // any value of a multi-valued attribute
    CHECK(matchValue("CS", "MR\\CT", "CT"));      // a list of values in the query
    CHECK_FALSE(matchValue("CS", "CT", ""));      // a value needs a value
    CHECK(matchValue("UI", "1.2.3\\1.2.4", "1.2.4"));
    CHECK_FALSE(matchValue("UI", "1.2.3", "1.2.34"));
}

TEST_CASE("Person names match case-insensitively, trailing separators ignored") {
    CHECK(matchValue("PN", "doe^john", "DOE^JOHN"));
    CHECK(matchValue("PN", "DOE^JOHN", "Doe^John^^^"));
    CHECK(matchValue("PN", "doe*", "DOE^JOHN"));
    CHECK(matchValue("PN", "*^jo?n", "Doe^John"));
    CHECK_FALSE(matchValue("PN", "doe", "DOE^JOHN"));
    CHECK_FALSE(matchValue("PN", "smith*", "DOE^JOHN"));
}

TEST_CASE("Date and time ranges") {
    CHECK(matchValue("DA", "20260315", "20260315"));
    CHECK_FALSE(matchValue("DA", "20260315", "20260316"));
    CHECK(matchValue("DA", "20260301-20260331", "20260315"));
    CHECK_FALSE(matchValue("DA", "20260301-20260314", "20260315"));
    CHECK(matchValue("DA", "20260315-", "20260315"));
    CHECK(matchValue("DA", "20260315-", "20270101"));
    CHECK_FALSE(matchValue("DA", "20260316-", "20260315"));
    CHECK(matchValue("DA", "-20260315", "19991231"));
    CHECK_FALSE(matchValue("DA", "-20260314", "20260315"));
    CHECK_FALSE(matchValue("DA", "20260301-20260331", ""));
    CHECK(matchValue("DA", "2026.03.01-2026.03.31", "20260315"));  // ACR-NEMA dates

    CHECK(matchValue("TM", "0900-1000", "093000"));
    CHECK(matchValue("TM", "0900-1000", "1000"));
    CHECK(matchValue("TM", "0900-1000", "100059.5"));  // 1000 as an upper bound covers the minute
    CHECK_FALSE(matchValue("TM", "0900-1000", "101000"));
    CHECK(matchValue("TM", "09-", "235959"));
    CHECK_FALSE(matchValue("TM", "-0859", "090000"));
    CHECK(matchValue("TM", "0930", "093015"));
    CHECK(matchValue("TM", "09:30-09:45", "09:40:00"));

    CHECK(matchValue("DT", "20260315-20260316", "20260315120000"));
    CHECK_FALSE(matchValue("DT", "20260316-", "20260315120000"));
}

TEST_CASE("Scheduled start date and time combine into one range") {
    // 2026-03-15 22:00 to 2026-03-16 02:00 is one interval across midnight.
    CHECK(matchDateTime("20260315-20260316", "2200-0200", "20260315", "230000"));
    CHECK(matchDateTime("20260315-20260316", "2200-0200", "20260316", "013000"));
    CHECK(matchDateTime("20260315-20260316", "2200-0200", "20260315", "235959"));
    CHECK_FALSE(matchDateTime("20260315-20260316", "2200-0200", "20260315", "210000"));
    CHECK_FALSE(matchDateTime("20260315-20260316", "2200-0200", "20260316", "030000"));
    CHECK(matchDateTime("20260315", "0900-1000", "20260315", "093000"));
    CHECK_FALSE(matchDateTime("20260315", "0900-1000", "20260316", "093000"));
    CHECK(matchDateTime("20260315-", "1200-", "20260401", "080000"));  // later day: any time
    CHECK_FALSE(matchDateTime("20260315-", "1200-", "20260315", "080000"));
    CHECK(matchDateTime("", "0900-1000", "", "093000"));
    CHECK(matchDateTime("20260315", "", "20260315", ""));

    // Through the matcher: both keys inside the SPS item of the query.
    auto it = item(ctOrder());  // 20260315 093000
    auto across = query({}, {{DCM_ScheduledProcedureStepStartDate, "20260314-20260315"},
                             {DCM_ScheduledProcedureStepStartTime, "2200-1000"}});
    CHECK(matches(*across, *it));
    auto tooEarly = query({}, {{DCM_ScheduledProcedureStepStartDate, "20260314-20260315"},
                               {DCM_ScheduledProcedureStepStartTime, "2200-0900"}});
    CHECK_FALSE(matches(*tooEarly, *it));
}

TEST_CASE("The response holds exactly the keys of the query") {
    testing::Order o = ctOrder();
    auto it = item(o);
    auto q = query({{DCM_PatientID, "P1001"}, {DCM_PatientName, ""}, {DCM_PatientBirthDate, ""}, {DCM_AccessionNumber, ""}},
                   {{DCM_Modality, "CT"}, {DCM_ScheduledProcedureStepStartDate, ""}});
    auto r = matchWorklistItem(*q, *it);
    REQUIRE(r);
    CHECK(get(*r, DCM_PatientID) == "P1001");
    CHECK(get(*r, DCM_PatientName) == "Doe^John");
    CHECK(get(*r, DCM_AccessionNumber) == "ACC1");
    // Asked for but absent in the item: present and empty.
    DcmElement* birth = nullptr;
    REQUIRE(r->findAndGetElement(DCM_PatientBirthDate, birth).good());
    CHECK(birth->getLength() == 0);
    // Not asked for: absent, even though the item has it.
    CHECK_FALSE(r->tagExists(DCM_StudyInstanceUID));
    CHECK_FALSE(r->tagExists(DCM_RequestedProcedureID));
    DcmItem* sps = nullptr;
    REQUIRE(r->findAndGetSequenceItem(DCM_ScheduledProcedureStepSequence, sps, 0).good());
    CHECK(get(*sps, DCM_Modality) == "CT");
    CHECK(get(*sps, DCM_ScheduledProcedureStepStartDate) == "20260315");
    CHECK_FALSE(sps->tagExists(DCM_ScheduledStationAETitle));
    CHECK(sps->card() == 2);
    CHECK_FALSE(r->tagExists(DCM_SpecificCharacterSet));  // all ASCII
}

TEST_CASE("Sequence matching inside the Scheduled Procedure Step") {
    auto ct = item(ctOrder());
    testing::Order mrOrder{"P2002", "Roe^Jane", "ACC2", "MR", "MR01", "20260316", "140000", "MR Knee", "1.2.3.2"};
    auto mr = item(mrOrder);

    auto byModality = query({{DCM_PatientID, ""}}, {{DCM_Modality, "CT"}});
    CHECK(matches(*byModality, *ct));
    CHECK_FALSE(matches(*byModality, *mr));

    auto byStation = query({}, {{DCM_ScheduledStationAETitle, "MR*"}});
    CHECK_FALSE(matches(*byStation, *ct));
    CHECK(matches(*byStation, *mr));

    // The seed query: RequestedProcedureDescription as a key of the SPS item.
    auto byDescription = query({}, {{DCM_RequestedProcedureDescription, "MR Knee"}});
    CHECK(matches(*byDescription, *mr));
    CHECK_FALSE(matches(*byDescription, *ct));

    // An item with two steps: only the matching step comes back.
    auto twoSteps = datasetFromJson(R"({"00100020":{"vr":"LO","Value":["P3"]},
      "00400100":{"vr":"SQ","Value":[
        {"00080060":{"vr":"CS","Value":["CT"]},"00400009":{"vr":"SH","Value":["S1"]}},
        {"00080060":{"vr":"CS","Value":["MR"]},"00400009":{"vr":"SH","Value":["S2"]}}]}})");
    auto q = query({}, {{DCM_Modality, "MR"}, {DCM_ScheduledProcedureStepID, ""}});
    auto r = matchWorklistItem(*q, *twoSteps);
    REQUIRE(r);
    DcmSequenceOfItems* seq = nullptr;
    REQUIRE(r->findAndGetSequence(DCM_ScheduledProcedureStepSequence, seq).good());
    REQUIRE(seq->card() == 1);
    CHECK(get(*seq->getItem(0), DCM_ScheduledProcedureStepID) == "S2");

    // An empty sequence in the query is universal: the whole sequence returns.
    auto whole = std::make_unique<DcmDataset>();
    whole->insertEmptyElement(DCM_ScheduledProcedureStepSequence);
    auto r2 = matchWorklistItem(*whole, *twoSteps);
    REQUIRE(r2);
    REQUIRE(r2->findAndGetSequence(DCM_ScheduledProcedureStepSequence, seq).good());
    CHECK(seq->card() == 2);

    // An item without the sequence fails a non-universal sequence key, and
    // matches universal ones with a sequence of no item.
    auto noSps = datasetFromJson(R"({"00100020":{"vr":"LO","Value":["P4"]}})");
    CHECK_FALSE(matches(*byModality, *noSps));
    auto universalKeys = query({}, {{DCM_Modality, ""}});
    auto r3 = matchWorklistItem(*universalKeys, *noSps);
    REQUIRE(r3);
    REQUIRE(r3->findAndGetSequence(DCM_ScheduledProcedureStepSequence, seq).good());
    CHECK(seq->card() == 0);
}

namespace {

DcmSequenceOfItems* sequenceIn(DcmItem& ds, const DcmTagKey& tag) {
    DcmSequenceOfItems* seq = nullptr;
    return ds.findAndGetSequence(tag, seq).good() ? seq : nullptr;
}

}  // namespace

TEST_CASE("A sequence the item lacks comes back with no item, not one item of empty values") {
    auto it = item(ctOrder());  // no ReferencedStudySequence, no RequestedProcedureCodeSequence
    auto q = query({{DCM_PatientID, "P1001"}}, {{DCM_Modality, ""}});
    DcmItem* ref = nullptr;
    q->findOrCreateSequenceItem(DCM_ReferencedStudySequence, ref, 0);
    ref->putAndInsertString(DCM_ReferencedSOPClassUID, "");
    ref->putAndInsertString(DCM_ReferencedSOPInstanceUID, "");
    DcmItem* code = nullptr;
    q->findOrCreateSequenceItem(DCM_RequestedProcedureCodeSequence, code, 0);
    code->putAndInsertString(DCM_CodeValue, "");
    q->insertEmptyElement(DCM_ReferencedPatientSequence);  // universal
    auto r = matchWorklistItem(*q, *it);
    REQUIRE(r);
    for (const DcmTagKey& tag : {DCM_ReferencedStudySequence, DCM_RequestedProcedureCodeSequence, DCM_ReferencedPatientSequence}) {
        INFO(DcmTag(tag).getTagName());
        DcmSequenceOfItems* seq = sequenceIn(*r, tag);
        REQUIRE(seq);
        CHECK(seq->card() == 0);
    }
    // A value asked for in a sequence the item lacks matches nothing.
    code->putAndInsertString(DCM_CodeValue, "CT123");
    CHECK_FALSE(matches(*q, *it));
    // The item's own sequence comes back with its items.
    auto withCode = datasetFromJson(R"({"00100020":{"vr":"LO","Value":["P1001"]},
      "00321064":{"vr":"SQ","Value":[{"00080100":{"vr":"SH","Value":["CT123"]},"00080102":{"vr":"SH","Value":["L"]}}]}})");
    auto r2 = matchWorklistItem(*q, *withCode);
    REQUIRE(r2);
    REQUIRE(sequenceIn(*r2, DCM_RequestedProcedureCodeSequence));
    REQUIRE(sequenceIn(*r2, DCM_RequestedProcedureCodeSequence)->card() == 1);
    CHECK(get(*sequenceIn(*r2, DCM_RequestedProcedureCodeSequence)->getItem(0), DCM_CodeValue) == "CT123");
}

TEST_CASE("An empty Scheduled Procedure Step item asks for every attribute of the step") {
    const std::vector<DcmTagKey> stepKeys = {
        DCM_Modality, DCM_RequestedContrastAgent, DCM_ScheduledStationAETitle, DCM_ScheduledProcedureStepStartDate,
        DCM_ScheduledProcedureStepStartTime, DCM_ScheduledProcedureStepEndDate, DCM_ScheduledProcedureStepEndTime,
        DCM_ScheduledPerformingPhysicianName, DCM_ScheduledProcedureStepDescription, DCM_ScheduledProtocolCodeSequence,
        DCM_ScheduledProcedureStepID, DCM_ScheduledStationName, DCM_ScheduledProcedureStepLocation, DCM_PreMedication,
        DCM_ScheduledProcedureStepStatus, DCM_CommentsOnTheScheduledProcedureStep};
    auto withProtocol = datasetFromJson(R"({"00100020":{"vr":"LO","Value":["P5"]},
      "00400100":{"vr":"SQ","Value":[{"00080060":{"vr":"CS","Value":["MR"]},"00400009":{"vr":"SH","Value":["S5"]},
        "00400008":{"vr":"SQ","Value":[{"00080100":{"vr":"SH","Value":["P1"]},"00080102":{"vr":"SH","Value":["L"]},
                                        "00089999":{"vr":"LO","Value":["not a code attribute"]}}]}}]}})");
    auto emptyItem = query({{DCM_PatientID, ""}}, {});  // one SPS item, no attribute in it
    auto noItem = std::make_unique<DcmDataset>();
    noItem->insertEmptyElement(DCM_ScheduledProcedureStepSequence);

    for (auto* q : {emptyItem.get(), noItem.get()}) {
        // The seed order's step: values where it has them, empty elsewhere; its
        // RequestedProcedureDescription, no step attribute, is not among them.
        auto r = matchWorklistItem(*q, *item(ctOrder()));
        REQUIRE(r);
        DcmItem* sps = nullptr;
        REQUIRE(r->findAndGetSequenceItem(DCM_ScheduledProcedureStepSequence, sps, 0).good());
        CHECK(sps->card() == stepKeys.size());
        for (const auto& k : stepKeys) CHECK(sps->tagExists(k));
        CHECK(get(*sps, DCM_Modality) == "CT");
        CHECK(get(*sps, DCM_ScheduledStationAETitle) == "CT01");
        CHECK(get(*sps, DCM_ScheduledProcedureStepID) == "SPS-ACC1");
        CHECK(get(*sps, DCM_ScheduledStationName).empty());
        REQUIRE(sequenceIn(*sps, DCM_ScheduledProtocolCodeSequence));
        CHECK(sequenceIn(*sps, DCM_ScheduledProtocolCodeSequence)->card() == 0);
        CHECK_FALSE(sps->tagExists(DCM_RequestedProcedureDescription));

        // A protocol code: the attributes of a code, those it lacks empty.
        auto r2 = matchWorklistItem(*q, *withProtocol);
        REQUIRE(r2);
        REQUIRE(r2->findAndGetSequenceItem(DCM_ScheduledProcedureStepSequence, sps, 0).good());
        DcmSequenceOfItems* protocol = sequenceIn(*sps, DCM_ScheduledProtocolCodeSequence);
        REQUIRE(protocol);
        REQUIRE(protocol->card() == 1);
        DcmItem* p = protocol->getItem(0);
        CHECK(get(*p, DCM_CodeValue) == "P1");
        CHECK(get(*p, DCM_CodingSchemeDesignator) == "L");
        CHECK(p->tagExists(DCM_CodingSchemeVersion));
        CHECK(p->tagExists(DCM_CodeMeaning));
        CHECK(p->card() == 4);
    }
}

TEST_CASE("Binary-valued keys are return keys, not matching keys") {
    auto it = item(ctOrder());
    auto q = query({{DCM_PatientID, "P1001"}});
    q->putAndInsertUint16(DCM_PregnancyStatus, 0);  // dcmjs-dimse sends 0 for an empty US
    auto r = matchWorklistItem(*q, *it);
    REQUIRE(r);
    DcmElement* e = nullptr;
    REQUIRE(r->findAndGetElement(DCM_PregnancyStatus, e).good());
    CHECK(e->getLength() == 0);  // the item has none
}

TEST_CASE("Character sets: the query is read in its own, non-ASCII answers say UTF-8") {
    testing::Order o = ctOrder();
    o.patientName = "Müller^Jürgen";
    auto it = item(o);
    // A Latin-1 query for the name.
    auto q = std::make_unique<DcmDataset>();
    q->putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100");
    q->putAndInsertString(DCM_PatientName, "M\xFCller^J*");
    std::string err;
    bool converted = toUtf8(*q, &err);
    INFO(err);
    REQUIRE(converted);
    CHECK(get(*q, DCM_PatientName) == "Müller^J*");
    auto r = matchWorklistItem(*q, *it);
    REQUIRE(r);
    CHECK(get(*r, DCM_PatientName) == "Müller^Jürgen");
    CHECK(get(*r, DCM_SpecificCharacterSet) == "ISO_IR 192");

    auto bad = std::make_unique<DcmDataset>();
    bad->putAndInsertString(DCM_SpecificCharacterSet, "NO_SUCH_CHARSET");
    bad->putAndInsertString(DCM_PatientName, "X");
    CHECK_FALSE(toUtf8(*bad, &err));
    CHECK_THAT(err, Catch::Contains("NO_SUCH_CHARSET"));
}

TEST_CASE("Queries become store filters on the indexed keys only") {
    auto q = query({{DCM_PatientID, "P1*"}, {DCM_PatientName, "doe^john^^"}, {DCM_AccessionNumber, "A\\B"},
                    {DCM_StudyInstanceUID, "1.2.3"}, {DCM_RequestedProcedureID, "RP1"}, {DCM_PatientSex, "M"}},
                   {{DCM_Modality, "CT"}, {DCM_ScheduledStationAETitle, "*"},
                    {DCM_ScheduledProcedureStepStartDate, "20260315"}, {DCM_ScheduledProcedureStepStartTime, "0900-1000"}});
    store::WorklistFilter f = worklistFilterFor(*q);
    CHECK(f.patientId == "P1*");
    CHECK(f.patientName == "doe^john");
    CHECK(f.accessionNumber.empty());  // a list of values: left to the matcher
    CHECK(f.studyInstanceUid == "1.2.3");
    CHECK(f.requestedProcedureId == "RP1");
    CHECK(f.modality == "CT");
    CHECK(f.stationAeTitle.empty());
    CHECK(f.spsStartDate == "20260315");
    CHECK(f.spsStartTime == "0900-1000");
    CHECK_FALSE(f.includeFinished);

    // A time range across a date range is one combined range: no time column filter.
    auto q2 = query({}, {{DCM_ScheduledProcedureStepStartDate, "20260315-20260316"},
                         {DCM_ScheduledProcedureStepStartTime, "2200-0200"}});
    store::WorklistFilter f2 = worklistFilterFor(*q2);
    CHECK(f2.spsStartDate == "20260315-20260316");
    CHECK(f2.spsStartTime.empty());
}
