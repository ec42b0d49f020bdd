// C-STORE / C-ECHO SCP (see store_server.h). One accept thread; one thread per
// association running a DcmThreadSCP that writes every instance to a file as
// received and answers only once the handler has said where it stands.
#include "connectors/dicom/store_server.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dcmtrans.h>
#include <dcmtk/dcmnet/dimse.h>
#include <dcmtk/dcmnet/dul.h>
#include <dcmtk/dcmnet/scpthrd.h>
#include <dcmtk/oflog/oflog.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <list>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>

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

bool fsyncPath(const std::string& path, bool directory) {
    int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
}

std::string trimAe(const char* s) {
    std::string v(s ? s : "");
    while (!v.empty() && v.back() == ' ') v.pop_back();
    while (!v.empty() && v.front() == ' ') v.erase(v.begin());
    return v;
}

}  // namespace

class StoreServer::Impl {
public:
    Impl(StoreServerOptions o, Handler h, Logger l) : o_(std::move(o)), handler_(std::move(h)), log_(std::move(l)) {}

    void start();
    void stop();
    void acceptLoop();
    void log(const std::string& level, const std::string& text) {
        if (log_) log_(level, text);
    }
    bool callingAllowed(const std::string& ae) const {
        if (o_.allowedAEs.empty()) return true;
        return std::find(o_.allowedAEs.begin(), o_.allowedAEs.end(), ae) != o_.allowedAEs.end();
    }
    std::string tempName() {
        std::lock_guard<std::mutex> lock(rngMutex_);
        char buf[40];
        std::snprintf(buf, sizeof buf, "%016llx%08x", static_cast<unsigned long long>(rng_()),
                      static_cast<unsigned>(counter_++));
        return buf;
    }

    StoreServerOptions o_;
    Handler handler_;
    Logger log_;
    DcmSharedSCPConfig config_;
    T_ASC_Network* net_ = nullptr;
    std::atomic<bool> stopping_{false};
    std::thread acceptThread_;

    struct Worker {
        std::thread thread;
        int fd = -1;
        bool done = false;
    };
    std::mutex workersMutex_;
    std::list<Worker> workers_;

    mutable std::mutex countersMutex_;
    Counters counters_;

    std::mutex rngMutex_;
    std::mt19937_64 rng_{std::random_device{}()};
    unsigned counter_ = 0;
};

namespace {

class AssociationScp : public DcmThreadSCP {
public:
    explicit AssociationScp(StoreServer::Impl& server) : server_(server) {}

protected:
    OFBool checkCallingAETitleAccepted(const OFString& callingAE) override {
        std::string ae = trimAe(callingAE.c_str());
        if (server_.callingAllowed(ae)) return OFTrue;
        server_.log("warn", "dicom: association from calling AE '" + ae + "' (" + getPeerIP().c_str() +
                                ") rejected: not in allowed_aes");
        std::lock_guard<std::mutex> lock(server_.countersMutex_);
        ++server_.counters_.rejected;
        return OFFalse;
    }

    void notifyAssociationAcknowledge() override {
        std::lock_guard<std::mutex> lock(server_.countersMutex_);
        ++server_.counters_.associations;
    }

    void notifyAbortRequest() override {
        server_.log("warn", std::string("dicom: association from ") + getPeerAETitle().c_str() + " (" +
                                getPeerIP().c_str() + ") aborted by the peer");
    }

