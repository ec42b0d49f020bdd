// C-STORE / C-ECHO SCP (see store_server.h). One accept thread; one thread per
// association running a DcmThreadSCP that writes every instance to a file as
// received and answers only once the handler has said where it stands.
#include "connectors/dicom/store_server.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>
#include <dcmtk/dcmnet/dul.h>
#include <dcmtk/dcmnet/scpthrd.h>
#include <dcmtk/oflog/oflog.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>

#include "connectors/dicom/acceptor.h"
#include "engine/dicom/dicom_text.h"
#include "connectors/dicom/part10_walk.h"
#include "connectors/dicom/server_scp.h"
#include "connectors/dicom/store_dcmtk.h"

namespace fs = std::filesystem;

namespace junction::dicom {

void disableNagleForDcmtk() {
    static std::once_flag once;
    std::call_once(once, [] {
        ::setenv("TCP_NODELAY", "1", 0);
        // DCMTK's own console logging stays at warnings; Junction logs what matters.
        OFLog::configure(getenv("JUNCTION_DCMTK_DEBUG") ? OFLogger::DEBUG_LOG_LEVEL : OFLogger::ERROR_LOG_LEVEL);
    });
}

namespace {

// The transfer syntaxes accepted for storage, uncompressed first.
const char* const kTransferSyntaxes[] = {
    UID_LittleEndianExplicitTransferSyntax,
    UID_LittleEndianImplicitTransferSyntax,
    UID_BigEndianExplicitTransferSyntax,
    UID_DeflatedExplicitVRLittleEndianTransferSyntax,
    UID_JPEGProcess1TransferSyntax,
    UID_JPEGProcess2_4TransferSyntax,
    UID_JPEGProcess14TransferSyntax,
    UID_JPEGProcess14SV1TransferSyntax,
    UID_JPEGLSLosslessTransferSyntax,
    UID_JPEGLSLossyTransferSyntax,
    UID_JPEG2000LosslessOnlyTransferSyntax,
    UID_JPEG2000TransferSyntax,
    UID_JPEG2000Part2MulticomponentImageCompressionLosslessOnlyTransferSyntax,
    UID_JPEG2000Part2MulticomponentImageCompressionTransferSyntax,
    UID_RLELosslessTransferSyntax,
    UID_MPEG2MainProfileAtMainLevelTransferSyntax,
    UID_MPEG2MainProfileAtHighLevelTransferSyntax,
    UID_MPEG4HighProfileLevel4_1TransferSyntax,
    UID_MPEG4BDcompatibleHighProfileLevel4_1TransferSyntax,
    UID_MPEG4HighProfileLevel4_2_For2DVideoTransferSyntax,
    UID_MPEG4HighProfileLevel4_2_For3DVideoTransferSyntax,
    UID_MPEG4StereoHighProfileLevel4_2TransferSyntax,
    UID_HEVCMainProfileLevel5_1TransferSyntax,
    UID_HEVCMain10ProfileLevel5_1TransferSyntax,
};

// A UID fit to be a file or folder name: digits and dots, 1..64 characters.
bool safeUid(const std::string& uid) {
    if (uid.empty() || uid.size() > 64 || uid == "." || uid == "..") return false;
    return std::all_of(uid.begin(), uid.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

// Received files up to this size are read whole into memory to be checked and
// parsed: the file was just written, so this is a page-cache copy, cheaper than
// DCMTK's file stream per element and than unmapping a mapping.
constexpr std::size_t kReadWhole = 4u << 20;

enum class Whole { Read, TooBig, Failed };

// Reads `path` into `out` when it is at most kReadWhole bytes; `fd` stays open
// (and is returned) when it is bigger, for the caller to map.
Whole readWhole(const std::string& path, std::string& out, int& bigFd, std::size_t& size) {
    bigFd = -1;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) {
        if (fd >= 0) ::close(fd);
        return Whole::Failed;
    }
    size = static_cast<std::size_t>(st.st_size);
    if (size > kReadWhole) {
        bigFd = fd;
        return Whole::TooBig;
    }
    out.resize(size);
    std::size_t got = 0;
    while (got < size) {
        ssize_t n = ::read(fd, out.data() + got, size - got);
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    out.resize(got);
    ::close(fd);
    return Whole::Read;
}

// Parses a received file, from memory when it was read whole, else from the
// file with large values left on disk. Either way the whole dataset is read,
// so a truncated one is noticed.
OFCondition parseReceived(const std::string& path, DcmFileFormat& file) {
    std::string buf;
    int bigFd;
    std::size_t size;
    Whole w = readWhole(path, buf, bigFd, size);
    if (w == Whole::Failed) return makeOFCondition(0, 1, OF_error, "cannot open the received file");
    if (w == Whole::TooBig) {
        ::close(bigFd);
        return file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, 4096, ERM_fileOnly);
    }
    DcmInputBufferStream in;
    in.setBuffer(buf.data(), static_cast<offile_off_t>(buf.size()));
    in.setEos();
    file.transferInit();
    OFCondition c = file.read(in, EXS_Unknown, EGL_noChange, 4096);
    file.transferEnd();
    return c;
}

bool fsyncPath(const std::string& path, bool directory) {
    int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
}

// link() failing this way means the filesystem (FAT, some network mounts) or
// the folder's place (another filesystem) takes no second link.
bool linkUnsupported(int err) { return err == EPERM || err == EXDEV || err == EOPNOTSUPP || err == EMLINK; }

// Files a copy of `from` as `target` (through a temporary name, so that
// `target` is whole or absent), for where a hard link cannot be made.
bool copyInto(const std::string& from, const fs::path& target, bool sync) {
    fs::path tmp = target;
    tmp += ".part";
    std::error_code ec;
    fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
    if (ec || (sync && !fsyncPath(tmp.string(), false))) {
        int err = ec ? ec.value() : errno;
        fs::remove(tmp, ec);
        errno = err;
        return false;
    }
    if (::rename(tmp.c_str(), target.c_str()) == 0) return true;
    int err = errno;
    fs::remove(tmp, ec);
    errno = err;
    return false;
}

// The structural walk of a received file.
Part10Walk walkFile(const std::string& path) {
    std::string buf;
    int bigFd;
    std::size_t size;
    Whole whole = readWhole(path, buf, bigFd, size);
    if (whole == Whole::Read) return walkPart10(reinterpret_cast<const std::uint8_t*>(buf.data()), buf.size());
    Part10Walk w;
    void* m = whole == Whole::TooBig ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, bigFd, 0) : MAP_FAILED;
    if (bigFd >= 0) ::close(bigFd);
    if (m == MAP_FAILED) {
        w.error = std::string("cannot read the received file: ") + std::strerror(errno);
        return w;
    }
    w = walkPart10(static_cast<const std::uint8_t*>(m), size);
    ::munmap(m, size);
    return w;
}

// Why an instance cannot be filed under these UIDs, or "".
std::string uidProblem(const std::string& study, const std::string& series, const std::string& instance) {
    if (safeUid(study) && safeUid(series) && safeUid(instance)) return {};
    return "missing or invalid Study/Series/SOP Instance UID ('" + study + "', '" + series + "', '" + instance + "')";
}

std::string statusHex(Uint16 v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%04X", v);
    return buf;
}

// AE titles and addresses travel in a ready file's name, hex-encoded.
std::string hexOf(const std::string& v) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : v) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::string unhex(std::string_view v) {
    auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    std::string out;
    for (std::size_t i = 0; i + 1 < v.size(); i += 2) out += static_cast<char>((nibble(v[i]) << 4) | nibble(v[i + 1]));
    return out;
}

// Empty files created ahead of need by a background thread. Creating a file
// (allocating its inode) is the largest single cost of receiving an instance
// on ext4, and the sender waits for every C-STORE response; an association
// takes a spare, DCMTK writes the instance into it, and it is renamed into
// place. Spares live in the server's own incoming folder, which is emptied at
// start, so none outlives a crash.
class SpareFiles {
public:
    using Namer = std::function<std::string()>;

