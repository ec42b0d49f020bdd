// Internal to connectors/dicom: what both DICOM servers (C-STORE and
// MWL/MPPS) check of an association request and log of its end, as the
// DcmThreadSCP each server's association handler derives from. Never include
// this outside connectors/dicom.
#pragma once

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/scpthrd.h>

#include <atomic>
#include <functional>
#include <string>
#include <vector>

namespace junction::dicom::detail {

struct ScpPolicy {
    std::string aeTitle;                  // the called AE title peers must use
    std::vector<std::string> allowedAes;  // calling AE titles; empty = any
    std::function<void(const std::string& level, const std::string& text)> log;
    std::function<void()> onRefused;      // an association request was rejected
    const std::atomic<bool>* stopping = nullptr;  // set: connections cut by the stop are not logged
};

class ServerScp : public DcmThreadSCP {
public:
    explicit ServerScp(const ScpPolicy& policy) : policy_(policy) {}

protected:
    // A called AE title other than ours, or a calling AE title not allowed, is
    // rejected ("not recognized") at association time, with one log line.
    OFBool checkCalledAETitleAccepted(const OFString& calledAE) override;
    OFBool checkCallingAETitleAccepted(const OFString& callingAE) override;
    void refuseAssociation(const DcmRefuseReasonType reason) override;
    void notifyAbortRequest() override;
    // The association ends on an error (a PDU over the negotiated size, a
    // timeout, a broken connection): logged unless the server is stopping.
    void notifyDIMSEError(const OFCondition& cond) override;

    std::string peer() const;       // the peer's IP address
    std::string callingAe() const;  // the peer's AE title, without padding
    void say(const std::string& level, const std::string& text) const {
        if (policy_.log) policy_.log(level, text);
    }

private:
    std::string from() const { return "association from " + callingAe() + " (" + peer() + ")"; }

    const ScpPolicy& policy_;
};

}  // namespace junction::dicom::detail
