// The modality worklist: scheduled procedure steps that modalities fetch with
// an MWL C-FIND. Items live in the store beside the messages: the matching
// keys in indexed columns, the full item as DICOM JSON (PS3.18 F.2). No DICOM
// toolkit types cross this header.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace junction::store {

// Lifecycle of a scheduled procedure step (MPPS drives InProgress/Completed/
// Discontinued; the RIS drives Scheduled/Cancelled).
enum class WorklistStatus { Scheduled, InProgress, Completed, Discontinued, Cancelled };
const char* toString(WorklistStatus s);  // "SCHEDULED", "IN PROGRESS", "COMPLETED", "DISCONTINUED", "CANCELLED"
std::optional<WorklistStatus> parseWorklistStatus(std::string_view s);  // case-insensitive, also "IN_PROGRESS"

// The matching keys of one scheduled procedure step (an item of (0040,0100)).
struct WorklistStep {
    std::string modality, stationAeTitle, startDate, startTime;
};

struct WorklistItem {
    std::int64_t id = 0;  // assigned by the store
    // Matching keys (copied from the dataset; DICOM string forms).
    std::string patientId;              // (0010,0020)
    std::string patientName;            // (0010,0010) "DOE^JOHN"
    std::string accessionNumber;        // (0008,0050)
    std::string modality;               // SPS (0008,0060)
    std::string stationAeTitle;         // SPS (0040,0001)
    std::string spsStartDate;           // SPS (0040,0002) YYYYMMDD
    std::string spsStartTime;           // SPS (0040,0003) HHMMSS[.ffffff]
    std::string requestedProcedureId;   // (0040,1001)
    std::string studyInstanceUid;       // (0020,000D)
    // The keys of the steps after the first (whose keys are above), so that a
    // query matches the item by any of its steps.
    std::vector<WorklistStep> moreSteps;
    WorklistStatus status = WorklistStatus::Scheduled;
    // upsert: an existing item keeps its status (only a new one gets `status`),
    // so that an order update does not undo a step already in progress.
    bool keepStatus = false;
    // The whole item as DICOM JSON: {"00100020":{"vr":"LO","Value":["123"]}, ...}
    // including ScheduledProcedureStepSequence (0040,0100).
    std::string dataset;
    std::chrono::system_clock::time_point updatedAt{};
};

// Column filters for a worklist query. Each value is in DICOM matching syntax
// (PS3.4 C.2.2.2): empty = universal match, otherwise single value, wildcard
// (* and ?) or, for dates and times, a range "A-B", "A-" or "-B". PatientName
// matches case-insensitively. The store applies these to its indexed columns;
// the MWL SCP applies the complete DICOM matching (other keys, sequences) on
// the datasets it gets back.
struct WorklistFilter {
    std::string patientId, patientName, accessionNumber, modality, stationAeTitle;
    std::string spsStartDate, spsStartTime, requestedProcedureId, studyInstanceUid;
    bool includeFinished = false;  // also Completed, Discontinued and Cancelled items
    std::size_t limit = 0;         // 0 = no limit
};

// The database stayed locked (busy) past the store's timeout: the operation
// may succeed when tried again later.
struct WorklistBusyError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class WorklistStore {
public:
    virtual ~WorklistStore() = default;
    // Insert or update. An existing item is the one with the same
    // AccessionNumber and RequestedProcedureID (or, without an accession
    // number, the same StudyInstanceUID). The stored status becomes
    // item.status (unless item.keepStatus and the item exists). Returns the
    // item's id. Throws
    // std::invalid_argument when the item has neither accession number nor
    // study instance UID, std::runtime_error on store failure.
    virtual std::int64_t upsert(const WorklistItem& item) = 0;
    // Upserts many items at once (one transaction where the store can);
    // returns their ids in order. All or nothing: a bad item throws before any
    // is written.
    virtual std::vector<std::int64_t> upsertAll(const std::vector<WorklistItem>& items) {
        std::vector<std::int64_t> ids;
        ids.reserve(items.size());
        for (const auto& it : items) ids.push_back(upsert(it));
        return ids;
    }
    // Set the status of every item whose AccessionNumber or StudyInstanceUID
    // equals `key`; returns how many changed. Throws std::invalid_argument for
    // an empty key.
    virtual std::size_t setStatus(const std::string& key, WorklistStatus status) = 0;
    // Set the status of the item with this id alone; false when there is none.
    virtual bool setItemStatus(std::int64_t id, WorklistStatus status) = 0;
    // Items matching every filter value, by SPS start date and time, then id.
    virtual std::vector<WorklistItem> find(const WorklistFilter& filter) = 0;
    virtual std::optional<WorklistItem> get(std::int64_t id) = 0;
    virtual std::size_t count() = 0;
    // What the queries of find() cost so far (counted by the database engine,
    // so that tests can assert that a query uses an index).
    struct FindStats {
        std::uint64_t finds = 0;
        std::uint64_t rowsScanned = 0;  // rows stepped through in full scans of a table
        std::uint64_t steps = 0;        // virtual machine steps, a measure of all the work
    };
    virtual FindStats findStats() const = 0;

    // Modality Performed Procedure Step instances (the MPPS SCP's state, kept
    // here so that an N-SET after a restart finds its N-CREATE): the dataset as
    // DICOM JSON by SOP Instance UID. putMpps inserts or replaces.
    virtual void putMpps(const std::string& sopInstanceUid, const std::string& datasetJson) = 0;
    virtual std::optional<std::string> getMpps(const std::string& sopInstanceUid) = 0;
};

// The SQLite worklist, in the same database file as the message store (its own
// connection; WAL lets both work side by side). Safe for concurrent use.
// Failures throw std::runtime_error; a database locked past the busy timeout
// throws WorklistBusyError.
std::unique_ptr<WorklistStore> openSqliteWorklist(const std::string& path);
// Same; `synchronousFull` false trades power-loss durability of the last
// changes for speed (like the message store's `sync: normal`);
// `busyTimeoutMs` is how long a call waits for a lock held by another
// connection before it throws WorklistBusyError.
std::unique_ptr<WorklistStore> openSqliteWorklist(const std::string& path, bool synchronousFull,
                                                  int busyTimeoutMs = 10000);

}  // namespace junction::store