    void start(std::string dir, Namer name, std::size_t depth) {
        dir_ = std::move(dir);
        name_ = std::move(name);
        depth_ = depth;
        stopping_ = false;
        thread_ = std::thread([this] { loop(); });
    }

    // A spare's path, or a new name when none is ready (DCMTK then creates it).
    std::string take() {
        std::string path;
        bool low;
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (!ready_.empty()) {
                path = std::move(ready_.front());
                ready_.pop_front();
            }
            low = ready_.size() <= depth_ / 2;  // refilled in batches: one wake-up per few takes
        }
        if (low) cv_.notify_one();
        return path.empty() ? freshPath() : path;
    }

    void stop() {
        if (!thread_.joinable()) return;
        {
            std::lock_guard<std::mutex> lock(mu_);
            stopping_ = true;
        }
        cv_.notify_one();
        thread_.join();
        for (const auto& p : ready_) ::unlink(p.c_str());
        ready_.clear();
    }

private:
    std::string freshPath() { return dir_ + "/" + name_() + ".part"; }

    void loop() {
        std::unique_lock<std::mutex> lock(mu_);
        while (!stopping_) {
            cv_.wait(lock, [&] { return stopping_ || ready_.size() < depth_; });
            if (stopping_) break;
            lock.unlock();
            std::string path = freshPath();
            int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            if (fd >= 0) ::close(fd);
            lock.lock();
            if (fd < 0) {  // the folder is gone or full: associations create their own files
                cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
                continue;
            }
            ready_.push_back(std::move(path));
        }
    }

