// The `dicom_mwl` source's server (mwl_server.h) on DCMTK: C-ECHO, worklist
// C-FIND answered from the WorklistStore, and MPPS N-CREATE / N-SET passed to
// the channel and kept for later N-SETs.
#include "connectors/dicom/mwl_server.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/dul.h>
#include <dcmtk/dcmnet/scpthrd.h>
#include <dcmtk/oflog/oflog.h>

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>

#include "connectors/dicom/acceptor.h"
#include "engine/dicom/dataset_json.h"
#include "engine/dicom/dicom_text.h"
#include "connectors/dicom/mwl_matching.h"
#include "connectors/dicom/server_scp.h"

namespace junction::dicom {

namespace {

std::string hex4(unsigned v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%04X", v);
    return buf;
}

std::optional<store::WorklistStatus> mppsStatus(const std::string& s) {
    if (s == "IN PROGRESS") return store::WorklistStatus::InProgress;
    if (s == "COMPLETED") return store::WorklistStatus::Completed;
    if (s == "DISCONTINUED") return store::WorklistStatus::Discontinued;
    return std::nullopt;
}

// Worklist keys an MPPS refers to: AccessionNumber, or else StudyInstanceUID,
// of every item of ScheduledStepAttributesSequence.
std::vector<std::string> worklistKeys(DcmItem& mpps) {
    std::vector<std::string> keys;
    DcmSequenceOfItems* seq = nullptr;
    if (mpps.findAndGetSequence(DCM_ScheduledStepAttributesSequence, seq).bad() || !seq) return keys;
    for (unsigned long i = 0; i < seq->card(); ++i) {
        DcmItem* it = seq->getItem(i);
        OFString acc, study;
        it->findAndGetOFString(DCM_AccessionNumber, acc);
        it->findAndGetOFString(DCM_StudyInstanceUID, study);
        std::string key = trimSpaces(acc.c_str()).empty() ? trimSpaces(study.c_str()) : trimSpaces(acc.c_str());
        if (!key.empty() && std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    }
    return keys;
}

}  // namespace

std::string checkAeTitle(const std::string& ae) {
    if (ae.empty() || ae.size() > 16) return "an AE title has 1 to 16 characters";
    if (trimSpaces(ae).empty()) return "an AE title cannot be only spaces";
    for (unsigned char c : ae)
        if (c < 0x20 || c >= 0x7F || c == '\\') return "an AE title has no backslash, control or non-ASCII characters";
    return {};
}

struct MwlServer::State {
    MwlServerOptions opt;
    store::WorklistStore& worklist;
    MppsHandler onMpps;
    Log log;

    mutable std::mutex m;  // counters and MPPS instances
    Counters counters;
    std::mutex mppsUpdate;  // one MPPS event at a time: status updates stay in order

    DcmSharedSCPConfig shared;
    detail::ScpPolicy policy;
    std::atomic<bool> stopping{false};
    std::unique_ptr<detail::Acceptor> acceptor;

    State(MwlServerOptions o, store::WorklistStore& w, MppsHandler h, Log l)
        : opt(std::move(o)), worklist(w), onMpps(std::move(h)), log(std::move(l)) {}

    void say(const std::string& level, const std::string& text) {
        if (log) log(level, text);
    }
    template <class F>
    void count(F f) {
        std::lock_guard<std::mutex> lock(m);
        f(counters);
    }
};

namespace {

using Counters = MwlServer::Counters;

class MwlAssociation : public detail::ServerScp {
public:
    explicit MwlAssociation(MwlServer::State& s) : ServerScp(s.policy), s_(s) {}

protected:
    void notifyAssociationAcknowledge() override {
        s_.count([](Counters& c) { ++c.associations; });
    }

