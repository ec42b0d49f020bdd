// The SQLite worklist: identity rules of upsert, status changes, every form of
// filter value (universal, single value, wildcard, range, UID list), finished
// items, limits, persistence, and a shared file with the message store.
#include <catch2/catch.hpp>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <thread>

#include "engine/store/message_store.h"
#include "engine/store/worklist_store.h"

using namespace junction::store;

namespace {

struct WlDir {
    std::string path;
    WlDir() {
        char tmpl[] = "/tmp/junction-worklist-test-XXXXXX";
        char* p = mkdtemp(tmpl);
        REQUIRE(p != nullptr);
        path = p;
    }
    ~WlDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string db() const { return path + "/var/junction.db"; }
};

WorklistItem item(const std::string& acc, const std::string& rp, const std::string& pid, const std::string& name,
                  const std::string& modality, const std::string& date, const std::string& time,
                  const std::string& uid = "", const std::string& ae = "") {
    WorklistItem it;
    it.accessionNumber = acc;
    it.requestedProcedureId = rp;
    it.patientId = pid;
    it.patientName = name;
    it.modality = modality;
    it.spsStartDate = date;
    it.spsStartTime = time;
    it.studyInstanceUid = uid.empty() ? "1.2.3." + acc + "." + rp : uid;
    it.stationAeTitle = ae;
    it.dataset = R"({"00080050":{"vr":"SH","Value":[")" + acc + R"("]}})";
    return it;
}

std::set<std::string> accessions(const std::vector<WorklistItem>& items) {
    std::set<std::string> out;
    for (const auto& i : items) out.insert(i.accessionNumber);
    return out;
}

// A small worklist with distinct values in every column.
void fill(WorklistStore& wl) {
    wl.upsert(item("A1", "RP1", "P1", "DOE^JANE", "CT", "20261123", "093000", "", "CT_AE1"));
    wl.upsert(item("A2", "RP2", "P2", "Doe^John", "MR", "20261123", "140000", "", "MR_AE1"));
    wl.upsert(item("A3", "RP3", "P3", "SMITH^ANNA", "CT", "20261124", "080000", "", "CT_AE2"));
    wl.upsert(item("A4", "RP4", "P1", "DOE^JANE", "US", "20261125", "101500.5", "", "US_AE1"));
    wl.upsert(item("B_5%", "RP5", "P5", "O'HARA^SEAN", "CR", "20261120", "", "", "CR[1]"));
}

std::vector<WorklistItem> findBy(WorklistStore& wl, void (*set)(WorklistFilter&, const std::string&),
                                 const std::string& v) {
    WorklistFilter f;
    set(f, v);
    return wl.find(f);
}

}  // namespace

TEST_CASE("worklist status names", "[store][worklist]") {
    CHECK(std::string(toString(WorklistStatus::InProgress)) == "IN PROGRESS");
    CHECK(parseWorklistStatus("in_progress") == WorklistStatus::InProgress);
    CHECK(parseWorklistStatus("In Progress") == WorklistStatus::InProgress);
    CHECK(parseWorklistStatus("cancelled") == WorklistStatus::Cancelled);
    CHECK(parseWorklistStatus("COMPLETED") == WorklistStatus::Completed);
    CHECK(parseWorklistStatus("discontinued") == WorklistStatus::Discontinued);
    CHECK(parseWorklistStatus("scheduled") == WorklistStatus::Scheduled);
    CHECK_FALSE(parseWorklistStatus("done"));
    CHECK_FALSE(parseWorklistStatus(""));
}

