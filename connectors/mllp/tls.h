// TLS for the listener's loops: OpenSSL over memory buffers. The loop reads and
// writes the socket as for plain MLLP (recv or io_uring, its send batching);
// a session turns the bytes received into plaintext for the frame decoder and
// replies into bytes to send. No thread, no blocking call, no OpenSSL type in
// this header.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/mllp/framing.h"
#include "connectors/mllp/listener.h"

namespace junction::mllp {

// One listener's TLS settings made ready: its certificate, key and CAs read.
class TlsServer {
public:
    // Throws std::runtime_error saying what could not be read or used.
    explicit TlsServer(const ListenerTls& options);
    ~TlsServer();
    TlsServer(const TlsServer&) = delete;
    TlsServer& operator=(const TlsServer&) = delete;

private:
    friend class TlsSession;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// The TLS side of one accepted connection.
class TlsSession {
public:
    explicit TlsSession(const TlsServer& server);  // throws std::runtime_error
    ~TlsSession();
    TlsSession(const TlsSession&) = delete;
    TlsSession& operator=(const TlsSession&) = delete;

    enum class Status { Ok, Ended, Failed };
    // Takes bytes received from the peer: the handshake while it lasts (then
    // the client certificate's names are checked), then the plaintext, fed to
    // `decoder`. Ended: the peer closed the session. Failed: `error` says why
    // (a handshake that failed, a certificate whose names are not allowed).
    Status receive(const char* data, std::size_t size, FrameDecoder& decoder, std::string& error);
    // Encrypts `plain` (false, with `error`, when the session cannot).
    bool send(std::string_view plain, std::string& error);
    // Appends what is to be sent to the peer (handshake, alerts, encrypted replies).
    void drain(std::string& wire);
    bool handshaking() const { return handshaking_; }
    // Bytes of a TLS record received and not yet complete.
    bool partial() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    bool handshaking_ = true;
};

}  // namespace junction::mllp
