// C-STORE / C-ECHO SCU (see store_client.h), on DCMTK's ASC_/DIMSE_ API so
// that the association can be kept, inspected and aborted from another thread.
#include "connectors/dicom/store_client.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dcmtrans.h>
#include <dcmtk/dcmnet/dimse.h>
#include <dcmtk/dcmnet/dul.h>

#include <netinet/in.h>
#include <poll.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "connectors/dicom/store_dcmtk.h"
#include "connectors/dicom/store_server.h"

namespace junction::dicom {

namespace {

using Kind = StoreSendResult::Kind;

void registerDecoders() {
    static std::once_flag once;
    std::call_once(once, [] {
        DJDecoderRegistration::registerCodecs();
        DJLSDecoderRegistration::registerCodecs();
        DcmRLEDecoderRegistration::registerCodecs();
    });
}

StoreSendResult result(Kind k, std::string detail, Uint16 status = 0) {
    StoreSendResult r;
    r.kind = k;
    r.detail = std::move(detail);
    r.status = status;
    return r;
}

std::string hex(Uint16 v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%04X", v);
    return buf;
}

bool uncompressed(const std::string& ts) {
    return ts == UID_LittleEndianExplicitTransferSyntax || ts == UID_LittleEndianImplicitTransferSyntax ||
           ts == UID_BigEndianExplicitTransferSyntax;
}

}  // namespace

class StoreClient::Impl {
public:
    explicit Impl(StoreClientOptions o) : o_(std::move(o)) {}
    ~Impl() {
        close();
        if (net_) ASC_dropNetwork(&net_);
    }

    StoreClientOptions o_;
    T_ASC_Network* net_ = nullptr;
    T_ASC_Association* assoc_ = nullptr;
    std::map<std::string, std::set<std::string>> wanted_;  // SOP class → transfer syntaxes to propose
    std::set<std::pair<std::string, std::string>> proposed_;  // in the open association
    std::mutex fdMutex_;
    int fd_ = -1;
    std::atomic<std::uint64_t> opened_{0};

    bool ensureNetwork(std::string& error) {
        if (net_) return true;
        OFCondition c = ASC_initializeNetwork(NET_REQUESTOR, 0, o_.timeoutSeconds, &net_);
        if (c.bad()) {
            error = std::string("cannot initialise the network: ") + c.text();
            return false;
        }
        return true;
    }

