// The modality worklist: scheduled procedure steps that modalities fetch with
// an MWL C-FIND. Items live in the store beside the messages: the matching
// keys in indexed columns, the full item as DICOM JSON (PS3.18 F.2). No DICOM
// toolkit types cross this header.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace junction::store {

// Lifecycle of a scheduled procedure step (MPPS drives InProgress/Completed/
// Discontinued; the RIS drives Scheduled/Cancelled).
enum class WorklistStatus { Scheduled, InProgress, Completed, Discontinued, Cancelled };
const char* toString(WorklistStatus s);  // "SCHEDULED", "IN PROGRESS", "COMPLETED", "DISCONTINUED", "CANCELLED"
std::optional<WorklistStatus> parseWorklistStatus(std::string_view s);  // case-insensitive, also "IN_PROGRESS"

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
    WorklistStatus status = WorklistStatus::Scheduled;
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

class WorklistStore {
public:
    virtual ~WorklistStore() = default;
    // Insert or update. An existing item is the one with the same
    // AccessionNumber and RequestedProcedureID (or, without an accession
    // number, the same StudyInstanceUID). Returns the item's id. Throws
    // std::invalid_argument when the item has neither accession number nor
    // study instance UID, std::runtime_error on store failure.
    virtual std::int64_t upsert(const WorklistItem& item) = 0;
    // Set the status of every item whose AccessionNumber or StudyInstanceUID
    // equals `key`; returns how many changed.
    virtual std::size_t setStatus(const std::string& key, WorklistStatus status) = 0;
    virtual std::vector<WorklistItem> find(const WorklistFilter& filter) = 0;
    virtual std::optional<WorklistItem> get(std::int64_t id) = 0;
    virtual std::size_t count() = 0;
};

// The SQLite worklist, in the same database file as the message store (its own
// connection; WAL lets both work side by side).
std::unique_ptr<WorklistStore> openSqliteWorklist(const std::string& path);

}  // namespace junction::store
