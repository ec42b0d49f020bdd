// A DICOM storage server: C-STORE SCP and C-ECHO SCP (DCMTK inside, plain
// types here). Every received instance is written exactly as received (no
// transcoding) to STORAGE/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm and
// handed to the handler, which makes it a message.
//
// When the C-STORE response goes out depends on `respondAfterHandler`:
//  - false (default): once the instance is safely on disk. Its structure is
//    checked (lengths, items, delimiters: a truncated or garbled dataset is
//    refused), it is flushed (with syncFiles) and renamed into the server's
//    ready folder, and the response is sent. An ingest thread then parses it,
//    files it under its UIDs and calls the handler; only when the handler has
//    accepted it does it leave the ready folder, so an instance answered but not
//    yet a message survives a crash or a stop and is taken up at the next start.
//    A file DCMTK cannot read after all reaches the handler with `error` set.
//  - true: the response waits for the handler, whose status it carries.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace junction::dicom {

struct StoreServerOptions {
    std::string aeTitle = "JUNCTION";
    std::string host = "0.0.0.0";  // IPv4 address to listen on (0.0.0.0: every interface)
    int port = 0;
    std::vector<std::string> allowedAEs;  // empty = any calling AE
    std::uint32_t maxPdu = 116794;
    std::string storageDir;
    // Flush each file (and new folders) to disk before answering, as the store
    // does with `sync: full`; with `sync: normal` files are handed to the
    // operating system only (they survive a crash of Junction, not of the machine).
    bool syncFiles = true;
    bool respondAfterHandler = false;
    // With respondAfterHandler false: instances answered but not yet handled
    // beyond which new ones are refused (0xA700) until the handler catches up.
    int maxBacklog = 1000;
    int maxAssociations = 32;
    int dimseTimeoutSeconds = 60;  // a peer silent this long mid-association is dropped
    // Associations opened, closed and refused (SourceContext::event); may be empty.
    std::function<void(const std::string& type, const std::string& text)> event{};
};

struct ReceivedInstance {
    std::string path;  // the stored file
    std::string json;  // DICOM JSON of the dataset without pixel data
    std::string sopClassUid, sopInstanceUid, studyUid, seriesUid;
    std::string transferSyntaxUid;
    std::string callingAE, calledAE, peer;
    // Set when the instance was answered but could not be read afterwards; the
    // handler keeps it as an error. `path` is then where the file was set aside.
    std::string error;
};

// DIMSE status codes the handler answers with.
enum StoreStatus : std::uint16_t {
    kStoreSuccess = 0x0000,
    kStoreOutOfResources = 0xA700,
    kStoreCannotUnderstand = 0xC000,
};

struct StoreOutcome {
    std::uint16_t status = kStoreSuccess;
    std::string error;
};

class StoreServer {
public:
    using Handler = std::function<StoreOutcome(const ReceivedInstance&)>;
    using Logger = std::function<void(const std::string& level, const std::string& text)>;

    StoreServer(StoreServerOptions options, Handler handler, Logger logger);
    ~StoreServer();
    StoreServer(const StoreServer&) = delete;
    StoreServer& operator=(const StoreServer&) = delete;

    // Listens; throws std::runtime_error when the port cannot be opened.
    void start();
    // Stops accepting, ends open associations, returns when no thread runs.
    void stop();

    struct Counters {
        std::uint64_t associations = 0, rejected = 0, stored = 0, failed = 0, echoes = 0;
        std::uint64_t backlog = 0;  // answered, waiting for the handler
    };
    Counters counters() const;

    class Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// Sets TCP_NODELAY=1 in the environment (once) so that DCMTK disables Nagle's
// algorithm on the sockets it opens.
void disableNagleForDcmtk();

}  // namespace junction::dicom