    std::string dir_;
    Namer name_;
    std::size_t depth_ = 0;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::string> ready_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace

class StoreServer::Impl {
public:
    Impl(StoreServerOptions o, Handler h, Logger l) : o_(std::move(o)), handler_(std::move(h)), log_(std::move(l)) {}

    void start();
    void stop();
    void stopBackground();  // the spare files and the ingest thread
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
    std::string incomingDir() const { return (fs::path(o_.storageDir) / ".incoming" / std::to_string(o_.port)).string(); }

    std::string readyDir() const { return incomingDir() + "/ready"; }

    // ---- reading and filing an instance (both response modes)

    struct Reading {
        Uint16 status = 0;  // a refusal status, 0 when readable
        std::string error;
        ReceivedInstance r;
        fs::path dir;  // STORAGE/<StudyUID>/<SeriesUID>
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

    std::string readyName(const std::string& callingAE, const std::string& calledAE, const std::string& peer) {
        char head[48];
        auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch());
        std::snprintf(head, sizeof head, "%020lld-%08u", static_cast<long long>(ns.count()), readySeq_++);
        return readyDir() + "/" + head + "_" + hexOf(callingAE) + "_" + hexOf(calledAE) + "_" + hexOf(peer) + ".dcm";
    }
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

    SpareFiles spares_;
    mutable std::atomic<bool> linkWarned_{false};

    std::mutex ingestMu_;
    std::condition_variable ingestCv_;
    std::deque<std::string> ingest_;  // ready files, oldest first
    bool ingestStop_ = false;
    std::thread ingestThread_;
    std::atomic<unsigned> readySeq_{0};
};

namespace {

class AssociationScp : public detail::ServerScp {
public:
    explicit AssociationScp(StoreServer::Impl& server) : ServerScp(server.policy_), server_(server) {}

protected:
    void notifyAssociationAcknowledge() override {
        std::lock_guard<std::mutex> lock(server_.countersMutex_);
        ++server_.counters_.associations;
    }

    OFCondition handleIncomingCommand(T_DIMSE_Message* msg, const DcmPresentationContextInfo& info) override {
        if (msg->CommandField == DIMSE_C_STORE_RQ) return handleStore(msg->msg.CStoreRQ, info);
        if (msg->CommandField == DIMSE_C_ECHO_RQ) {
            std::lock_guard<std::mutex> lock(server_.countersMutex_);
            ++server_.counters_.echoes;
        }
        return DcmThreadSCP::handleIncomingCommand(msg, info);
    }

private:
    void failed() {
        std::lock_guard<std::mutex> lock(server_.countersMutex_);
        ++server_.counters_.failed;
    }

    OFCondition respond(T_ASC_PresentationContextID presID, T_DIMSE_C_StoreRQ& req, Uint16 status) {
        return sendSTOREResponse(presID, req, status);
    }