    void notifyDIMSEError(const OFCondition& cond) override {
        if (!server_.stopping_)
            server_.log("warn", std::string("dicom: ") + getPeerAETitle().c_str() + " (" + getPeerIP().c_str() +
                                    "): " + cond.text());
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
        std::string peer = std::string(getPeerAETitle().c_str()) + " (" + getPeerIP().c_str() + ")";
        fs::path incoming = fs::path(o.storageDir) / ".incoming";
        std::error_code ec;
        fs::create_directories(incoming, ec);
        std::string tmp = (incoming / (server_.tempName() + ".part")).string();

        OFCondition c = receiveSTORERequest(req, info.presentationContextID, OFString(tmp.c_str()));
        if (c.bad()) {
            // Aborted or broken mid-transfer: no partial file stays behind.
            fs::remove(tmp, ec);
            failed();
            server_.log("warn", "dicom: receiving " + std::string(req.AffectedSOPInstanceUID) + " from " + peer +
                                    " failed: " + c.text() + "; partial file removed");
            return c;
        }

        auto reject = [&](Uint16 status, const std::string& why) {
            fs::remove(tmp, ec);
            failed();
            server_.log("warn", "dicom: instance " + std::string(req.AffectedSOPInstanceUID) + " from " + peer +
                                    " refused (status " + hex(status) + "): " + why);
            return respond(info.presentationContextID, req, status);
        };

        DcmFileFormat file;
        // The whole dataset is parsed (large values stay on disk), so a truncated one is noticed.
        c = file.loadFile(tmp.c_str(), EXS_Unknown, EGL_noChange, 4096, ERM_fileOnly);
        if (c.bad()) return reject(STATUS_STORE_Error_CannotUnderstand, std::string("unreadable dataset: ") + c.text());
        DcmDataset* ds = file.getDataset();
        OFString study, series, instance, sopClass;
        ds->findAndGetOFString(DCM_StudyInstanceUID, study);
        ds->findAndGetOFString(DCM_SeriesInstanceUID, series);
        ds->findAndGetOFString(DCM_SOPInstanceUID, instance);
        ds->findAndGetOFString(DCM_SOPClassUID, sopClass);
        std::string st(study.c_str()), se(series.c_str()), in(instance.c_str());
        if (!safeUid(st) || !safeUid(se) || !safeUid(in))
            return reject(STATUS_STORE_Error_CannotUnderstand,
                          "missing or invalid Study/Series/SOP Instance UID ('" + st + "', '" + se + "', '" + in + "')");
        if (in != req.AffectedSOPInstanceUID)
            return reject(STATUS_STORE_Error_DataSetDoesNotMatchSOPClass,
                          "SOP Instance UID " + in + " differs from the request's " + req.AffectedSOPInstanceUID);

        ReceivedInstance r;
        std::string error;
        if (!detail::itemToJson(*ds, r.json, error))
            return reject(STATUS_STORE_Error_CannotUnderstand, "cannot convert to DICOM JSON: " + error);

        fs::path dir = fs::path(o.storageDir) / st / se;
        fs::path target = dir / (in + ".dcm");
        bool newDirs = !fs::exists(dir, ec);
        fs::create_directories(dir, ec);
        if (ec || (o.syncFiles && !fsyncPath(tmp, false)))
            return reject(STATUS_STORE_Refused_OutOfResources, "cannot write " + dir.string() + ": " + ec.message());
        fs::rename(tmp, target, ec);
        if (ec) return reject(STATUS_STORE_Refused_OutOfResources, "cannot rename to " + target.string() + ": " + ec.message());
        if (o.syncFiles) fsyncPath(dir.string(), true);
        if (newDirs && o.syncFiles) {
            fsyncPath(dir.parent_path().string(), true);
            fsyncPath(o.storageDir, true);
        }

        r.path = target.string();
        r.sopClassUid = sopClass.c_str();
        r.sopInstanceUid = in;
        r.studyUid = st;
        r.seriesUid = se;
        r.transferSyntaxUid = info.acceptedTransferSyntax.c_str();
        r.callingAE = trimAe(getPeerAETitle().c_str());
        r.calledAE = trimAe(getCalledAETitle().c_str());
        r.peer = getPeerIP().c_str();

        StoreOutcome outcome;
        try {
            outcome = server_.handler_(r);
        } catch (const std::exception& e) {
            outcome = {kStoreOutOfResources, e.what()};
        }
        {
            std::lock_guard<std::mutex> lock(server_.countersMutex_);
            if (outcome.status == kStoreSuccess) ++server_.counters_.stored;
            else ++server_.counters_.failed;
        }
        if (outcome.status != kStoreSuccess)
            server_.log("warn", "dicom: instance " + in + " from " + peer + " not accepted (status " +
                                    hex(outcome.status) + "): " + outcome.error);
        return respond(info.presentationContextID, req, outcome.status);
    }

    static std::string hex(Uint16 v) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "0x%04X", v);
        return buf;
    }

    StoreServer::Impl& server_;
};

}  // namespace

void StoreServer::Impl::start() {
    disableNagleForDcmtk();
    std::error_code ec;
    fs::create_directories(fs::path(o_.storageDir) / ".incoming", ec);
    if (ec) throw std::runtime_error("cannot create " + o_.storageDir + ": " + ec.message());
    // Partial files of a previous run that ended mid-transfer.
    for (const auto& e : fs::directory_iterator(fs::path(o_.storageDir) / ".incoming", ec)) fs::remove(e.path(), ec);

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

    OFCondition c = ASC_initializeNetwork(NET_ACCEPTOR, o_.port, 30, &net_);
    if (c.bad())
        throw std::runtime_error("cannot listen on port " + std::to_string(o_.port) + ": " + c.text());
    stopping_ = false;
    acceptThread_ = std::thread([this] { acceptLoop(); });
}