TEST_CASE("worklist upsert: identity by accession + requested procedure, else study UID", "[store][worklist]") {
    WlDir dir;
    auto wl = openSqliteWorklist(dir.db(), false);
    CHECK(wl->count() == 0);

    auto first = item("ACC1", "RP1", "P1", "DOE^JANE", "CT", "20261123", "093000");
    std::int64_t id1 = wl->upsert(first);
    CHECK(id1 > 0);
    CHECK(wl->count() == 1);

    // Same accession and requested procedure: an update of the same row.
    auto changed = first;
    changed.modality = "MR";
    changed.dataset = R"({"00080050":{"vr":"SH","Value":["ACC1"]},"00100020":{"vr":"LO","Value":["P1"]}})";
    CHECK(wl->upsert(changed) == id1);
    CHECK(wl->count() == 1);
    auto got = wl->get(id1);
    REQUIRE(got);
    CHECK(got->modality == "MR");
    CHECK(got->dataset == changed.dataset);
    CHECK(got->status == WorklistStatus::Scheduled);
    CHECK(got->updatedAt.time_since_epoch().count() > 0);

    // Same accession, another requested procedure: a new item.
    std::int64_t id2 = wl->upsert(item("ACC1", "RP2", "P1", "DOE^JANE", "CT", "20261123", "100000"));
    CHECK(id2 != id1);
    CHECK(wl->count() == 2);

    // Without accession: identity is the study instance UID.
    auto noAcc = item("", "", "P9", "NOBODY^X", "DX", "20261123", "110000", "1.2.840.99.1");
    std::int64_t id3 = wl->upsert(noAcc);
    CHECK(wl->count() == 3);
    noAcc.patientName = "NOBODY^Y";
    CHECK(wl->upsert(noAcc) == id3);
    CHECK(wl->get(id3)->patientName == "NOBODY^Y");
    CHECK(wl->count() == 3);

    // An upsert reopens a cancelled item with the status it carries.
    REQUIRE(wl->setStatus("1.2.840.99.1", WorklistStatus::Cancelled) == 1);
    CHECK(wl->get(id3)->status == WorklistStatus::Cancelled);
    CHECK(wl->upsert(noAcc) == id3);
    CHECK(wl->get(id3)->status == WorklistStatus::Scheduled);

    // keepStatus: an existing item keeps its status; a new one gets `status`.
    REQUIRE(wl->setStatus("1.2.840.99.1", WorklistStatus::InProgress) == 1);
    auto keep = noAcc;
    keep.patientName = "NOBODY^Z";
    keep.keepStatus = true;
    keep.status = WorklistStatus::Scheduled;
    CHECK(wl->upsert(keep) == id3);
    CHECK(wl->get(id3)->status == WorklistStatus::InProgress);
    CHECK(wl->get(id3)->patientName == "NOBODY^Z");
    auto fresh = item("ACC-NEW", "RP1", "P8", "NEW^ONE", "CT", "", "");
    fresh.keepStatus = true;
    fresh.status = WorklistStatus::Scheduled;
    std::int64_t id4 = wl->upsert(fresh);
    CHECK(wl->get(id4)->status == WorklistStatus::Scheduled);
    CHECK(wl->count() == 4);

    // Neither key: rejected.
    auto none = item("", "", "P0", "X", "CT", "", "");
    none.studyInstanceUid.clear();
    CHECK_THROWS_AS(wl->upsert(none), std::invalid_argument);
    CHECK(wl->count() == 4);
    CHECK_FALSE(wl->get(9999));
}

TEST_CASE("worklist setStatus by accession number and by study UID", "[store][worklist]") {
    WlDir dir;
    auto wl = openSqliteWorklist(dir.db(), false);
    std::int64_t a = wl->upsert(item("ACC1", "RP1", "P1", "A^B", "CT", "20261123", "090000", "1.2.3.100"));
    std::int64_t b = wl->upsert(item("ACC1", "RP2", "P1", "A^B", "CT", "20261123", "100000", "1.2.3.100"));
    std::int64_t c = wl->upsert(item("ACC2", "RP1", "P2", "C^D", "MR", "20261123", "110000", "1.2.3.200"));

    CHECK(wl->setStatus("ACC1", WorklistStatus::InProgress) == 2);  // both steps of the accession
    CHECK(wl->get(a)->status == WorklistStatus::InProgress);
    CHECK(wl->get(b)->status == WorklistStatus::InProgress);
    CHECK(wl->get(c)->status == WorklistStatus::Scheduled);
    CHECK(wl->setStatus("ACC1", WorklistStatus::InProgress) == 0);  // nothing changes twice

    CHECK(wl->setStatus("1.2.3.200", WorklistStatus::Completed) == 1);
    CHECK(wl->get(c)->status == WorklistStatus::Completed);
    CHECK(wl->setStatus("NO-SUCH-KEY", WorklistStatus::Cancelled) == 0);
    CHECK_THROWS_AS(wl->setStatus("", WorklistStatus::Cancelled), std::invalid_argument);

    // Finished items are left out by default, included on request.
    WorklistFilter f;
    CHECK(accessions(wl->find(f)) == std::set<std::string>{"ACC1"});
    f.includeFinished = true;
    CHECK(wl->find(f).size() == 3);
    wl->setStatus("1.2.3.100", WorklistStatus::Discontinued);
    f.includeFinished = false;
    CHECK(wl->find(f).empty());
    wl->setStatus("ACC2", WorklistStatus::Scheduled);
    CHECK(accessions(wl->find(f)) == std::set<std::string>{"ACC2"});
    wl->setStatus("ACC2", WorklistStatus::Cancelled);
    CHECK(wl->find(f).empty());
}

