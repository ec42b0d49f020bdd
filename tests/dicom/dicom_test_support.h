// Helpers for the DICOM tests: an in-memory WorklistStore (a test double of
// our own interface, applying the column filters with the DICOM matching
// rules), a SourceContext that records what a source submits, free ports in
// the DICOM test range, running the DCMTK / node peers, and what listens where.
#pragma once

#include <Poco/Net/ServerSocket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "connectors/dicom/mwl_matching.h"
#include "engine/core/connector.h"
#include "engine/store/worklist_store.h"
#include "engine/util/json_text.h"

namespace junction::testing {

class InMemoryWorklist : public store::WorklistStore {
public:
    std::int64_t upsert(const store::WorklistItem& item) override {
        std::lock_guard<std::mutex> lock(m_);
        for (auto& it : items_)
            if ((!item.accessionNumber.empty() && it.accessionNumber == item.accessionNumber &&
                 it.requestedProcedureId == item.requestedProcedureId) ||
                (item.accessionNumber.empty() && it.studyInstanceUid == item.studyInstanceUid)) {
                auto id = it.id;
                it = item;
                it.id = id;
                return id;
            }
        items_.push_back(item);
        items_.back().id = static_cast<std::int64_t>(items_.size());
        return items_.back().id;
    }
    std::size_t setStatus(const std::string& key, store::WorklistStatus status) override {
        std::lock_guard<std::mutex> lock(m_);
        std::size_t n = 0;
        for (auto& it : items_)
            if (it.accessionNumber == key || it.studyInstanceUid == key) {
                it.status = status;
                ++n;
            }
        return n;
    }
    bool setItemStatus(std::int64_t id, store::WorklistStatus status) override {
        std::lock_guard<std::mutex> lock(m_);
        for (auto& it : items_)
            if (it.id == id) {
                it.status = status;
                return true;
            }
        return false;
    }
    std::vector<store::WorklistItem> find(const store::WorklistFilter& f) override {
        std::lock_guard<std::mutex> lock(m_);
        filters.push_back(f);
        if (failFind) throw std::runtime_error("store unavailable");
        std::vector<store::WorklistItem> out;
        for (const auto& it : items_) {
            bool finished = it.status == store::WorklistStatus::Completed ||
                            it.status == store::WorklistStatus::Discontinued ||
                            it.status == store::WorklistStatus::Cancelled;
            if (finished && !f.includeFinished) continue;
            using dicom::matchValue;
            if (!matchValue("LO", f.patientId, it.patientId) || !matchValue("PN", f.patientName, it.patientName) ||
                !matchValue("SH", f.accessionNumber, it.accessionNumber) || !matchValue("CS", f.modality, it.modality) ||
                !matchValue("AE", f.stationAeTitle, it.stationAeTitle) ||
                !matchValue("DA", f.spsStartDate, it.spsStartDate) || !matchValue("TM", f.spsStartTime, it.spsStartTime) ||
                !matchValue("SH", f.requestedProcedureId, it.requestedProcedureId) ||
                !matchValue("UI", f.studyInstanceUid, it.studyInstanceUid))
                continue;
            out.push_back(it);
            if (f.limit && out.size() >= f.limit) break;
        }
        return out;
    }
    void putMpps(const std::string& uid, const std::string& json) override {
        std::lock_guard<std::mutex> lock(m_);
        mpps_[uid] = json;
    }
    std::optional<std::string> getMpps(const std::string& uid) override {
        std::lock_guard<std::mutex> lock(m_);
        auto it = mpps_.find(uid);
        if (it == mpps_.end()) return std::nullopt;
        return it->second;
    }
    FindStats findStats() const override {
        std::lock_guard<std::mutex> lock(m_);
        FindStats s;
        s.finds = filters.size();
        s.rowsScanned = s.steps = filters.size() * items_.size();  // every find walks every item
        return s;
    }
    std::optional<store::WorklistItem> get(std::int64_t id) override {
        std::lock_guard<std::mutex> lock(m_);
        for (const auto& it : items_)
            if (it.id == id) return it;
        return std::nullopt;
    }
    std::size_t count() override {
        std::lock_guard<std::mutex> lock(m_);
        return items_.size();
    }
    std::optional<store::WorklistStatus> statusOf(const std::string& accession) {
        std::lock_guard<std::mutex> lock(m_);
        for (const auto& it : items_)
            if (it.accessionNumber == accession) return it.status;
        return std::nullopt;
    }

    std::vector<store::WorklistFilter> filters;
    std::atomic<bool> failFind{false};

private:
    mutable std::mutex m_;
    std::vector<store::WorklistItem> items_;
    std::map<std::string, std::string> mpps_;
};

struct Order {
    std::string patientId, patientName, accession, modality, station, date, time, description, studyUid;
    std::string requestedProcedureId = "RP1";
    std::string birthDate;  // empty: the item has no PatientBirthDate

