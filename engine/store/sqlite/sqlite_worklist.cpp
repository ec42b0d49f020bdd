// SQLite implementation of WorklistStore, in the message store's database file.
//
// Table `worklist`: one row per item with the matching keys in columns (those
// of its first scheduled procedure step) and the item as DICOM JSON text.
// Indexes serve the usual queries of modalities (modality or station + date,
// patient, accession, study) and answer ORDER BY sps_start_date,
// sps_start_time without sorting where they can. An item with several steps
// also has the keys of each in `worklist_steps`, and a query on step keys
// looks there too (rarely needed: one step per item is the common case).
//
// Two connections: writes (upsert, setStatus) and reads (find, get, count), each
// used under its own mutex; WAL lets readers run beside any writer of the file.
// The message store writes to the same file, so a busy timeout of several
// seconds covers its group commits; a database still locked after that throws
// WorklistBusyError (callers may retry later).
#include "engine/store/sqlite/sqlite_db.h"
#include "engine/store/worklist_store.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <tuple>

namespace junction::store {

namespace {

using sqlite::Stmt;
using sqlite::Use;

const char* const kSchema[] = {
    "CREATE TABLE IF NOT EXISTS worklist ("
    " id INTEGER PRIMARY KEY,"
    " patient_id TEXT NOT NULL DEFAULT '',"
    " patient_name TEXT NOT NULL DEFAULT '',"
    " accession_number TEXT NOT NULL DEFAULT '',"
    " modality TEXT NOT NULL DEFAULT '',"
    " station_ae TEXT NOT NULL DEFAULT '',"
    " sps_start_date TEXT NOT NULL DEFAULT '',"
    " sps_start_time TEXT NOT NULL DEFAULT '',"
    " requested_procedure_id TEXT NOT NULL DEFAULT '',"
    " study_instance_uid TEXT NOT NULL DEFAULT '',"
    " status TEXT NOT NULL DEFAULT 'SCHEDULED',"
    " dataset TEXT NOT NULL,"
    " updated_at INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS worklist_patient_id ON worklist(patient_id)",
    "CREATE INDEX IF NOT EXISTS worklist_patient_name ON worklist(patient_name COLLATE NOCASE)",
    "CREATE INDEX IF NOT EXISTS worklist_accession ON worklist(accession_number, requested_procedure_id)",
    "CREATE INDEX IF NOT EXISTS worklist_modality ON worklist(modality, sps_start_date, sps_start_time)",
    "CREATE INDEX IF NOT EXISTS worklist_station ON worklist(station_ae, sps_start_date, sps_start_time)",
    "CREATE INDEX IF NOT EXISTS worklist_sps_start ON worklist(sps_start_date, sps_start_time)",
    "CREATE INDEX IF NOT EXISTS worklist_procedure ON worklist(requested_procedure_id)",
    "CREATE INDEX IF NOT EXISTS worklist_study ON worklist(study_instance_uid)",
    "CREATE TABLE IF NOT EXISTS worklist_steps ("
    " item_id INTEGER NOT NULL,"
    " modality TEXT NOT NULL DEFAULT '',"
    " station_ae TEXT NOT NULL DEFAULT '',"
    " sps_start_date TEXT NOT NULL DEFAULT '',"
    " sps_start_time TEXT NOT NULL DEFAULT '')",
    "CREATE INDEX IF NOT EXISTS worklist_steps_item ON worklist_steps(item_id)",
    "CREATE TABLE IF NOT EXISTS mpps ("
    " sop_instance_uid TEXT PRIMARY KEY,"
    " dataset TEXT NOT NULL,"
    " updated_at INTEGER NOT NULL)",
};

constexpr const char* kColumns =
    "id, patient_id, patient_name, accession_number, modality, station_ae, sps_start_date, sps_start_time, "
    "requested_procedure_id, study_instance_uid, status, dataset, updated_at";

bool isBusy(int code) {
    int primary = code & 0xff;
    return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

// Runs `f`, turning SQLite failures into the interface's exceptions.
template <class F>
auto guarded(const char* what, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const sqlite::Error& e) {
        if (isBusy(e.code)) throw WorklistBusyError(std::string("worklist ") + what + ": database is busy: " + e.what());
        throw std::runtime_error(std::string("worklist ") + what + ": " + e.what());
    }
}

sqlite3* openConnection(const std::string& path, int busyTimeoutMs) { return sqlite::open(path, "worklist", busyTimeoutMs); }

std::int64_t nowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool hasWildcard(const std::string& v) { return v.find_first_of("*?") != std::string::npos; }

// DICOM wildcards → GLOB (case-sensitive): only '[' is special besides * and ?.
std::string globPattern(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '[') out += "[[]";
        else out += c;
    }
    return out;
}