TEST_CASE("worklist find: every filter form", "[store][worklist]") {
    WlDir dir;
    auto wl = openSqliteWorklist(dir.db(), false);
    fill(*wl);
    using S = std::set<std::string>;

    SECTION("universal match") {
        WorklistFilter f;
        auto all = wl->find(f);
        REQUIRE(all.size() == 5);
        // ordered by SPS start date and time
        CHECK(all.front().accessionNumber == "B_5%");
        CHECK(all.back().accessionNumber == "A4");
        f.modality = "*";
        CHECK(wl->find(f).size() == 5);
    }
    SECTION("single values") {
        CHECK(accessions(findBy(*wl, [](WorklistFilter& f, const std::string& v) { f.patientId = v; }, "P1")) ==
              S{"A1", "A4"});
        CHECK(accessions(findBy(*wl, [](WorklistFilter& f, const std::string& v) { f.modality = v; }, "CT")) ==
              S{"A1", "A3"});
        CHECK(findBy(*wl, [](WorklistFilter& f, const std::string& v) { f.modality = v; }, "ct").empty());
        CHECK(accessions(findBy(*wl, [](WorklistFilter& f, const std::string& v) { f.accessionNumber = v; },
                                "A3")) == S{"A3"});
        CHECK(accessions(findBy(*wl, [](WorklistFilter& f, const std::string& v) { f.stationAeTitle = v; },
                                "MR_AE1")) == S{"A2"});
        CHECK(accessions(findBy(*wl, [](WorklistFilter& f, const std::string& v) { f.requestedProcedureId = v; },
                                "RP4")) == S{"A4"});
        CHECK(accessions(findBy(*wl, [](WorklistFilter& f, const std::string& v) { f.studyInstanceUid = v; },
                                "1.2.3.A2.RP2")) == S{"A2"});
        CHECK(accessions(findBy(*wl, [](WorklistFilter& f, const std::string& v) { f.spsStartDate = v; },
                                "20261123")) == S{"A1", "A2"});
        CHECK(accessions(findBy(*wl, [](WorklistFilter& f, const std::string& v) { f.spsStartTime = v; },
                                "080000")) == S{"A3"});
        CHECK(findBy(*wl, [](WorklistFilter& f, const std::string& v) { f.patientId = v; }, "P").empty());
    }
    SECTION("patient name is case-insensitive") {
        auto byName = [&](const std::string& v) {
            return accessions(findBy(*wl, [](WorklistFilter& f, const std::string& v) { f.patientName = v; }, v));
        };
        CHECK(byName("doe^jane") == S{"A1", "A4"});
        CHECK(byName("DOE^JOHN") == S{"A2"});
        CHECK(byName("DOE*") == S{"A1", "A2", "A4"});
        CHECK(byName("d?e^j*") == S{"A1", "A2", "A4"});
        CHECK(byName("*ANNA") == S{"A3"});
        CHECK(byName("o'hara^*") == S{"B_5%"});
        CHECK(byName("DOE").empty());  // a single value is not a prefix
    }
    SECTION("wildcards, with SQL pattern characters taken literally") {
        auto byAcc = [&](const std::string& v) {
            return accessions(
                findBy(*wl, [](WorklistFilter& f, const std::string& v) { f.accessionNumber = v; }, v));
        };
        CHECK(byAcc("A*") == S{"A1", "A2", "A3", "A4"});
        CHECK(byAcc("?3") == S{"A3"});
        CHECK(byAcc("B_5%") == S{"B_5%"});
        CHECK(byAcc("B_*") == S{"B_5%"});
        CHECK(byAcc("A_*").empty());  // '_' is not a wildcard
        CHECK(byAcc("A%").empty());   // nor is '%'
        CHECK(byAcc("a*").empty());   // case-sensitive
        auto byAe = [&](const std::string& v) {
            return accessions(findBy(*wl, [](WorklistFilter& f, const std::string& v) { f.stationAeTitle = v; }, v));
        };
        CHECK(byAe("CT_AE*") == S{"A1", "A3"});
        CHECK(byAe("CR[1]") == S{"B_5%"});
        CHECK(byAe("CR[1*") == S{"B_5%"});
        CHECK(byAe("CR1").empty());
    }
    SECTION("date ranges") {
        auto byDate = [&](const std::string& v) {
            return accessions(findBy(*wl, [](WorklistFilter& f, const std::string& v) { f.spsStartDate = v; }, v));
        };
        CHECK(byDate("20261123-20261124") == S{"A1", "A2", "A3"});
        CHECK(byDate("20261124-") == S{"A3", "A4"});
        CHECK(byDate("-20261123") == S{"B_5%", "A1", "A2"});
        CHECK(byDate("20261126-").empty());
        CHECK(byDate("202611*") == S{"A1", "A2", "A3", "A4", "B_5%"});
    }
    SECTION("time ranges compare by prefix") {
        auto byTime = [&](const std::string& v) {
            return accessions(findBy(*wl, [](WorklistFilter& f, const std::string& v) { f.spsStartTime = v; }, v));
        };
        CHECK(byTime("0900-1015") == S{"A1", "A4"});  // 101500.5 is within 10:15
        CHECK(byTime("0900-1014") == S{"A1"});
        CHECK(byTime("1200-") == S{"A2"});
        CHECK(byTime("-0800") == S{"A3"});  // items without a time never match a range
    }
    SECTION("list of UIDs") {
        WorklistFilter f;
        f.studyInstanceUid = "1.2.3.A1.RP1\\1.2.3.A3.RP3\\9.9.9";
        CHECK(accessions(wl->find(f)) == S{"A1", "A3"});
    }
    SECTION("combined filters and limit") {
        WorklistFilter f;
        f.modality = "CT";
        f.spsStartDate = "20261123-";
        f.patientName = "doe*";
        CHECK(accessions(wl->find(f)) == S{"A1"});
        WorklistFilter g;
        g.limit = 2;
        auto two = wl->find(g);
        REQUIRE(two.size() == 2);
        CHECK(two[0].accessionNumber == "B_5%");
        CHECK(two[1].accessionNumber == "A1");
    }
}

