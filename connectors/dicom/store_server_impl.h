// Internal to connectors/dicom: the storage server's state, shared by its two
// halves. store_server.cpp handles associations (the DcmSCP side: negotiation,
// C-STORE and C-ECHO, when the response goes out); store_filing.cpp files
// instances (the checked file, the .incoming/ready hand-over, the move under
// Study/Series/SOP, the ingest thread that makes them messages). DCMTK types;
// never include this outside connectors/dicom.
#pragma once

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/scpthrd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "connectors/dicom/acceptor.h"
#include "connectors/dicom/part10_walk.h"
#include "connectors/dicom/server_scp.h"
#include "connectors/dicom/store_server.h"

namespace junction::dicom {

namespace detail {

// Empty files created ahead of need by a background thread. Creating a file
// (allocating its inode) is the largest single cost of receiving an instance
// on ext4, and the sender waits for every C-STORE response; an association
// takes a spare, DCMTK writes the instance into it, and it is renamed into
// place. Spares live in the server's own incoming folder, which is emptied at
// start, so none outlives a crash.
class SpareFiles {
public:
    using Namer = std::function<std::string()>;

    void start(std::string dir, Namer name, std::size_t depth);
    // A spare's path, or a new name when none is ready (DCMTK then creates it).
    std::string take();
    void stop();

private:
    std::string freshPath() { return dir_ + "/" + name_() + ".part"; }
    void loop();

    std::string dir_;
    Namer name_;
    std::size_t depth_ = 0;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::string> ready_;
    bool stopping_ = false;
    std::thread thread_;
};

// The structural walk of a received file.
Part10Walk walkFile(const std::string& path);
// Why an instance cannot be filed under these UIDs, or "".
std::string uidProblem(const std::string& study, const std::string& series, const std::string& instance);
// fsync of a file or of a folder (its entries); false when it failed.
bool fsyncPath(const std::string& path, bool directory);

}  // namespace detail

class StoreServer::Impl {
public:
    Impl(StoreServerOptions o, Handler h, Logger l) : o_(std::move(o)), handler_(std::move(h)), log_(std::move(l)) {}

    void start();
    void stop();
    void log(const std::string& level, const std::string& text) const {
        if (log_) log_(level, text);
    }
    std::string tempName() {
        std::lock_guard<std::mutex> lock(rngMutex_);
        char buf[40];
        std::snprintf(buf, sizeof buf, "%016llx%08x", static_cast<unsigned long long>(rng_()),
                      static_cast<unsigned>(counter_++));
        return buf;
    }

    // Partial files, one folder per listening port so that two servers sharing
    // a storage folder never remove each other's.
    std::string incomingDir() const {
        return (std::filesystem::path(o_.storageDir) / ".incoming" / std::to_string(o_.port)).string();
    }

    std::string readyDir() const { return incomingDir() + "/ready"; }

    // ---- the filing side's lifetime (store_filing.cpp)

    // Makes the incoming and ready folders, removes partial and spare files of
    // a previous run and queues the ready ones (answered instances not yet
    // messages) first. Throws std::runtime_error.
    void prepareFiling();
    void startBackground();  // the spare files and the ingest thread
    void stopBackground();

    // ---- reading and filing an instance (both response modes)

    struct Reading {
        Uint16 status = 0;  // a refusal status, 0 when readable
        std::string error;
        ReceivedInstance r;
        std::filesystem::path dir;  // STORAGE/<StudyUID>/<SeriesUID>
    };
    Reading read(const std::string& path) const;
    // Files `from` under its UIDs by rename, or by a second link (the ready
    // file stays until the handler accepted it); sets rd.r.path. An error text, or "".
    std::string place(const std::string& from, Reading& rd, bool link, std::string& knownDir) const;
    StoreOutcome callHandler(const ReceivedInstance& r) {
        try {
            return handler_(r);
        } catch (const std::exception& e) {
            return {kStoreOutOfResources, e.what()};
        }
    }

    // ---- ingest: instances answered, waiting to become messages

    // A new name in the ready folder, carrying the association's AE titles and peer.
    std::string readyName(const std::string& callingAE, const std::string& calledAE, const std::string& peer);
    bool backlogFull() {
        std::lock_guard<std::mutex> lock(ingestMu_);
        return static_cast<int>(ingest_.size()) >= o_.maxBacklog;
    }
    void enqueue(std::string path) {
        {
            std::lock_guard<std::mutex> lock(ingestMu_);
            ingest_.push_back(std::move(path));
        }
        ingestCv_.notify_one();
    }
    void ingestLoop();
    bool ingestOne(const std::string& readyPath, std::string& knownDir, std::string& lastLogged);

    StoreServerOptions o_;
    Handler handler_;
    Logger log_;
    DcmSharedSCPConfig config_;
    detail::ScpPolicy policy_;
    std::atomic<bool> stopping_{false};
    std::unique_ptr<detail::Acceptor> acceptor_;

    mutable std::mutex countersMutex_;
    Counters counters_;

    std::mutex rngMutex_;
    std::mt19937_64 rng_{std::random_device{}()};
    unsigned counter_ = 0;

    detail::SpareFiles spares_;
    mutable std::atomic<bool> linkWarned_{false};

    std::mutex ingestMu_;
    std::condition_variable ingestCv_;
    std::deque<std::string> ingest_;  // ready files, oldest first
    bool ingestStop_ = false;
    std::thread ingestThread_;
    std::atomic<unsigned> readySeq_{0};
};

}  // namespace junction::dicom