    OFCondition handleIncomingCommand(T_DIMSE_Message* msg, const DcmPresentationContextInfo& info) override {
        switch (msg->CommandField) {
        case DIMSE_C_ECHO_RQ:
            s_.count([](Counters& c) { ++c.echoes; });
            return DcmThreadSCP::handleIncomingCommand(msg, info);
        case DIMSE_C_FIND_RQ: return handleFind(msg->msg.CFindRQ, info);
        case DIMSE_N_CREATE_RQ: return handleCreate(msg->msg.NCreateRQ, info);
        case DIMSE_N_SET_RQ: return handleSet(msg->msg.NSetRQ, info);
        default:
            s_.say("warn", "unsupported DIMSE command " + hex4(msg->CommandField) + " from " + callingAe() + " (" +
                               peer() + ")");
            return DcmThreadSCP::handleIncomingCommand(msg, info);  // fails: the association is aborted
        }
    }

private:
    // ------------------------------------------------------------ C-FIND
    OFCondition handleFind(T_DIMSE_C_FindRQ& rq, const DcmPresentationContextInfo& info) {
        s_.count([](Counters& c) { ++c.finds; });
        DcmDataset* raw = nullptr;
        OFCondition cond = receiveFINDRequest(rq, info.presentationContextID, raw);
        std::unique_ptr<DcmDataset> query(raw);
        if (cond.bad()) return cond;
        const OFString sopClass = rq.AffectedSOPClassUID;
        if (sopClass != UID_FINDModalityWorklistInformationModel || !query) {
            s_.say("warn", "C-FIND for " + std::string(sopClass.c_str()) + " from " + callingAe() + " refused");
            return sendFINDResponse(info.presentationContextID, rq.MessageID, sopClass, nullptr,
                                    STATUS_FIND_Refused_SOPClassNotSupported);
        }
        OFString queryCharset;
        query->findAndGetOFStringArray(DCM_SpecificCharacterSet, queryCharset);
        std::string err;
        if (!toUtf8(*query, &err)) {
            s_.say("warn", "C-FIND from " + callingAe() + ": " + err);
            return failFind(rq, info, err);
        }
        s_.say("debug", "C-FIND from " + callingAe() + ": " + datasetToJson(*query));
        store::WorklistFilter filter = worklistFilterFor(*query);
        filter.includeFinished = s_.opt.includeFinished;
        std::vector<store::WorklistItem> items;
        try {
            items = s_.worklist.find(filter);
        } catch (const std::exception& e) {
            s_.say("error", "worklist query failed: " + std::string(e.what()));
            return failFind(rq, info, "worklist query failed");
        }
        std::size_t matches = 0;
        for (auto& item : items) {
            std::unique_ptr<DcmDataset> ds;
            try {
                ds = datasetFromJson(item.dataset);
            } catch (const std::exception& e) {
                s_.say("warn", "worklist item " + std::to_string(item.id) + " skipped: " + e.what());
                continue;
            }
            auto resp = matchWorklistItem(*query, *ds);
            if (!resp) continue;
            std::string cs = trimSpaces(queryCharset.c_str());
            if (!cs.empty() && cs != "ISO_IR 192" && resp->tagExists(DCM_SpecificCharacterSet)) {
                // Answer in the modality's own character set when its repertoire holds the text.
                DcmDataset copy(*resp);
                if (copy.convertCharacterSet(cs.c_str(), 0).good()) *resp = copy;
            }
            if (checkForCANCEL(info.presentationContextID, rq.MessageID).good()) {
                s_.say("info", "C-FIND from " + callingAe() + " cancelled after " + std::to_string(matches) + " matches");
                return sendFINDResponse(info.presentationContextID, rq.MessageID, sopClass, nullptr,
                                        STATUS_FIND_Cancel_MatchingTerminatedDueToCancelRequest);
            }
            cond = sendFINDResponse(info.presentationContextID, rq.MessageID, sopClass, resp.get(),
                                    STATUS_FIND_Pending_MatchesAreContinuing);
            if (cond.bad()) return cond;
            ++matches;
        }
        s_.count([&](Counters& c) { c.findMatches += matches; });
        return sendFINDResponse(info.presentationContextID, rq.MessageID, sopClass, nullptr, STATUS_Success);
    }

    OFCondition failFind(T_DIMSE_C_FindRQ& rq, const DcmPresentationContextInfo& info, const std::string& why) {
        s_.count([](Counters& c) { ++c.failures; });
        DcmDataset detail;
        detail.putAndInsertString(DCM_ErrorComment, why.substr(0, 64).c_str());
        return sendFINDResponse(info.presentationContextID, rq.MessageID, rq.AffectedSOPClassUID, nullptr,
                                STATUS_FIND_Failed_UnableToProcess, &detail);
    }

