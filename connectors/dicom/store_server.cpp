// The association half of the storage server (see store_server.h): C-STORE /
// C-ECHO SCP. One accept thread; one thread per association running a
// DcmThreadSCP that writes every instance to a file as received and answers
// once it is safely on disk (or, with respondAfterHandler, once the handler
// has said where it stands). Filing the instances is store_filing.cpp.
#include "connectors/dicom/store_server_impl.h"

#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>
#include <dcmtk/dcmnet/dul.h>
#include <dcmtk/oflog/oflog.h>

#include <cstdlib>
#include <set>
#include <stdexcept>
#include <vector>

#include "engine/dicom/dicom_text.h"

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

std::string statusHex(Uint16 v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%04X", v);
    return buf;
}

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
            Part10Walk w = detail::walkFile(tmp);
            if (w.walkable) {  // deflated data is parsed and handled before the response instead
                if (!w.ok) return reject(STATUS_STORE_Error_CannotUnderstand, "malformed dataset: " + w.error);
                std::string why = detail::uidProblem(w.studyUid, w.seriesUid, w.sopInstanceUid);
                if (!why.empty()) return reject(STATUS_STORE_Error_CannotUnderstand, why);
                if (w.sopInstanceUid != req.AffectedSOPInstanceUID) return otherInstance(w.sopInstanceUid);
                if (server_.backlogFull())
                    return reject(STATUS_STORE_Refused_OutOfResources,
                                  std::to_string(o.maxBacklog) + " received instances still wait to become messages");
                if (o.syncFiles && !detail::fsyncPath(tmp, false))
                    return reject(STATUS_STORE_Refused_OutOfResources, "cannot flush " + tmp + " to disk");
                std::string ready = server_.readyName(callingAe(), trimSpaces(getCalledAETitle().c_str()), peer());
                if (!renameInto(tmp, ready, ec))
                    return reject(STATUS_STORE_Refused_OutOfResources, "cannot rename to " + ready + ": " + ec.message());
                if (o.syncFiles) detail::fsyncPath(server_.readyDir(), true);
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
        if (o.syncFiles && !detail::fsyncPath(tmp, false))
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

void StoreServer::Impl::start() {
    disableNagleForDcmtk();
    prepareFiling();

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
    ao.event = o_.event;
    auto acceptor = std::make_unique<detail::Acceptor>(
        ao,
        [this](T_ASC_Association* assoc) {
            AssociationScp scp(*this);
            scp.setSharedConfig(config_);
            scp.run(assoc);  // negotiates, serves, releases and destroys the association
        },
        policy_.log, policy_.onRefused);
    stopping_ = false;
    startBackground();
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