TEST_CASE("worklist find: an item with several steps matches by any one of them", "[store][worklist]") {
    WlDir dir;
    auto wl = openSqliteWorklist(dir.db(), false);
    fill(*wl);
    // A CT step today, then an MR step on another station tomorrow.
    WorklistItem two = item("M1", "RPM", "P9", "MULTI^STEP", "CT", "20261123", "070000", "", "CT_AE1");
    two.moreSteps.push_back({"MR", "MR_AE9", "20261124", "120000"});
    wl->upsert(two);
    using S = std::set<std::string>;
    auto find = [&](auto set) {
        WorklistFilter f;
        set(f);
        return accessions(wl->find(f));
    };
    CHECK(find([](WorklistFilter& f) { f.modality = "CT"; }) == S{"A1", "A3", "M1"});
    CHECK(find([](WorklistFilter& f) { f.modality = "MR"; }) == S{"A2", "M1"});
    CHECK(find([](WorklistFilter& f) { f.stationAeTitle = "MR_AE9"; }) == S{"M1"});
    CHECK(find([](WorklistFilter& f) { f.spsStartDate = "20261124"; }) == S{"A3", "M1"});
    CHECK(find([](WorklistFilter& f) { f.spsStartDate = "20261124-"; f.spsStartTime = "1100-1300"; }) == S{"M1"});
    // The keys of one step together: no step is MR today.
    CHECK(find([](WorklistFilter& f) { f.modality = "MR"; f.spsStartDate = "20261123"; }) == S{"A2"});
    CHECK(find([](WorklistFilter& f) { f.modality = "MR"; f.patientId = "P9"; }) == S{"M1"});
    CHECK(find([](WorklistFilter& f) { f.modality = "MR"; f.patientId = "P1"; }).empty());
    // Ordered by the item's first step, limited after both lookups.
    WorklistFilter mr;
    mr.modality = "MR";
    auto items = wl->find(mr);
    REQUIRE(items.size() == 2);
    CHECK(items[0].accessionNumber == "M1");
    mr.limit = 1;
    REQUIRE(wl->find(mr).size() == 1);
    CHECK(wl->find(mr)[0].accessionNumber == "M1");
    // An update to one step forgets the other.
    two.moreSteps.clear();
    wl->upsert(two);
    CHECK(find([](WorklistFilter& f) { f.modality = "MR"; }) == S{"A2"});
    CHECK(find([](WorklistFilter& f) { f.modality = "CT"; }) == S{"A1", "A3", "M1"});
    // Finished items stay out unless asked for.
    two.moreSteps.push_back({"MR", "MR_AE9", "20261124", "120000"});
    wl->upsert(two);
    wl->setStatus("M1", WorklistStatus::Completed);
    CHECK(find([](WorklistFilter& f) { f.modality = "MR"; }) == S{"A2"});
    CHECK(find([](WorklistFilter& f) { f.modality = "MR"; f.includeFinished = true; }) == S{"A2", "M1"});
}