    // Opens an association proposing `contexts`; fills `assoc` or returns a Retry result.
    bool open(const std::map<std::string, std::set<std::string>>& contexts, T_ASC_Association*& assoc,
              StoreSendResult& failure) {
        std::string error;
        if (!ensureNetwork(error)) {
            failure = result(Kind::Retry, error);
            return false;
        }
        disableNagleForDcmtk();
        dcmConnectionTimeout.set(o_.connectTimeoutSeconds);
        T_ASC_Parameters* params = nullptr;
        ASC_createAssociationParameters(&params, static_cast<long>(o_.maxPdu));
        ASC_setAPTitles(params, o_.callingAE.c_str(), o_.calledAE.c_str(), nullptr);
        std::string peer = o_.host + ":" + std::to_string(o_.port);
        ASC_setPresentationAddresses(params, "localhost", peer.c_str());
        const char* fallback[] = {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax};
        T_ASC_PresentationContextID id = 1;
        for (const auto& [sop, xfers] : contexts) {
            for (const auto& ts : xfers) {
                if (uncompressed(ts) && ts != UID_BigEndianExplicitTransferSyntax) continue;
                const char* one[] = {ts.c_str()};
                ASC_addPresentationContext(params, id, sop.c_str(), one, 1);
                id = static_cast<T_ASC_PresentationContextID>(id + 2);
            }
            ASC_addPresentationContext(params, id, sop.c_str(), fallback, 2);
            id = static_cast<T_ASC_PresentationContextID>(id + 2);
        }
        OFCondition c = ASC_requestAssociation(net_, params, &assoc, nullptr, nullptr, DUL_BLOCK, o_.timeoutSeconds);
        if (c.bad()) {
            std::string why = c.text();
            if (c == DUL_ASSOCIATIONREJECTED) {
                T_ASC_RejectParameters rej;
                ASC_getRejectParameters(params, &rej);
                OFString text;
                ASC_printRejectParameters(text, &rej);
                why = "association rejected by " + peer + ": " + std::string(text.c_str());
            } else {
                why = "cannot open an association with " + o_.calledAE + "@" + peer + ": " + why;
            }
            if (assoc) {
                ASC_dropAssociation(assoc);
                ASC_destroyAssociation(&assoc);
            } else {
                ASC_destroyAssociationParameters(&params);
            }
            assoc = nullptr;
            failure = result(Kind::Retry, why);
            return false;
        }
        int fd = detail::associationSocket(assoc);
        if (fd >= 0) {
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        return true;
    }

    void setFd(T_ASC_Association* a) {
        std::lock_guard<std::mutex> lock(fdMutex_);
        fd_ = -1;
        if (a) fd_ = detail::associationSocket(a);
    }

    // An idle association has nothing to read unless the peer released,
    // aborted or closed it.
    bool peerSpoke() {
        int fd;
        {
            std::lock_guard<std::mutex> lock(fdMutex_);
            fd = fd_;
        }
        if (fd < 0) return true;
        pollfd p{fd, POLLIN, 0};
        return ::poll(&p, 1, 0) != 0;
    }

    void drop() {
        if (!assoc_) return;
        setFd(nullptr);
        ASC_abortAssociation(assoc_);
        ASC_dropAssociation(assoc_);
        ASC_destroyAssociation(&assoc_);
        assoc_ = nullptr;
        proposed_.clear();
    }

    void close() {
        if (!assoc_) return;
        setFd(nullptr);
        if (ASC_releaseAssociation(assoc_).bad()) ASC_abortAssociation(assoc_);
        ASC_dropAssociation(assoc_);
        ASC_destroyAssociation(&assoc_);
        assoc_ = nullptr;
        proposed_.clear();
    }

    bool connect(StoreSendResult& failure) {
        if (!open(wanted_, assoc_, failure)) return false;
        ++opened_;
        proposed_.clear();
        for (const auto& [sop, xfers] : wanted_)
            for (const auto& ts : xfers) proposed_.insert({sop, ts});
        setFd(assoc_);
        return true;
    }

    StoreSendResult send(const std::string& path, const std::string& edits) {
        registerDecoders();
        DcmFileFormat file;
        OFCondition c = file.loadFile(path.c_str());
        if (c.bad()) return result(Kind::Error, "cannot read " + path + ": " + c.text());
        DcmDataset* ds = file.getDataset();
        if (!edits.empty()) {
            std::string error;
            if (detail::applyJson(*ds, edits, error) < 0) return result(Kind::Error, "cannot apply the message's tags: " + error);
        }
        OFString sop, instance;
        ds->findAndGetOFString(DCM_SOPClassUID, sop);
        ds->findAndGetOFString(DCM_SOPInstanceUID, instance);
        if (sop.empty() || instance.empty()) return result(Kind::Error, path + " has no SOP Class or SOP Instance UID");
        E_TransferSyntax fileXfer = ds->getOriginalXfer();
        if (fileXfer == EXS_Unknown) fileXfer = EXS_LittleEndianExplicit;
        std::string ts = DcmXfer(fileXfer).getXferID();
        std::string sopClass = sop.c_str();

        bool tried = false;
        for (int round = 0; round < 2; ++round) {
            // A peer that released or aborted an idle association has data waiting.
            if (assoc_ && peerSpoke()) drop();
            bool fresh = false;
            if (!assoc_ || !proposed_.count({sopClass, ts})) {
                if (assoc_) close();
                wanted_[sopClass].insert(ts);
                if (wanted_.size() > 40) {  // stay well below 128 presentation contexts
                    auto keep = wanted_[sopClass];
                    wanted_.clear();
                    wanted_[sopClass] = keep;
                }
                StoreSendResult failure;
                if (!connect(failure)) return failure;
                fresh = true;
            }
            T_ASC_PresentationContextID pc = ASC_findAcceptedPresentationContextID(assoc_, sopClass.c_str(), ts.c_str());
            if (pc == 0)
                return result(Kind::Error, o_.calledAE + " accepts no presentation context for SOP class " + sopClass);
            T_ASC_PresentationContext info;
            ASC_findAcceptedPresentationContext(assoc_->params, pc, &info);
            std::string sendTs = info.acceptedTransferSyntax;
            E_TransferSyntax sendXfer = DcmXfer(sendTs.c_str()).getXfer();
            if (sendXfer != fileXfer) {
                ds->chooseRepresentation(sendXfer, nullptr);
                if (!ds->canWriteXfer(sendXfer, fileXfer))
                    return result(Kind::Error, "cannot convert " + path + " from " + DcmXfer(fileXfer).getXferName() +
                                                   " to " + DcmXfer(sendXfer).getXferName() + ", which is all " +
                                                   o_.calledAE + " accepts for it");
            }
            T_DIMSE_C_StoreRQ req;
            std::memset(&req, 0, sizeof req);
            req.MessageID = assoc_->nextMsgID++;
            OFStandard::strlcpy(req.AffectedSOPClassUID, sopClass.c_str(), sizeof req.AffectedSOPClassUID);
            OFStandard::strlcpy(req.AffectedSOPInstanceUID, instance.c_str(), sizeof req.AffectedSOPInstanceUID);
            req.DataSetType = DIMSE_DATASET_PRESENT;
            req.Priority = DIMSE_PRIORITY_MEDIUM;
            T_DIMSE_C_StoreRSP rsp;
            std::memset(&rsp, 0, sizeof rsp);
            DcmDataset* statusDetail = nullptr;
            c = DIMSE_storeUser(assoc_, pc, &req, nullptr, ds, nullptr, nullptr, DIMSE_NONBLOCKING, o_.timeoutSeconds,
                                &rsp, &statusDetail);
            delete statusDetail;
            if (c.bad()) {
                std::string why = std::string("C-STORE to ") + o_.calledAE + "@" + o_.host + ":" +
                                  std::to_string(o_.port) + " failed: " + c.text();
                drop();
                // A kept association the peer dropped meanwhile: one fresh try.
                if (!fresh && !tried) {
                    tried = true;
                    continue;
                }
                return result(Kind::Retry, why);
            }
            Uint16 st = rsp.DimseStatus;
            StoreSendResult r;
            r.status = st;
            r.transferSyntaxUid = sendTs;
            if (st == STATUS_Success) {
                r.kind = Kind::Ok;
                r.detail = "stored " + std::string(instance.c_str()) + " on " + o_.calledAE;
            } else if ((st & 0xF000) == 0xB000) {
                r.kind = Kind::Ok;
                r.detail = "stored with warning " + hex(st);
            } else if ((st & 0xFF00) == 0xA700) {
                r.kind = Kind::Retry;
                r.detail = o_.calledAE + " is out of resources (" + hex(st) + ")";
            } else {
                r.kind = Kind::Error;
                r.detail = o_.calledAE + " refused " + std::string(instance.c_str()) + " with status " + hex(st);
            }
            return r;
        }
        return result(Kind::Retry, "C-STORE failed");
    }

    StoreSendResult echo() {
        T_ASC_Association* assoc = nullptr;
        StoreSendResult failure;
        std::map<std::string, std::set<std::string>> contexts{{UID_VerificationSOPClass, {}}};
        if (!open(contexts, assoc, failure)) return failure;
        DIC_US status = 0;
        DcmDataset* detail = nullptr;
        OFCondition c = DIMSE_echoUser(assoc, assoc->nextMsgID++, DIMSE_NONBLOCKING, o_.timeoutSeconds, &status, &detail);
        delete detail;
        StoreSendResult r;
        if (c.bad()) {
            r = result(Kind::Retry, std::string("C-ECHO failed: ") + c.text());
            ASC_abortAssociation(assoc);
        } else {
            r = result(status == STATUS_Success ? Kind::Ok : Kind::Error,
                       "C-ECHO answered " + hex(status) + " by " + o_.calledAE, status);
            if (ASC_releaseAssociation(assoc).bad()) ASC_abortAssociation(assoc);
        }
        ASC_dropAssociation(assoc);
        ASC_destroyAssociation(&assoc);
        return r;
    }
};

StoreClient::StoreClient(StoreClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
StoreClient::~StoreClient() = default;

StoreSendResult StoreClient::send(const std::string& path, const std::string& editsJson) {
    try {
        return impl_->send(path, editsJson);
    } catch (const std::exception& e) {
        impl_->drop();
        return result(Kind::Error, std::string("C-STORE: ") + e.what());
    }
}

StoreSendResult StoreClient::echo() { return impl_->echo(); }
void StoreClient::close() { impl_->close(); }
void StoreClient::abort() {
    std::lock_guard<std::mutex> lock(impl_->fdMutex_);
    if (impl_->fd_ >= 0) ::shutdown(impl_->fd_, SHUT_RDWR);
}
const StoreClientOptions& StoreClient::options() const { return impl_->o_; }
std::uint64_t StoreClient::associationsOpened() const { return impl_->opened_; }

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
