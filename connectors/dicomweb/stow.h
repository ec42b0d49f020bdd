// STOW-RS (DICOM PS3.18 10.5): DICOM files stored on a DICOMweb server with
// one multipart/related POST to <root>/studies[/{StudyInstanceUID}], and
// what the server's answer (DICOM JSON with ReferencedSOPSequence and
// FailedSOPSequence) means for a delivery. The server is an Orthanc of
// junction.yaml (its URL, credentials and TLS) or any DICOMweb root URL with
// credentials of its own. No engine core headers: tested on its own.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/http/client.h"

namespace junction::orthanc {
class Server;
}

namespace junction::dicomweb {

struct StowTarget {
    // An Orthanc server of junction.yaml and the path of its DICOMweb root ...
    orthanc::Server* server = nullptr;
    std::string root = "/dicom-web";
    // ... or the DICOMweb root URL of any server ("https://pacs/dicom-web"),
    // with basic (username, password) or bearer authentication.
    std::string url;
    std::string username, password, bearer;
    http::TlsOptions tls;
    // Per request; 0: the Orthanc server's timeout, or 30 s for a URL.
    std::chrono::milliseconds timeout{0};
};

struct StowResult {
    // Stored: 2xx and no instance failed. Retry: no answer, 429, 5xx.
    // Error: any other status, or an answer listing failed instances.
    enum class Kind { Stored, Retry, Error } kind = Kind::Error;
    std::string answer;  // the server's answer as it came (DICOM JSON for a DICOMweb server)
    std::string error;   // what went wrong, naming the request
    int stored = 0;      // instances of ReferencedSOPSequence
    int failed = 0;      // instances of FailedSOPSequence
};

class StowClient {
public:
    explicit StowClient(StowTarget target);
    ~StowClient();
    StowClient(const StowClient&) = delete;
    StowClient& operator=(const StowClient&) = delete;

    // Stores the Part-10 files `instances` (one part each) with one request,
    // to <root>/studies/{studyUid} when `studyUid` is given (the server then
    // refuses instances of another study), else to <root>/studies.
    StowResult store(const std::vector<std::string_view>& instances, const std::string& studyUid = {});
    // "orthanc 'main' /dicom-web" or the root URL.
    std::string describe() const;
    // Closes a kept connection (a later store opens a new one).
    void reset();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// What a STOW-RS answer says: the counts of stored and failed instances and,
// for the failed ones, "1.2.3 (0xC000 cannot understand)". False when `body`
// is no DICOM JSON object.
struct StowAnswer {
    int stored = 0, failed = 0;
    std::vector<std::string> failures;
};
bool readStowAnswer(const std::string& body, StowAnswer& answer);

}  // namespace junction::dicomweb