    // ------------------------------------------------------------ MPPS
    OFCondition respondN(const DcmPresentationContextInfo& info, bool create, DIC_US messageId,
                         const std::string& sopInstance, Uint16 status, const std::string& comment = {}) {
        T_DIMSE_Message rsp;
        std::memset(&rsp, 0, sizeof rsp);
        if (status != STATUS_N_Success) {
            s_.count([](Counters& c) { ++c.failures; });
            s_.say("warn", std::string(create ? "N-CREATE" : "N-SET") + " " + sopInstance + " from " + callingAe() +
                               " answered " + hex4(status) + (comment.empty() ? "" : ": " + comment));
        }
        // N-CREATE-RSP and N-SET-RSP carry the same fields under their own option flags.
        auto fill = [&](auto& r, unsigned classFlag, unsigned instanceFlag) {
            r.MessageIDBeingRespondedTo = messageId;
            OFStandard::strlcpy(r.AffectedSOPClassUID, UID_ModalityPerformedProcedureStepSOPClass, sizeof r.AffectedSOPClassUID);
            OFStandard::strlcpy(r.AffectedSOPInstanceUID, sopInstance.c_str(), sizeof r.AffectedSOPInstanceUID);
            r.DimseStatus = status;
            r.DataSetType = DIMSE_DATASET_NULL;
            r.opts = classFlag | (sopInstance.empty() ? 0 : instanceFlag);
        };
        if (create) {
            rsp.CommandField = DIMSE_N_CREATE_RSP;
            fill(rsp.msg.NCreateRSP, O_NCREATE_AFFECTEDSOPCLASSUID, O_NCREATE_AFFECTEDSOPINSTANCEUID);
        } else {
            rsp.CommandField = DIMSE_N_SET_RSP;
            fill(rsp.msg.NSetRSP, O_NSET_AFFECTEDSOPCLASSUID, O_NSET_AFFECTEDSOPINSTANCEUID);
        }
        std::unique_ptr<DcmDataset> detail;
        if (!comment.empty()) {
            detail = std::make_unique<DcmDataset>();
            detail->putAndInsertString(DCM_ErrorComment, comment.substr(0, 64).c_str());
        }
        return sendDIMSEMessage(info.presentationContextID, &rsp, nullptr, detail.get());
    }

    std::unique_ptr<DcmDataset> receiveData(T_DIMSE_DataSetType type, const DcmPresentationContextInfo& info,
                                            OFCondition& cond) {
        if (type == DIMSE_DATASET_NULL) return nullptr;
        T_ASC_PresentationContextID pid = info.presentationContextID;
        DcmDataset* raw = nullptr;
        cond = receiveDIMSEDataset(&pid, &raw);
        return std::unique_ptr<DcmDataset>(raw);
    }

    // Applies an MPPS state: worklist status, then the channel. Returns the
    // failure status to answer, or STATUS_N_Success.
    Uint16 publish(const char* kind, const std::string& uid, DcmDataset& instance, std::string& comment) {
        OFString statusText;
        instance.findAndGetOFString(DCM_PerformedProcedureStepStatus, statusText);
        std::string status = trimSpaces(statusText.c_str());
        auto mapped = mppsStatus(status);
        if (!mapped) {
            comment = "PerformedProcedureStepStatus '" + status + "' is not IN PROGRESS, COMPLETED or DISCONTINUED";
            return STATUS_N_InvalidAttributeValue;
        }
        auto keys = worklistKeys(instance);
        std::size_t changed = 0;
        try {
            for (const auto& k : keys) changed += s_.worklist.setStatus(k, *mapped);
        } catch (const std::exception& e) {
            s_.say("error", std::string(kind) + " " + uid + ": worklist update failed: " + e.what());
            comment = "worklist update failed";
            return STATUS_N_ProcessingFailure;
        }
        if (keys.empty())
            s_.say("warn", std::string(kind) + " " + uid + " names no AccessionNumber or StudyInstanceUID; no worklist item updated");
        else if (changed == 0)
            s_.say("warn", std::string(kind) + " " + uid + ": no worklist item for " + keys.front());

        MppsEvent ev;
        ev.kind = kind;
        ev.sopInstanceUid = uid;
        ev.status = status;
        ev.callingAe = callingAe();
        ev.peer = peer();
        Poco::JSON::Parser parser;
        auto obj = parser.parse(datasetToJson(instance)).extract<Poco::JSON::Object::Ptr>();
        obj->set("kind", ev.kind);
        obj->set("sopInstanceUid", uid);
        obj->set("callingAe", ev.callingAe);
        std::ostringstream os;
        Poco::JSON::Stringifier::stringify(obj, os, 0, -1);
        ev.json = os.str();
        std::string err = s_.onMpps ? s_.onMpps(ev) : std::string();
        if (!err.empty()) {
            comment = "not stored: " + err;
            return STATUS_N_ProcessingFailure;
        }
        return STATUS_N_Success;
    }

