// The DICOM server behind the `dicom_mwl` source: Verification (C-ECHO),
// Modality Worklist C-FIND answered from a WorklistStore, and Modality
// Performed Procedure Step N-CREATE / N-SET. Plain types only: the DCMTK
// parts stay in mwl_server.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/store/worklist_store.h"

namespace junction::dicom {

struct MwlServerOptions {
    std::string aeTitle = "JUNCTION";      // the called AE title peers must use
    std::string host = "0.0.0.0";          // IPv4 address to listen on (0.0.0.0: every interface)
    int port = 0;
    std::vector<std::string> allowedAes;   // calling AE titles; empty = any
    std::uint32_t maxPdu = 16384;          // largest PDU we receive
    bool includeFinished = false;          // also answer Completed/Discontinued/Cancelled items
    int maxAssociations = 32;              // concurrent associations; more are rejected
    int dimseTimeoutSeconds = 60;          // idle time before an association is dropped
    // Associations opened, closed and refused (SourceContext::event); may be empty.
    std::function<void(const std::string& type, const std::string& text)> event{};
};

// One MPPS event handed to the channel.
struct MppsEvent {
    std::string kind;            // "N-CREATE" or "N-SET"
    std::string sopInstanceUid;  // the MPPS instance
    std::string status;          // PerformedProcedureStepStatus after this event ("IN PROGRESS" ...)
    std::string callingAe;
    std::string peer;            // "127.0.0.1"
    // The instance as it is now (N-SET merged into the N-CREATE) as DICOM
    // JSON, with "kind", "sopInstanceUid" and "callingAe" added beside the tags.
    std::string json;
};

class MwlServer {
public:
    using Log = std::function<void(const std::string& level, const std::string& text)>;
    // Returns an empty string when the event is taken (stored in the channel),
    // otherwise why not: the peer then gets a processing failure.
    using MppsHandler = std::function<std::string(const MppsEvent&)>;

    MwlServer(MwlServerOptions options, store::WorklistStore& worklist, MppsHandler onMpps, Log log);
    ~MwlServer();
    MwlServer(const MwlServer&) = delete;
    MwlServer& operator=(const MwlServer&) = delete;

    // Opens the port and serves on background threads; throws std::runtime_error
    // when the port cannot be opened.
    void start();
    // Stops listening, ends open associations and joins every thread.
    void stop();

    // Counters for tests and stats.
    struct Counters {
        std::uint64_t associations = 0, rejected = 0, echoes = 0, finds = 0, findMatches = 0, mppsCreates = 0,
                      mppsSets = 0, failures = 0;
    };
    Counters counters() const;
    // The MPPS instance kept for `sopInstanceUid` as DICOM JSON ("" when unknown).
    std::string mppsInstance(const std::string& sopInstanceUid) const;

    struct State;

private:
    std::shared_ptr<State> state_;
};

// Checks an AE title (1-16 characters of the default repertoire, no
// backslash or control characters, not only spaces); returns why not or "".
std::string checkAeTitle(const std::string& ae);

}  // namespace junction::dicom