// DICOM wildcards → LIKE ... ESCAPE '\' (case-insensitive for ASCII).
std::string likePattern(const std::string& v) {
    std::string out;
    for (char c : v) {
        switch (c) {
            case '*': out += '%'; break;
            case '?': out += '_'; break;
            case '%': case '_': case '\\': out += '\\'; out += c; break;
            default: out += c;
        }
    }
    return out;
}

enum class Match { Text, Name, DateTime, Uid };

// A WHERE clause under construction with its bound values.
struct Query {
    std::string where;
    std::vector<std::string> params;
    void add(const std::string& condition) { where += (where.empty() ? " WHERE " : " AND ") + condition; }
};

void addMatch(Query& q, const char* col, const std::string& value, Match kind) {
    if (value.empty() || value == "*") return;  // universal match
    std::string c(col);
    if (kind == Match::Uid && value.find('\\') != std::string::npos) {  // list of UIDs
        std::string in;
        std::size_t start = 0;
        while (start <= value.size()) {
            std::size_t end = value.find('\\', start);
            if (end == std::string::npos) end = value.size();
            q.params.push_back(value.substr(start, end - start));
            in += in.empty() ? "?" : ", ?";
            start = end + 1;
        }
        q.add(c + " IN (" + in + ")");
        return;
    }
    if (hasWildcard(value)) {
        if (kind == Match::Name) {
            q.add(c + " LIKE ? ESCAPE '\\'");
            q.params.push_back(likePattern(value));
        } else {
            q.add(c + " GLOB ?");
            q.params.push_back(globPattern(value));
        }
        return;
    }
    if (kind == Match::DateTime) {
        std::size_t dash = value.find('-');
        if (dash != std::string::npos) {  // range "A-B", "A-" or "-B"
            std::string lo = value.substr(0, dash), hi = value.substr(dash + 1);
            q.add(c + " <> ''");
            if (!lo.empty()) {
                q.add(c + " >= ?");
                q.params.push_back(lo);
            }
            if (!hi.empty()) {
                // "-1000" includes 100000 and 100059.5: compare as a prefix ('~' sorts after digits and '.').
                q.add(c + " <= ?");
                q.params.push_back(hi + "~");
            }
            return;
        }
    }
    if (kind == Match::Name) {
        q.add(c + " = ? COLLATE NOCASE");
    } else {
        q.add(c + " = ?");
    }
    q.params.push_back(value);
}

class SqliteWorklist final : public WorklistStore {
public:
    SqliteWorklist(const std::string& path, bool synchronousFull, int busyTimeoutMs)
        : path_(path), busyTimeoutMs_(busyTimeoutMs) {
        sqlite::createParentDirectory(path);
        try {
            openAll(path, synchronousFull);
        } catch (...) {
            closeAll();
            throw;
        }
    }

    ~SqliteWorklist() override { closeAll(); }