    Order(std::string patientId, std::string patientName, std::string accession, std::string modality,
          std::string station, std::string date, std::string time, std::string description, std::string studyUid,
          std::string requestedProcedureId = "RP1", std::string birthDate = {})
        : patientId(std::move(patientId)),
          patientName(std::move(patientName)),
          accession(std::move(accession)),
          modality(std::move(modality)),
          station(std::move(station)),
          date(std::move(date)),
          time(std::move(time)),
          description(std::move(description)),
          studyUid(std::move(studyUid)),
          requestedProcedureId(std::move(requestedProcedureId)),
          birthDate(std::move(birthDate)) {}
};

using util::jsonString;

// The worklist item of an order, as the store holds it (columns + DICOM JSON).
inline store::WorklistItem worklistItem(const Order& o) {
    auto str = [](const char* vr, const std::string& v) {
        return std::string("{\"vr\":\"") + vr + "\",\"Value\":[" + jsonString(v) + "]}";
    };
    std::string sps = "{\"00080060\":" + str("CS", o.modality) + ",\"00400001\":" + str("AE", o.station) +
                      ",\"00400002\":" + str("DA", o.date) + ",\"00400003\":" + str("TM", o.time) +
                      ",\"00400007\":" + str("LO", o.description + " step") + ",\"00400009\":" + str("SH", "SPS-" + o.accession) +
                      ",\"00321060\":" + str("LO", o.description) + "}";
    std::string json = "{\"00080050\":" + str("SH", o.accession) + ",\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":" +
                       jsonString(o.patientName) + "}]},\"00100020\":" + str("LO", o.patientId) +
                       (o.birthDate.empty() ? "" : ",\"00100030\":" + str("DA", o.birthDate)) +
                       ",\"0020000D\":" + str("UI", o.studyUid) + ",\"00321060\":" + str("LO", o.description) +
                       ",\"00401001\":" + str("SH", o.requestedProcedureId) +
                       ",\"00400100\":{\"vr\":\"SQ\",\"Value\":[" + sps + "]}}";
    store::WorklistItem it;
    it.patientId = o.patientId;
    it.patientName = o.patientName;
    it.accessionNumber = o.accession;
    it.modality = o.modality;
    it.stationAeTitle = o.station;
    it.spsStartDate = o.date;
    it.spsStartTime = o.time;
    it.requestedProcedureId = o.requestedProcedureId;
    it.studyInstanceUid = o.studyUid;
    it.dataset = json;
    return it;
}

// Records what a source submits; answers accepted (or refuses when `refuse` is set).
class RecordingContext : public core::SourceContext {
public:
    void submit(core::Inbound message, std::function<void(core::SubmitResult)> done) override {
        core::SubmitResult r;
        {
            std::lock_guard<std::mutex> lock(m_);
            if (refuse) {
                r.error = "channel refused";
            } else {
                messages_.push_back(message);
                r.accepted = true;
                r.id = static_cast<long long>(messages_.size());
            }
        }
        done(r);
    }
    bool waitUntilAccepting() override { return true; }
    const std::string& channelName() const override { return name_; }
    void log(const std::string& level, const std::string& text) override {
        std::lock_guard<std::mutex> lock(m_);
        logs_.push_back(level + ": " + text);
    }
    void event(const std::string& type, const std::string& text) override {
        std::lock_guard<std::mutex> lock(m_);
        events_.push_back(type + ": " + text);
    }
    std::vector<core::Inbound> messages() {
        std::lock_guard<std::mutex> lock(m_);
        return messages_;
    }
    std::vector<std::string> events() {
        std::lock_guard<std::mutex> lock(m_);
        return events_;
    }
    std::vector<std::string> logs() {
        std::lock_guard<std::mutex> lock(m_);
        return logs_;
    }
    std::atomic<bool> refuse{false};

private:
    std::mutex m_;
    std::string name_ = "mwl-test";
    std::vector<core::Inbound> messages_;
    std::vector<std::string> logs_;
    std::vector<std::string> events_;
};

// A free TCP port in 27500-27999 (the range the DICOM tests may use).
inline int freeDicomPort() {
    static std::mt19937 rng(static_cast<unsigned>(std::random_device{}()) ^ static_cast<unsigned>(::getpid()));
    for (int attempt = 0; attempt < 200; ++attempt) {
        int port = 27500 + static_cast<int>(rng() % 500);
        try {
            Poco::Net::ServerSocket s(Poco::Net::SocketAddress("0.0.0.0", static_cast<Poco::UInt16>(port)), 1);
            return port;
        } catch (const Poco::Exception&) {
        }
    }
    throw std::runtime_error("no free port in 27500-27999");
}

struct CommandResult {
    int exitCode = -1;
    std::string output;  // stdout and stderr
};

inline CommandResult run(const std::string& command) {
    CommandResult r;
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (!p) return r;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
    int status = ::pclose(p);
    r.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

// The IPv4 addresses listening on TCP `port` ("127.0.0.1", "0.0.0.0"), from /proc/net/tcp.
inline std::vector<std::string> listeningAddresses(int port) {
    std::ifstream table("/proc/net/tcp");
    std::string line;
    std::getline(table, line);  // the header
    std::vector<std::string> out;
    while (std::getline(table, line)) {
        std::istringstream fields(line);
        std::string slot, local, remote, state;
        fields >> slot >> local >> remote >> state;
        std::size_t colon = local.find(':');
        if (state != "0A" || colon == std::string::npos) continue;  // 0A: LISTEN
        if (std::stoi(local.substr(colon + 1), nullptr, 16) != port) continue;
        // The address in network order, printed as a word of this (little-endian) machine.
        unsigned long ip = std::stoul(local.substr(0, colon), nullptr, 16);
        out.push_back(std::to_string(ip & 255) + "." + std::to_string((ip >> 8) & 255) + "." +
                      std::to_string((ip >> 16) & 255) + "." + std::to_string(ip >> 24));
    }
    return out;
}

// Whether one of `lines` contains every one of `parts`.
inline bool anyLineHas(const std::vector<std::string>& lines, const std::vector<std::string>& parts) {
    for (const auto& l : lines) {
        bool all = true;
        for (const auto& p : parts) all = all && l.find(p) != std::string::npos;
        if (all) return true;
    }
    return false;
}

inline bool eventuallyTrue(const std::function<bool()>& cond, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return cond();
}

inline std::string sourceDir() {
    const char* env = std::getenv("JUNCTION_SOURCE_DIR");
    return env ? env : JUNCTION_SOURCE_DIR;
}

}  // namespace junction::testing