    OFCondition handleCreate(T_DIMSE_N_CreateRQ& rq, const DcmPresentationContextInfo& info) {
        OFCondition cond = EC_Normal;
        auto data = receiveData(rq.DataSetType, info, cond);
        if (cond.bad()) return cond;
        std::string uid = (rq.opts & O_NCREATE_AFFECTEDSOPINSTANCEUID) ? trimSpaces(rq.AffectedSOPInstanceUID) : "";
        if (uid.empty()) {
            char buf[100];
            dcmGenerateUniqueIdentifier(buf, SITE_INSTANCE_UID_ROOT);
            uid = buf;
        }
        if (OFString(rq.AffectedSOPClassUID) != UID_ModalityPerformedProcedureStepSOPClass)
            return respondN(info, true, rq.MessageID, uid, STATUS_N_NoSuchSOPClass, "not an MPPS");
        if (!data) return respondN(info, true, rq.MessageID, uid, STATUS_N_MissingAttribute, "no attribute list");
        std::lock_guard<std::mutex> serial(s_.mppsUpdate);
        bool exists = false;
        try {
            exists = s_.worklist.getMpps(uid).has_value();
        } catch (const std::exception& e) {
            return respondN(info, true, rq.MessageID, uid, STATUS_N_ProcessingFailure, std::string("store: ") + e.what());
        }
        if (exists) return respondN(info, true, rq.MessageID, uid, STATUS_N_DuplicateSOPInstance, "instance exists");
        OFString st;
        data->findAndGetOFString(DCM_PerformedProcedureStepStatus, st);
        if (trimSpaces(st.c_str()) != "IN PROGRESS")
            return respondN(info, true, rq.MessageID, uid, STATUS_N_InvalidAttributeValue,
                            "N-CREATE needs PerformedProcedureStepStatus IN PROGRESS");
        toUtf8(*data);
        data->putAndInsertString(DCM_SOPClassUID, UID_ModalityPerformedProcedureStepSOPClass);
        data->putAndInsertString(DCM_SOPInstanceUID, uid.c_str());
        std::string comment;
        Uint16 status = publish("N-CREATE", uid, *data, comment);
        if (status != STATUS_N_Success) return respondN(info, true, rq.MessageID, uid, status, comment);
        if (!keep(uid, *data, comment)) return respondN(info, true, rq.MessageID, uid, STATUS_N_ProcessingFailure, comment);
        {
            std::lock_guard<std::mutex> lock(s_.m);
            ++s_.counters.mppsCreates;
        }
        s_.say("info", "MPPS " + uid + " IN PROGRESS from " + callingAe());
        return respondN(info, true, rq.MessageID, uid, STATUS_N_Success);
    }

    OFCondition handleSet(T_DIMSE_N_SetRQ& rq, const DcmPresentationContextInfo& info) {
        OFCondition cond = EC_Normal;
        auto data = receiveData(rq.DataSetType, info, cond);
        if (cond.bad()) return cond;
        std::string uid = trimSpaces(rq.RequestedSOPInstanceUID);
        if (OFString(rq.RequestedSOPClassUID) != UID_ModalityPerformedProcedureStepSOPClass)
            return respondN(info, false, rq.MessageID, uid, STATUS_N_NoSuchSOPClass, "not an MPPS");
        if (!data) return respondN(info, false, rq.MessageID, uid, STATUS_N_MissingAttribute, "no modification list");
        std::lock_guard<std::mutex> serial(s_.mppsUpdate);
        std::unique_ptr<DcmDataset> updated;
        try {
            if (auto kept = s_.worklist.getMpps(uid)) updated = datasetFromJson(*kept);
        } catch (const std::exception& e) {
            return respondN(info, false, rq.MessageID, uid, STATUS_N_ProcessingFailure,
                            std::string("stored MPPS: ") + e.what());
        }
        if (!updated) return respondN(info, false, rq.MessageID, uid, STATUS_N_NoSuchSOPInstance, "unknown MPPS");
        OFString old;
        updated->findAndGetOFString(DCM_PerformedProcedureStepStatus, old);
        if (trimSpaces(old.c_str()) != "IN PROGRESS")
            return respondN(info, false, rq.MessageID, uid, STATUS_N_ProcessingFailure,
                            "MPPS is " + trimSpaces(old.c_str()) + " and may no longer be updated");
        toUtf8(*data);
        for (unsigned long i = 0; i < data->card(); ++i) {
            DcmElement* e = data->getElement(i);
            if (e->getTag() == DCM_SpecificCharacterSet || e->getTag().getElement() == 0) continue;
            updated->insert(OFstatic_cast(DcmElement*, e->clone()), OFTrue);
        }
        std::string comment;
        Uint16 status = publish("N-SET", uid, *updated, comment);
        if (status != STATUS_N_Success) return respondN(info, false, rq.MessageID, uid, status, comment);
        OFString now;
        updated->findAndGetOFString(DCM_PerformedProcedureStepStatus, now);
        if (!keep(uid, *updated, comment)) return respondN(info, false, rq.MessageID, uid, STATUS_N_ProcessingFailure, comment);
        {
            std::lock_guard<std::mutex> lock(s_.m);
            ++s_.counters.mppsSets;
        }
        s_.say("info", "MPPS " + uid + " " + trimSpaces(now.c_str()) + " from " + callingAe());
        return respondN(info, false, rq.MessageID, uid, STATUS_N_Success);
    }

