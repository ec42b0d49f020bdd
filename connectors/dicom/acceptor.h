// Internal to connectors/dicom: the listening side shared by the DICOM
// servers (C-STORE and MWL/MPPS). Never include this outside connectors/dicom.
//
// DCMTK's ASC_receiveAssociation accepts a TCP connection and then reads its
// A-ASSOCIATE-RQ on the calling thread, so one connection that sends nothing
// would hold up every other caller until the ACSE timeout. The acceptor
// listens and accepts itself, gives each connection its own thread, waits
// there until the whole A-ASSOCIATE-RQ PDU has arrived, and only then hands
// the socket to DCMTK, whose read then finds everything it needs. When too
// many connections are waiting, the one that has waited longest is closed to
// make room: idle connections never lock the port out.
#pragma once

#include <functional>
#include <memory>
#include <string>

struct T_ASC_Association;

namespace junction::dicom::detail {

struct AcceptorOptions {
    std::string host = "0.0.0.0";  // IPv4 address to listen on (checkListenHost)
    int port = 0;
    long maxPdu = 16384;        // largest PDU we receive
    int maxAssociations = 32;   // concurrent associations; more are rejected (transient)
    int requestTimeoutSeconds = 30;  // a connection must send its A-ASSOCIATE-RQ within this
    // An association opened, closed or refused (SourceContext::event's types); may be empty.
    std::function<void(const std::string& type, const std::string& text)> event{};
};

class Acceptor {
public:
    // Serves one received (not yet acknowledged) association on its own
    // thread; it must drop and destroy it (DcmSCP::run does).
    using Serve = std::function<void(T_ASC_Association*)>;
    using Log = std::function<void(const std::string& level, const std::string& text)>;

    // `onRejected` is called for each association refused for the limit.
    Acceptor(AcceptorOptions options, Serve serve, Log log, std::function<void()> onRejected = {});
    ~Acceptor();
    Acceptor(const Acceptor&) = delete;
    Acceptor& operator=(const Acceptor&) = delete;

    // Opens the port and accepts on a background thread; throws
    // std::runtime_error ("cannot listen on HOST:PORT: ...").
    void start();
    // Stops accepting, shuts down every open connection and joins every thread.
    void stop();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// Why a DICOM server cannot listen on `host`, or "" when it is an IPv4
// address (0.0.0.0: every interface).
std::string checkListenHost(const std::string& host);

}  // namespace junction::dicom::detail