    OFCondition handleStore(T_DIMSE_C_StoreRQ& req, const DcmPresentationContextInfo& info) {
        const StoreServerOptions& o = server_.o_;
        auto from = [&] { return callingAe() + " (" + peer() + ")"; };
        std::error_code ec;
        std::string tmp = server_.spares_.take();

        OFCondition c = receiveSTORERequest(req, info.presentationContextID, OFString(tmp.c_str()));
        if (c.bad()) {
            // Aborted or broken mid-transfer: no partial file stays behind.
            fs::remove(tmp, ec);
            failed();
            server_.log("warn", "dicom: receiving " + std::string(req.AffectedSOPInstanceUID) + " from " + from() +
                                    " failed: " + c.text() + "; partial file removed");
            return c;
        }

        auto reject = [&](Uint16 status, const std::string& why) {
            fs::remove(tmp, ec);
            failed();
            server_.log("warn", "dicom: instance " + std::string(req.AffectedSOPInstanceUID) + " from " + from() +
                                    " refused (status " + statusHex(status) + "): " + why);
            return respond(info.presentationContextID, req, status);
        };
        auto otherInstance = [&](const std::string& uid) {
            return reject(STATUS_STORE_Error_DataSetDoesNotMatchSOPClass,
                          "SOP Instance UID " + uid + " differs from the request's " + req.AffectedSOPInstanceUID);
        };

        if (!o.respondAfterHandler) {
            Part10Walk w = walkFile(tmp);
            if (w.walkable) {  // deflated data is parsed and handled before the response instead
                if (!w.ok) return reject(STATUS_STORE_Error_CannotUnderstand, "malformed dataset: " + w.error);
                std::string why = uidProblem(w.studyUid, w.seriesUid, w.sopInstanceUid);
                if (!why.empty()) return reject(STATUS_STORE_Error_CannotUnderstand, why);
                if (w.sopInstanceUid != req.AffectedSOPInstanceUID) return otherInstance(w.sopInstanceUid);
                if (server_.backlogFull())
                    return reject(STATUS_STORE_Refused_OutOfResources,
                                  std::to_string(o.maxBacklog) + " received instances still wait to become messages");
                if (o.syncFiles && !fsyncPath(tmp, false))
                    return reject(STATUS_STORE_Refused_OutOfResources, "cannot flush " + tmp + " to disk");
                std::string ready = server_.readyName(callingAe(), trimSpaces(getCalledAETitle().c_str()), peer());
                if (!renameInto(tmp, ready, ec))
                    return reject(STATUS_STORE_Refused_OutOfResources, "cannot rename to " + ready + ": " + ec.message());
                if (o.syncFiles) fsyncPath(server_.readyDir(), true);
                server_.enqueue(std::move(ready));
                {
                    std::lock_guard<std::mutex> lock(server_.countersMutex_);
                    ++server_.counters_.stored;
                }
                return respond(info.presentationContextID, req, STATUS_Success);
            }
        }

        StoreServer::Impl::Reading rd = server_.read(tmp);
        if (rd.status) return reject(rd.status, rd.error);
        if (rd.r.sopInstanceUid != req.AffectedSOPInstanceUID) return otherInstance(rd.r.sopInstanceUid);
        if (o.syncFiles && !fsyncPath(tmp, false))
            return reject(STATUS_STORE_Refused_OutOfResources, "cannot flush " + tmp + " to disk");
        std::string placeError = server_.place(tmp, rd, false, knownDir_);
        if (!placeError.empty()) return reject(STATUS_STORE_Refused_OutOfResources, placeError);
        rd.r.callingAE = callingAe();
        rd.r.calledAE = trimSpaces(getCalledAETitle().c_str());
        rd.r.peer = peer();

        StoreOutcome outcome = server_.callHandler(rd.r);
        {
            std::lock_guard<std::mutex> lock(server_.countersMutex_);
            if (outcome.status == kStoreSuccess) ++server_.counters_.stored;
            else ++server_.counters_.failed;
        }
        if (outcome.status != kStoreSuccess)
            server_.log("warn", "dicom: instance " + rd.r.sopInstanceUid + " from " + from() + " not accepted (status " +
                                    statusHex(outcome.status) + "): " + outcome.error);
        return respond(info.presentationContextID, req, outcome.status);
    }

