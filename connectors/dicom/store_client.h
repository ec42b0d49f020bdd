// A DICOM storage client: C-STORE SCU and C-ECHO SCU over one association kept
// open across sends (re-opened when the peer closed it, or when a file needs a
// SOP class / transfer syntax the open association lacks). Plain types here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace junction::dicom {

struct StoreClientOptions {
    std::string host = "127.0.0.1";
    int port = 104;
    std::string calledAE = "ANY-SCP";
    std::string callingAE = "JUNCTION";
    int connectTimeoutSeconds = 5;
    int timeoutSeconds = 30;  // association negotiation and each response
    std::uint32_t maxPdu = 116794;
};

struct StoreSendResult {
    enum class Kind { Ok, Retry, Error } kind = Kind::Ok;
    std::uint16_t status = 0;  // the peer's DIMSE status (when it answered)
    std::string detail;        // what happened, for the message record
    std::string transferSyntaxUid;  // what was sent
};

class StoreClient {
public:
    explicit StoreClient(StoreClientOptions options);
    ~StoreClient();
    StoreClient(const StoreClient&) = delete;
    StoreClient& operator=(const StoreClient&) = delete;

    // Sends the DICOM file `path`; when `editsJson` is not empty it is a DICOM
    // JSON object whose differences from the file's dataset are applied first
    // (see store_json.h). The file itself is not changed. Ok on a success or
    // warning status; Retry when the peer cannot be reached, refuses the
    // association, times out or answers 0xA7xx (out of resources); Error on
    // other failure statuses and on files that cannot be read or converted.
    StoreSendResult send(const std::string& path, const std::string& editsJson = {});

    // C-ECHO on a new association (the stored one stays as it is).
    StoreSendResult echo();

    // Release the association (polite), or abort it from another thread.
    void close();
    void abort();

    const StoreClientOptions& options() const;
    // Storage associations opened so far (echo associations not counted).
    std::uint64_t associationsOpened() const;

    class Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace junction::dicom
