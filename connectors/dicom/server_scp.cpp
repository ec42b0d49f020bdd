// What both DICOM servers check of an association request and log of its end
// (server_scp.h): the called and calling AE titles, refusals, DIMSE errors.
#include "connectors/dicom/server_scp.h"

#include <algorithm>

#include "engine/dicom/dicom_text.h"

namespace junction::dicom::detail {

namespace {

// DCMTK stacks the conditions behind an error as lines of one text.
std::string oneLine(const OFCondition& c) {
    std::string text = c.text();
    for (std::size_t at = 0; (at = text.find('\n', at)) != std::string::npos;) text.replace(at, 1, "; ");
    return text;
}

}  // namespace

std::string ServerScp::peer() const { return getPeerIP().c_str(); }

std::string ServerScp::callingAe() const { return trimSpaces(getPeerAETitle().c_str()); }

OFBool ServerScp::checkCalledAETitleAccepted(const OFString& calledAE) {
    std::string called = trimSpaces(calledAE.c_str());
    if (called == trimSpaces(policy_.aeTitle)) return OFTrue;
    say("warn", from() + " rejected: called AE title '" + called + "' is not " + trimSpaces(policy_.aeTitle));
    return OFFalse;
}

OFBool ServerScp::checkCallingAETitleAccepted(const OFString& callingAE) {
    const auto& allowed = policy_.allowedAes;
    std::string ae = trimSpaces(callingAE.c_str());
    if (allowed.empty() ||
        std::any_of(allowed.begin(), allowed.end(), [&](const std::string& a) { return trimSpaces(a) == ae; }))
        return OFTrue;
    say("warn", from() + " rejected: calling AE title '" + ae + "' is not in allowed_aes");
    return OFFalse;
}

void ServerScp::refuseAssociation(const DcmRefuseReasonType reason) {
    if (policy_.onRefused) policy_.onRefused();
    if (reason == DCMSCP_NO_PRESENTATION_CONTEXTS)
        say("warn", from() + " rejected: none of the proposed SOP classes is served");
    DcmThreadSCP::refuseAssociation(reason);
}

void ServerScp::notifyAbortRequest() { say("warn", from() + " aborted by the peer"); }

void ServerScp::notifyDIMSEError(const OFCondition& cond) {
    if (policy_.stopping && *policy_.stopping) return;
    std::string text = oneLine(cond);
    if (text.find("Illegal PDU Length") != std::string::npos)
        say("warn", from() + " aborted: the peer sent a PDU larger than the maximum negotiated (" + text + ")");
    else
        say("warn", from() + " aborted: " + text);
}

}  // namespace junction::dicom::detail