    static bool renameInto(const std::string& from, const fs::path& to, std::error_code& ec) {
        ec.clear();
        fs::rename(from, to, ec);
        return !ec;
    }

    StoreServer::Impl& server_;
    std::string knownDir_;  // the last folder an instance was renamed into
};

}  // namespace

StoreServer::Impl::Reading StoreServer::Impl::read(const std::string& path) const {
    Reading rd;
    DcmFileFormat file;
    OFCondition c = parseReceived(path, file);
    if (c.bad()) {
        rd.status = STATUS_STORE_Error_CannotUnderstand;
        rd.error = std::string("unreadable dataset: ") + c.text();
        return rd;
    }
    DcmDataset* ds = file.getDataset();
    OFString study, series, instance, sopClass, xfer;
    ds->findAndGetOFString(DCM_StudyInstanceUID, study);
    ds->findAndGetOFString(DCM_SeriesInstanceUID, series);
    ds->findAndGetOFString(DCM_SOPInstanceUID, instance);
    ds->findAndGetOFString(DCM_SOPClassUID, sopClass);
    file.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, xfer);
    ReceivedInstance& r = rd.r;
    r.studyUid = study.c_str();
    r.seriesUid = series.c_str();
    r.sopInstanceUid = instance.c_str();
    r.sopClassUid = sopClass.c_str();
    r.transferSyntaxUid = xfer.c_str();
    rd.error = uidProblem(r.studyUid, r.seriesUid, r.sopInstanceUid);
    if (!rd.error.empty()) {
        rd.status = STATUS_STORE_Error_CannotUnderstand;
        return rd;
    }
    std::string error;
    if (!detail::itemToJson(*ds, r.json, error)) {
        rd.status = STATUS_STORE_Error_CannotUnderstand;
        rd.error = "cannot convert to DICOM JSON: " + error;
        return rd;
    }
    rd.dir = fs::path(o_.storageDir) / r.studyUid / r.seriesUid;
    return rd;
}

std::string StoreServer::Impl::place(const std::string& from, Reading& rd, bool link, std::string& knownDir) const {
    fs::path target = rd.dir / (rd.r.sopInstanceUid + ".dcm");
    auto put = [&] {
        if (!link) {
            if (::rename(from.c_str(), target.c_str()) == 0) return true;
            if (errno != EXDEV || !copyInto(from, target, o_.syncFiles)) return false;
            ::unlink(from.c_str());
            return true;
        }
        if (::link(from.c_str(), target.c_str()) == 0) return true;
        if (errno == EEXIST) {
            ::unlink(target.c_str());  // the same instance again: the newer file replaces it, as a rename would
            if (::link(from.c_str(), target.c_str()) == 0) return true;
        }
        if (!linkUnsupported(errno)) return false;
        if (!linkWarned_.exchange(true))
            log("info", "dicom: " + rd.dir.string() + " takes no hard links (" + std::strerror(errno) +
                            "); instances are filed there by copy");
        return copyInto(from, target, o_.syncFiles);
    };
    // A series' folder is looked for once, not per instance; should it vanish
    // meanwhile (pruned), filing fails and makes it again.
    bool newDirs = false;
    if (rd.dir.native() != knownDir || !put()) {
        std::error_code ec;
        newDirs = !fs::exists(rd.dir, ec);
        fs::create_directories(rd.dir, ec);
        if (ec) return "cannot create " + rd.dir.string() + ": " + ec.message();
        if (!put()) return std::string("cannot file the instance as ") + target.string() + ": " + std::strerror(errno);
        knownDir = rd.dir.native();
    }
    if (o_.syncFiles) {
        fsyncPath(rd.dir.string(), true);
        if (newDirs) {
            fsyncPath(rd.dir.parent_path().string(), true);
            fsyncPath(o_.storageDir, true);
        }
    }
    rd.r.path = target.string();
    return {};
}