    void openAll(const std::string& path, bool synchronousFull) {
        guarded("open", [&] {
            wdb_ = openConnection(path, busyTimeoutMs_);
            // Matches the message store's choice when the worklist creates the file.
            sqlite::exec(wdb_, "PRAGMA auto_vacuum = INCREMENTAL");
            sqlite::useWal(wdb_, path);
            sqlite::exec(wdb_, synchronousFull ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
            sqlite::exec(wdb_, "BEGIN IMMEDIATE");
            try {
                for (const char* sql : kSchema) sqlite::exec(wdb_, sql);
                sqlite::exec(wdb_, "COMMIT");
            } catch (...) {
                sqlite3_exec(wdb_, "ROLLBACK", nullptr, nullptr, nullptr);
                throw;
            }
            byKey_ = Stmt(wdb_, "SELECT id FROM worklist WHERE accession_number = ? AND requested_procedure_id = ? "
                                "ORDER BY id LIMIT 1");
            byUid_ = Stmt(wdb_, "SELECT id FROM worklist WHERE study_instance_uid = ? ORDER BY id LIMIT 1");
            insert_ = Stmt(wdb_,
                           "INSERT INTO worklist (patient_id, patient_name, accession_number, modality, station_ae, "
                           "sps_start_date, sps_start_time, requested_procedure_id, study_instance_uid, status, "
                           "dataset, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)");
            update_ = Stmt(wdb_,
                           "UPDATE worklist SET patient_id=?, patient_name=?, accession_number=?, modality=?, "
                           "station_ae=?, sps_start_date=?, sps_start_time=?, requested_procedure_id=?, "
                           "study_instance_uid=?, status=?, dataset=?, updated_at=? WHERE id=?");
            updateKeep_ = Stmt(wdb_,
                               "UPDATE worklist SET patient_id=?, patient_name=?, accession_number=?, modality=?, "
                               "station_ae=?, sps_start_date=?, sps_start_time=?, requested_procedure_id=?, "
                               "study_instance_uid=?, dataset=?, updated_at=? WHERE id=?");
            putMpps_ = Stmt(wdb_, "INSERT OR REPLACE INTO mpps (sop_instance_uid, dataset, updated_at) VALUES (?, ?, ?)");
            dropSteps_ = Stmt(wdb_, "DELETE FROM worklist_steps WHERE item_id = ?");
            addStep_ = Stmt(wdb_,
                            "INSERT INTO worklist_steps (item_id, modality, station_ae, sps_start_date, sps_start_time) "
                            "VALUES (?,?,?,?,?)");
            setStatus_ = Stmt(wdb_,
                              "UPDATE worklist SET status=?, updated_at=? WHERE (accession_number = ? OR "
                              "study_instance_uid = ?) AND status <> ?");
            setItemStatus_ = Stmt(wdb_, "UPDATE worklist SET status=?, updated_at=? WHERE id = ?");

            rdb_ = openConnection(path, busyTimeoutMs_);
            sqlite::exec(rdb_, "PRAGMA query_only = 1");
            get_ = Stmt(rdb_, std::string("SELECT ") + kColumns + " FROM worklist WHERE id = ?");
            count_ = Stmt(rdb_, "SELECT count(*) FROM worklist");
            anySteps_ = Stmt(rdb_, "SELECT EXISTS (SELECT 1 FROM worklist_steps)");
            getMpps_ = Stmt(rdb_, "SELECT dataset FROM mpps WHERE sop_instance_uid = ?");
            return 0;
        });
    }

    void closeAll() {
        readCache_.clear();
        get_.reset();
        count_.reset();
        getMpps_.reset();
        putMpps_.reset();
        byKey_.reset();
        byUid_.reset();
        insert_.reset();
        update_.reset();
        updateKeep_.reset();
        setStatus_.reset();
        dropSteps_.reset();
        addStep_.reset();
        anySteps_.reset();
        if (rdb_) sqlite3_close_v2(rdb_);
        if (wdb_) sqlite3_close_v2(wdb_);
        rdb_ = wdb_ = nullptr;
    }

    std::int64_t upsert(const WorklistItem& item) override { return upsertAll({item}).front(); }

    std::vector<std::int64_t> upsertAll(const std::vector<WorklistItem>& items) override {
        for (const auto& item : items)
            if (item.accessionNumber.empty() && item.studyInstanceUid.empty())
                throw std::invalid_argument(
                    "a worklist item needs an AccessionNumber or a StudyInstanceUID (neither is set)");
        std::lock_guard<std::mutex> lock(wmu_);
        return guarded("upsert", [&] {
            sqlite::exec(wdb_, "BEGIN IMMEDIATE");
            try {
                std::vector<std::int64_t> ids;
                ids.reserve(items.size());
                std::int64_t now = nowMs();
                for (const auto& item : items) ids.push_back(write(item, now));
                sqlite::exec(wdb_, "COMMIT");
                return ids;
            } catch (...) {
                sqlite3_exec(wdb_, "ROLLBACK", nullptr, nullptr, nullptr);
                throw;
            }
        });
    }

    std::size_t setStatus(const std::string& key, WorklistStatus status) override {
        if (key.empty()) throw std::invalid_argument("worklist status change needs an AccessionNumber or a StudyInstanceUID");
        std::lock_guard<std::mutex> lock(wmu_);
        return guarded("status change", [&] {
            const char* st = toString(status);
            Use u(setStatus_);
            u.text(1, st).int64(2, nowMs()).text(3, key).text(4, key).text(5, st);
            u.run();
            return static_cast<std::size_t>(u.changes());
        });
    }

    bool setItemStatus(std::int64_t id, WorklistStatus status) override {
        std::lock_guard<std::mutex> lock(wmu_);
        return guarded("status change", [&] {
            Use u(setItemStatus_);
            u.text(1, toString(status)).int64(2, nowMs()).int64(3, id);
            u.run();
            return u.changes() > 0;
        });
    }

    std::vector<WorklistItem> find(const WorklistFilter& f) override {
        auto itemKeys = [&](Query& q) {
            addMatch(q, "patient_id", f.patientId, Match::Text);
            addMatch(q, "patient_name", f.patientName, Match::Name);
            addMatch(q, "accession_number", f.accessionNumber, Match::Text);
            addMatch(q, "requested_procedure_id", f.requestedProcedureId, Match::Text);
            addMatch(q, "study_instance_uid", f.studyInstanceUid, Match::Uid);
            if (!f.includeFinished) q.add("status IN ('SCHEDULED', 'IN PROGRESS')");
        };
        auto stepKeys = [&](Query& q) {
            addMatch(q, "modality", f.modality, Match::Text);
            addMatch(q, "station_ae", f.stationAeTitle, Match::Text);
            addMatch(q, "sps_start_date", f.spsStartDate, Match::DateTime);
            addMatch(q, "sps_start_time", f.spsStartTime, Match::DateTime);
        };
        Query byFirstStep;
        itemKeys(byFirstStep);
        stepKeys(byFirstStep);
        Query steps;
        stepKeys(steps);
        std::string tail = " ORDER BY sps_start_date, sps_start_time, id";
        if (f.limit > 0) tail += " LIMIT " + std::to_string(f.limit);

        std::lock_guard<std::mutex> lock(rmu_);
        ++findStats_.finds;
        return guarded("find", [&] {
            std::vector<WorklistItem> out = select(byFirstStep, tail);
            if (steps.where.empty() || !anySteps()) return out;
            // Items matched by a later step (or by their first one: deduplicated).
            Query byAnyStep;
            itemKeys(byAnyStep);
            byAnyStep.add("id IN (SELECT item_id FROM worklist_steps" + steps.where + ")");
            byAnyStep.params.insert(byAnyStep.params.end(), steps.params.begin(), steps.params.end());
            std::set<std::int64_t> seen;
            for (const auto& it : out) seen.insert(it.id);
            for (auto& it : select(byAnyStep, tail))
                if (seen.insert(it.id).second) out.push_back(std::move(it));
            std::sort(out.begin(), out.end(), [](const WorklistItem& a, const WorklistItem& b) {
                return std::tie(a.spsStartDate, a.spsStartTime, a.id) < std::tie(b.spsStartDate, b.spsStartTime, b.id);
            });
            if (f.limit > 0 && out.size() > f.limit) out.resize(f.limit);
            return out;
        });
    }

    std::optional<WorklistItem> get(std::int64_t id) override {
        std::lock_guard<std::mutex> lock(rmu_);
        return guarded("get", [&]() -> std::optional<WorklistItem> {
            Use u(get_);
            u.int64(1, id);
            if (!u.step()) return std::nullopt;
            return row(u);
        });
    }

    void putMpps(const std::string& uid, const std::string& datasetJson) override {
        if (uid.empty()) throw std::invalid_argument("an MPPS instance needs its SOP Instance UID");
        std::lock_guard<std::mutex> lock(wmu_);
        guarded("MPPS write", [&] {
            Use u(putMpps_);
            u.text(1, uid).text(2, datasetJson).int64(3, nowMs());
            u.run();
            return 0;
        });
    }

    std::optional<std::string> getMpps(const std::string& uid) override {
        std::lock_guard<std::mutex> lock(rmu_);
        return guarded("MPPS read", [&]() -> std::optional<std::string> {
            Use u(getMpps_);
            u.text(1, uid);
            if (!u.step()) return std::nullopt;
            return u.str(0);
        });
    }

    FindStats findStats() const override {
        std::lock_guard<std::mutex> lock(rmu_);
        return findStats_;
    }

    std::size_t count() override {
        std::lock_guard<std::mutex> lock(rmu_);
        return guarded("count", [&] {
            Use u(count_);
            return u.step() ? static_cast<std::size_t>(u.int64(0)) : std::size_t{0};
        });
    }

private:
    // Runs a query on the read connection (its statement cached); rmu_ held.
    std::vector<WorklistItem> select(const Query& q, const std::string& tail) {
        std::string sql = std::string("SELECT ") + kColumns + " FROM worklist" + q.where + tail;
        auto it = readCache_.find(sql);
        if (it == readCache_.end()) {
            if (readCache_.size() > 256) readCache_.clear();
            it = readCache_.emplace(sql, Stmt(rdb_, sql)).first;
        }
        std::vector<WorklistItem> out;
        Use u(it->second);
        for (std::size_t i = 0; i < q.params.size(); ++i) u.text(static_cast<int>(i + 1), q.params[i]);
        while (u.step()) out.push_back(row(u));
        sqlite3_stmt* st = it->second.get();
        findStats_.rowsScanned += static_cast<std::uint64_t>(sqlite3_stmt_status(st, SQLITE_STMTSTATUS_FULLSCAN_STEP, 1));
        findStats_.steps += static_cast<std::uint64_t>(sqlite3_stmt_status(st, SQLITE_STMTSTATUS_VM_STEP, 1));
        return out;
    }

    bool anySteps() {
        Use u(anySteps_);
        return u.step() && u.int64(0) != 0;
    }

    // Inserts or updates one item inside the caller's transaction.
    std::int64_t write(const WorklistItem& item, std::int64_t now) {
        std::int64_t id = 0;
        if (!item.accessionNumber.empty()) {
            Use u(byKey_);
            u.text(1, item.accessionNumber).text(2, item.requestedProcedureId);
            if (u.step()) id = u.int64(0);
        } else {
            Use u(byUid_);
            u.text(1, item.studyInstanceUid);
            if (u.step()) id = u.int64(0);
        }
        bool keep = id && item.keepStatus;
        Use u(keep ? updateKeep_ : id ? update_ : insert_);
        u.text(1, item.patientId).text(2, item.patientName).text(3, item.accessionNumber);
        u.text(4, item.modality).text(5, item.stationAeTitle).text(6, item.spsStartDate);
        u.text(7, item.spsStartTime).text(8, item.requestedProcedureId).text(9, item.studyInstanceUid);
        if (keep) {
            u.text(10, item.dataset).int64(11, now).int64(12, id);
        } else {
            u.text(10, toString(item.status)).text(11, item.dataset).int64(12, now);
            if (id) u.int64(13, id);
        }
        u.run();
        if (!id) id = sqlite3_last_insert_rowid(wdb_);
        else {
            Use d(dropSteps_);
            d.int64(1, id);
            d.run();
        }
        if (!item.moreSteps.empty()) {
            auto add = [&](const std::string& modality, const std::string& station, const std::string& date,
                           const std::string& time) {
                Use a(addStep_);
                a.int64(1, id).text(2, modality).text(3, station).text(4, date).text(5, time);
                a.run();
            };
            add(item.modality, item.stationAeTitle, item.spsStartDate, item.spsStartTime);
            for (const auto& st : item.moreSteps) add(st.modality, st.stationAeTitle, st.startDate, st.startTime);
        }
        return id;
    }

    static WorklistItem row(const Use& u) {
        WorklistItem it;
        it.id = u.int64(0);
        it.patientId = u.str(1);
        it.patientName = u.str(2);
        it.accessionNumber = u.str(3);
        it.modality = u.str(4);
        it.stationAeTitle = u.str(5);
        it.spsStartDate = u.str(6);
        it.spsStartTime = u.str(7);
        it.requestedProcedureId = u.str(8);
        it.studyInstanceUid = u.str(9);
        it.status = parseWorklistStatus(u.str(10)).value_or(WorklistStatus::Scheduled);
        it.dataset = u.str(11);
        it.updatedAt = std::chrono::system_clock::time_point(std::chrono::milliseconds(u.int64(12)));
        return it;
    }

    std::string path_;
    int busyTimeoutMs_;
    sqlite3* wdb_ = nullptr;
    sqlite3* rdb_ = nullptr;
    std::mutex wmu_;
    mutable std::mutex rmu_;
    Stmt byKey_, byUid_, insert_, update_, updateKeep_, setStatus_, setItemStatus_, dropSteps_, addStep_;
    Stmt get_, count_, getMpps_, putMpps_, anySteps_;
    std::map<std::string, Stmt> readCache_;
    FindStats findStats_;  // under rmu_
};

}  // namespace

std::unique_ptr<WorklistStore> openSqliteWorklist(const std::string& path) { return openSqliteWorklist(path, true); }

std::unique_ptr<WorklistStore> openSqliteWorklist(const std::string& path, bool synchronousFull, int busyTimeoutMs) {
    return std::make_unique<SqliteWorklist>(path, synchronousFull, busyTimeoutMs);
}

}  // namespace junction::store