TEST_CASE("worklist survives reopening and shares the file with the message store", "[store][worklist]") {
    WlDir dir;
    std::int64_t id = 0;
    {
        StoreOptions o;
        o.synchronousFull = false;
        auto messages = openSqliteStore(dir.db(), o);
        auto wl = openSqliteWorklist(dir.db(), false);
        auto it = item("ACC7", "RP7", "P7", "ROE^RICHARD", "CT", "20261123", "120000");
        it.stationAeTitle = "CT_AE7";
        id = wl->upsert(it);
        wl->setStatus("ACC7", WorklistStatus::InProgress);
        messages->flush();
    }
    auto wl = openSqliteWorklist(dir.db());
    CHECK(wl->count() == 1);
    WorklistFilter f;
    f.stationAeTitle = "CT_AE7";
    auto found = wl->find(f);
    REQUIRE(found.size() == 1);
    CHECK(found[0].id == id);
    CHECK(found[0].status == WorklistStatus::InProgress);
    CHECK(found[0].patientName == "ROE^RICHARD");
    CHECK(found[0].dataset == R"({"00080050":{"vr":"SH","Value":["ACC7"]}})");
    // The message store still opens the same file.
    StoreOptions o;
    o.synchronousFull = false;
    CHECK_NOTHROW(openSqliteStore(dir.db(), o));
}