// One ready file: read, filed and handed to the handler. False when it must
// be tried again later (the handler refused it, or it could not be filed).
bool StoreServer::Impl::ingestOne(const std::string& readyPath, std::string& knownDir, std::string& lastLogged) {
    std::string name = fs::path(readyPath).stem().string();
    std::vector<std::string_view> parts;
    for (std::size_t at = 0;;) {
        std::size_t us = name.find('_', at);
        parts.emplace_back(std::string_view(name).substr(at, us == std::string::npos ? std::string::npos : us - at));
        if (us == std::string::npos) break;
        at = us + 1;
    }
    auto complain = [&](const std::string& text) {
        if (lastLogged != readyPath) log("warn", text + "; tried again every second");
        lastLogged = readyPath;
        return false;
    };

    Reading rd = read(readyPath);
    if (parts.size() == 4) {
        rd.r.callingAE = unhex(parts[1]);
        rd.r.calledAE = unhex(parts[2]);
        rd.r.peer = unhex(parts[3]);
    }
    if (rd.status) {
        // Answered, yet DCMTK cannot read it: kept as an error message, the file set aside.
        fs::path aside = fs::path(o_.storageDir) / ".failed" / fs::path(readyPath).filename();
        rd.r.error = rd.error;
        rd.r.path = aside.string();
        rd.r.json = "{}";
        StoreOutcome out = callHandler(rd.r);
        if (out.status != kStoreSuccess) return complain("dicom: unreadable instance " + readyPath + " not stored: " + out.error);
        std::error_code ec;
        fs::create_directories(aside.parent_path(), ec);
        fs::rename(readyPath, aside, ec);
        if (ec) fs::remove(readyPath, ec);
        log("warn", "dicom: instance from " + rd.r.callingAE + " (" + rd.r.peer + ") answered but unreadable: " + rd.error +
                        "; kept as an error message, file in " + aside.string());
        return true;
    }
    std::string placeError = place(readyPath, rd, true, knownDir);
    if (!placeError.empty()) return complain("dicom: " + placeError);
    StoreOutcome out = callHandler(rd.r);
    if (out.status != kStoreSuccess)
        return complain("dicom: instance " + rd.r.sopInstanceUid + " not yet a message: " + out.error);
    ::unlink(readyPath.c_str());
    return true;
}

void StoreServer::Impl::ingestLoop() {
    std::string knownDir, lastLogged;
    std::unique_lock<std::mutex> lock(ingestMu_);
    for (;;) {
        ingestCv_.wait(lock, [&] { return ingestStop_ || !ingest_.empty(); });
        if (ingestStop_) break;
        std::string path = ingest_.front();
        lock.unlock();
        bool done = ingestOne(path, knownDir, lastLogged);
        lock.lock();
        if (done) ingest_.pop_front();
        else ingestCv_.wait_for(lock, std::chrono::seconds(1), [&] { return ingestStop_; });
    }
}