void StoreServer::Impl::acceptLoop() {
    while (!stopping_) {
        // Reap finished associations.
        {
            std::lock_guard<std::mutex> lock(workersMutex_);
            for (auto it = workers_.begin(); it != workers_.end();) {
                if (it->done) {
                    it->thread.join();
                    it = workers_.erase(it);
                } else {
                    ++it;
                }
            }
        }
        T_ASC_Association* assoc = nullptr;
        OFCondition c = ASC_receiveAssociation(net_, &assoc, o_.maxPdu, nullptr, nullptr, OFFalse, DUL_NOBLOCK, 1);
        if (c == DUL_NOASSOCIATIONREQUEST) {
            if (assoc) ASC_destroyAssociation(&assoc);
            continue;
        }
        if (c.bad()) {
            if (!stopping_) log("warn", std::string("dicom: bad association request: ") + c.text());
            if (assoc) {
                ASC_dropAssociation(assoc);
                ASC_destroyAssociation(&assoc);
            }
            continue;
        }
        int fd = detail::associationSocket(assoc);
        if (fd >= 0) {
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        std::lock_guard<std::mutex> lock(workersMutex_);
        if (static_cast<int>(workers_.size()) >= o_.maxAssociations || stopping_) {
            log("warn", "dicom: association refused: " + std::to_string(o_.maxAssociations) + " already open");
            T_ASC_RejectParameters rej = {ASC_RESULT_REJECTEDTRANSIENT, ASC_SOURCE_SERVICEPROVIDER_PRESENTATION_RELATED,
                                          ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED};
            ASC_rejectAssociation(assoc, &rej);
            ASC_dropAssociation(assoc);
            ASC_destroyAssociation(&assoc);
            continue;
        }
        workers_.emplace_back();
        Worker* w = &workers_.back();
        w->fd = fd;
        w->thread = std::thread([this, w, assoc] {
            {
                AssociationScp scp(*this);
                scp.setSharedConfig(config_);
                scp.run(assoc);  // negotiates, serves, releases and destroys the association
            }
            std::lock_guard<std::mutex> lock(workersMutex_);
            w->fd = -1;
            w->done = true;
        });
    }
}

void StoreServer::Impl::stop() {
    if (!acceptThread_.joinable()) return;
    stopping_ = true;
    acceptThread_.join();
    {
        std::lock_guard<std::mutex> lock(workersMutex_);
        for (auto& w : workers_)
            if (!w.done && w.fd >= 0) ::shutdown(w.fd, SHUT_RDWR);
    }
    for (;;) {
        std::thread t;
        {
            std::lock_guard<std::mutex> lock(workersMutex_);
            auto it = std::find_if(workers_.begin(), workers_.end(), [](const Worker& w) { return w.thread.joinable(); });
            if (it == workers_.end()) break;
            t = std::move(it->thread);
        }
        t.join();
    }
    workers_.clear();
    ASC_dropNetwork(&net_);
    net_ = nullptr;
}

StoreServer::StoreServer(StoreServerOptions options, Handler handler, Logger logger)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler), std::move(logger))) {}

StoreServer::~StoreServer() { stop(); }

void StoreServer::start() { impl_->start(); }
void StoreServer::stop() { impl_->stop(); }

StoreServer::Counters StoreServer::counters() const {
    std::lock_guard<std::mutex> lock(impl_->countersMutex_);
    return impl_->counters_;
}

}  // namespace junction::dicom

namespace junction::dicom::detail {

namespace {
struct SocketAccess : DcmTransportConnection {
    static int of(DcmTransportConnection* t) {
        auto get = &SocketAccess::getSocket;  // protected in DCMTK; reachable through a derived class
        return static_cast<int>((t->*get)());
    }
};
}  // namespace

int associationSocket(T_ASC_Association* assoc) {
    if (!assoc || !assoc->DULassociation) return -1;
    DcmTransportConnection* t = DUL_getTransportConnection(assoc->DULassociation);
    return t ? SocketAccess::of(t) : -1;
}

}  // namespace junction::dicom::detail