    // The MPPS instance goes to the store (an N-SET after a restart finds it).
    bool keep(const std::string& uid, DcmDataset& instance, std::string& comment) {
        try {
            s_.worklist.putMpps(uid, datasetToJson(instance));
            return true;
        } catch (const std::exception& e) {
            s_.say("error", "MPPS " + uid + ": cannot be kept: " + e.what());
            comment = "MPPS not stored";
            return false;
        }
    }

    MwlServer::State& s_;
};

}  // namespace

MwlServer::MwlServer(MwlServerOptions options, store::WorklistStore& worklist, MppsHandler onMpps, Log log)
    : state_(std::make_shared<State>(std::move(options), worklist, std::move(onMpps), std::move(log))) {}

MwlServer::~MwlServer() { stop(); }

void MwlServer::start() {
    State& s = *state_;
    if (s.acceptor) return;
    if (auto why = checkAeTitle(s.opt.aeTitle); !why.empty()) throw std::runtime_error("ae_title: " + why);
    dcmDisableGethostbyaddr.set(OFTrue);  // no reverse DNS per association
    // DCMTK reports every association at INFO on the console; the channel log
    // gets our own account of them, so only its warnings and errors remain.
    OFLog::getLogger("dcmtk.dcmnet").setLogLevel(OFLogger::WARN_LOG_LEVEL);

    DcmSCPConfig cfg;
    cfg.setAETitle(s.opt.aeTitle.c_str());
    cfg.setPort(static_cast<Uint16>(s.opt.port));
    cfg.setMaxReceivePDULength(s.opt.maxPdu);
    cfg.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
    cfg.setDIMSETimeout(static_cast<Uint32>(s.opt.dimseTimeoutSeconds));
    cfg.setACSETimeout(5);
    cfg.setHostLookupEnabled(OFFalse);
    OFList<OFString> xfers;
    xfers.push_back(UID_LittleEndianExplicitTransferSyntax);
    xfers.push_back(UID_BigEndianExplicitTransferSyntax);
    xfers.push_back(UID_LittleEndianImplicitTransferSyntax);
    for (const char* sop : {UID_VerificationSOPClass, UID_FINDModalityWorklistInformationModel,
                            UID_ModalityPerformedProcedureStepSOPClass}) {
        OFCondition c = cfg.addPresentationContext(sop, xfers);
        if (c.bad()) throw std::runtime_error(std::string("DICOM presentation context: ") + c.text());
    }
    s.shared = DcmSharedSCPConfig(cfg);
    State* st = &s;
    s.policy.aeTitle = s.opt.aeTitle;
    s.policy.allowedAes = s.opt.allowedAes;
    s.policy.log = [st](const std::string& level, const std::string& text) { st->say(level, text); };
    s.policy.onRefused = [st] { st->count([](Counters& c) { ++c.rejected; }); };
    s.policy.stopping = &s.stopping;
    s.stopping = false;

    detail::AcceptorOptions ao;
    ao.host = s.opt.host;
    ao.port = s.opt.port;
    ao.maxPdu = static_cast<long>(s.opt.maxPdu);
    ao.event = s.opt.event;
    ao.maxAssociations = s.opt.maxAssociations;
    ao.requestTimeoutSeconds = 5;
    auto acceptor = std::make_unique<detail::Acceptor>(
        ao,
        [st](T_ASC_Association* assoc) {
            MwlAssociation scp(*st);
            scp.setSharedConfig(st->shared);
            OFCondition c = scp.run(assoc);
            if (c.bad()) st->say("warn", std::string("association ended: ") + c.text());
        },
        s.policy.log, s.policy.onRefused);
    acceptor->start();
    s.acceptor = std::move(acceptor);
}

void MwlServer::stop() {
    State& s = *state_;
    s.stopping = true;
    if (s.acceptor) s.acceptor->stop();
    s.acceptor.reset();
}

MwlServer::Counters MwlServer::counters() const {
    std::lock_guard<std::mutex> lock(state_->m);
    return state_->counters;
}

std::string MwlServer::mppsInstance(const std::string& uid) const {
    auto kept = state_->worklist.getMpps(uid);
    return kept ? *kept : std::string();
}

}  // namespace junction::dicom