void StoreServer::Impl::start() {
    disableNagleForDcmtk();
    std::error_code ec;
    const std::string incoming = incomingDir();
    fs::create_directories(incoming, ec);
    if (ec) throw std::runtime_error("cannot create " + incoming + ": " + ec.message());
    // Partial and spare files of a previous run go; answered instances not yet
    // messages (the ready folder) are taken up first.
    for (const auto& e : fs::directory_iterator(incoming, ec))
        if (e.is_regular_file(ec)) fs::remove(e.path(), ec);
    fs::create_directories(readyDir(), ec);
    if (ec) throw std::runtime_error("cannot create " + readyDir() + ": " + ec.message());
    std::vector<std::string> pending;
    for (const auto& e : fs::directory_iterator(readyDir(), ec))
        if (e.path().extension() == ".dcm") pending.push_back(e.path().string());
    std::sort(pending.begin(), pending.end());
    if (!pending.empty())
        log("info", "dicom: " + std::to_string(pending.size()) + " instance(s) received before the last stop become messages now");
    {
        std::lock_guard<std::mutex> lock(ingestMu_);
        ingest_.assign(pending.begin(), pending.end());
        ingestStop_ = false;
    }

    DcmSCPConfig& cfg = *config_;
    cfg.setAETitle(o_.aeTitle.c_str());
    cfg.setPort(static_cast<Uint16>(o_.port));
    cfg.setMaxReceivePDULength(o_.maxPdu);
    cfg.setACSETimeout(30);
    cfg.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
    cfg.setDIMSETimeout(static_cast<Uint32>(o_.dimseTimeoutSeconds));
    cfg.setConnectionBlockingMode(DUL_NOBLOCK);
    cfg.setConnectionTimeout(1);
    cfg.setHostLookupEnabled(OFFalse);
    OFList<OFString> xfers;
    for (const char* ts : kTransferSyntaxes) xfers.push_back(ts);
    std::set<std::string> seen;
    auto add = [&](const char* uid) {
        if (!uid || !seen.insert(uid).second) return;
        cfg.addPresentationContext(uid, xfers);
    };
    OFList<OFString> echoXfers;
    echoXfers.push_back(UID_LittleEndianExplicitTransferSyntax);
    echoXfers.push_back(UID_LittleEndianImplicitTransferSyntax);
    echoXfers.push_back(UID_BigEndianExplicitTransferSyntax);
    cfg.addPresentationContext(UID_VerificationSOPClass, echoXfers);
    for (int i = 0; i < numberOfDcmAllStorageSOPClassUIDs; ++i) add(dcmAllStorageSOPClassUIDs[i]);
    for (int i = 0; i < numberOfDcmLongSCUStorageSOPClassUIDs; ++i) add(dcmLongSCUStorageSOPClassUIDs[i]);
    OFCondition pc = cfg.setAndCheckAssociationProfile("DEFAULT");
    if (pc.bad()) throw std::runtime_error(std::string("DICOM presentation contexts: ") + pc.text());

    policy_.aeTitle = o_.aeTitle;
    policy_.allowedAes = o_.allowedAEs;
    policy_.log = [this](const std::string& level, const std::string& text) { log(level, "dicom: " + text); };
    policy_.onRefused = [this] {
        std::lock_guard<std::mutex> lock(countersMutex_);
        ++counters_.rejected;
    };
    policy_.stopping = &stopping_;

    detail::AcceptorOptions ao;
    ao.host = o_.host;
    ao.port = o_.port;
    ao.maxPdu = o_.maxPdu;
    ao.maxAssociations = o_.maxAssociations;
    ao.requestTimeoutSeconds = 30;
    auto acceptor = std::make_unique<detail::Acceptor>(
        ao,
        [this](T_ASC_Association* assoc) {
            AssociationScp scp(*this);
            scp.setSharedConfig(config_);
            scp.run(assoc);  // negotiates, serves, releases and destroys the association
        },
        policy_.log, policy_.onRefused);
    stopping_ = false;
    spares_.start(incoming, [this] { return tempName(); }, 8);
    ingestThread_ = std::thread([this] { ingestLoop(); });
    try {
        acceptor->start();
    } catch (...) {
        stopBackground();
        throw;
    }
    acceptor_ = std::move(acceptor);
}

void StoreServer::Impl::stop() {
    if (!acceptor_) return;
    stopping_ = true;
    acceptor_->stop();
    acceptor_.reset();
    stopBackground();
}

void StoreServer::Impl::stopBackground() {
    spares_.stop();
    {
        std::lock_guard<std::mutex> lock(ingestMu_);
        ingestStop_ = true;
        ingest_.clear();  // still in the ready folder for the next start
    }
    ingestCv_.notify_all();
    if (ingestThread_.joinable()) ingestThread_.join();
}

StoreServer::StoreServer(StoreServerOptions options, Handler handler, Logger logger)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler), std::move(logger))) {}

StoreServer::~StoreServer() { stop(); }

void StoreServer::start() { impl_->start(); }
void StoreServer::stop() { impl_->stop(); }

StoreServer::Counters StoreServer::counters() const {
    Counters c;
    {
        std::lock_guard<std::mutex> lock(impl_->countersMutex_);
        c = impl_->counters_;
    }
    std::lock_guard<std::mutex> lock(impl_->ingestMu_);
    c.backlog = impl_->ingest_.size();
    return c;
}

}  // namespace junction::dicom