TEST_CASE("worklist queries by key use an index among 100,000 items", "[store][worklist]") {
    WlDir dir;
    auto wl = openSqliteWorklist(dir.db(), false);
    const char* modalities[] = {"CT", "MR", "US", "CR", "DX"};
    std::vector<WorklistItem> batch;
    for (int i = 0; i < 100000; ++i) {
        char date[16], time[16];
        std::snprintf(date, sizeof date, "2026%02d%02d", 1 + (i / 28) % 12, 1 + i % 28);
        std::snprintf(time, sizeof time, "%02d%02d00", 7 + i % 12, (i * 7) % 60);
        auto it = item("ACC" + std::to_string(i), "RP1", "PID" + std::to_string(i % 50000),
                       "PATIENT" + std::to_string(i) + "^TEST", modalities[i % 5], date, time, "",
                       std::string(modalities[i % 5]) + "_AE" + std::to_string(i % 7));
        batch.push_back(std::move(it));
        if (batch.size() == 10000) {
            auto ids = wl->upsertAll(batch);
            CHECK(ids.size() == batch.size());
            batch.clear();
        }
    }
    REQUIRE(wl->count() == 100000);
    // An upsert of an existing accession updates in place.
    auto again = item("ACC42", "RP1", "PID42", "PATIENT42^TEST", "CT", "20261123", "070000");
    CHECK(wl->upsertAll({again, item("NEW1", "RP1", "PNEW", "NEW^ONE", "CT", "20261123", "070000")}).size() == 2);
    CHECK(wl->count() == 100001);
    // The work of one find, as the database counts it: rows stepped through in
    // full table scans, and virtual machine steps (a scan of 100,000 rows takes
    // millions; an index lookup of a few rows, hundreds).
    struct Work {
        std::uint64_t scanned, steps;
    };
    auto workOf = [&](const WorklistFilter& f, std::size_t expected) {
        auto before = wl->findStats();
        auto r = wl->find(f);
        auto after = wl->findStats();
        CHECK(r.size() == expected);
        CHECK(after.finds == before.finds + 1);
        return Work{after.rowsScanned - before.rowsScanned, after.steps - before.steps};
    };
    auto indexed = [&](const WorklistFilter& f, std::size_t expected) {
        Work w = workOf(f, expected);
        INFO("rows scanned " << w.scanned << ", steps " << w.steps);
        CHECK(w.scanned == 0);
        CHECK(w.steps < 20000);
    };
    WorklistFilter byPatient;
    byPatient.patientId = "PID123";
    indexed(byPatient, 2);
    WorklistFilter byAccession;
    byAccession.accessionNumber = "ACC99999";
    indexed(byAccession, 1);
    WorklistFilter byName;
    byName.patientName = "patient4242^*";
    indexed(byName, 1);
    // i % 5 == 0 (CT) on day 2026-11-23: i % 28 == 22 and (i / 28) % 12 == 10.
    std::size_t expected = 0;
    for (int i = 0; i < 100000; ++i)
        if (i % 5 == 0 && i % 28 == 22 && (i / 28) % 12 == 10) ++expected;
    WorklistFilter modalityDay;
    modalityDay.modality = "CT";
    modalityDay.spsStartDate = "20261123";
    CHECK(expected > 0);
    indexed(modalityDay, expected + 2);  // + ACC42 (now CT that day) and NEW1
    wl->setStatus("ACC5", WorklistStatus::Completed);
    WorklistFilter all;
    Work w = workOf(all, 100000);  // what the bounds above tell apart
    CHECK(w.steps > 1000000);
}

TEST_CASE("worklist writes wait for a lock, then report busy, reads go on", "[store][worklist]") {
    WlDir dir;
    auto wl = openSqliteWorklist(dir.db(), false, 200);
    wl->upsert(item("A1", "RP1", "P1", "DOE^JANE", "CT", "20261123", "093000"));
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(dir.db().c_str(), &other) == SQLITE_OK);
    REQUIRE(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
    auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(wl->upsert(item("A2", "RP1", "P2", "X^Y", "CT", "20261123", "100000")), WorklistBusyError);
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(150));
    CHECK_THROWS_AS(wl->setStatus("A1", WorklistStatus::Cancelled), WorklistBusyError);
    CHECK(wl->find({}).size() == 1);  // WAL: readers are not blocked
    REQUIRE(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(other);
    // Nothing half-done: the failed calls left no trace, and the store works again.
    CHECK(wl->count() == 1);
    CHECK(wl->upsert(item("A2", "RP1", "P2", "X^Y", "CT", "20261123", "100000")) > 0);
    CHECK(wl->setStatus("A1", WorklistStatus::Cancelled) == 1);
    CHECK(wl->count() == 2);
}

TEST_CASE("MPPS instances are kept by SOP Instance UID and survive reopening", "[store][worklist]") {
    WlDir dir;
    {
        auto wl = openSqliteWorklist(dir.db(), false);
        CHECK_FALSE(wl->getMpps("1.2.3"));
        wl->putMpps("1.2.3", R"({"00400252":{"vr":"CS","Value":["IN PROGRESS"]}})");
        wl->putMpps("1.2.3", R"({"00400252":{"vr":"CS","Value":["COMPLETED"]}})");  // replaced
        CHECK_THROWS_AS(wl->putMpps("", "{}"), std::invalid_argument);
    }
    auto wl = openSqliteWorklist(dir.db(), false);
    auto kept = wl->getMpps("1.2.3");
    REQUIRE(kept);
    CHECK(kept->find("COMPLETED") != std::string::npos);
    CHECK_FALSE(wl->getMpps("1.2.4"));
}
