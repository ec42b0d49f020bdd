// TLS for the listener's loops (tls.h): the server context made from the
// certificate, key and CAs, and each connection's session, OpenSSL over
// memory buffers, with the client certificate's names checked.
#include "connectors/mllp/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstring>
#include <stdexcept>

namespace junction::mllp {

namespace {

// The reason of the oldest error OpenSSL queued on this thread (and the queue cleared).
std::string opensslError() {
    unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) return "unknown error";
    if (ERR_SYSTEM_ERROR(code)) return std::strerror(ERR_GET_REASON(code));  // such as a file that is not there
    const char* reason = ERR_reason_error_string(code);
    if (reason) return reason;
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return text;
}

bool sameName(const std::string& a, const std::string& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

struct Name {
    std::string kind, value;  // "CN" or "DNS"
};

// The certificate's common names and DNS subject alternative names.
std::vector<Name> namesOf(X509* cert) {
    std::vector<Name> names;
    if (X509_NAME* subject = X509_get_subject_name(cert)) {
        for (int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); i >= 0;
             i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) {
            unsigned char* utf8 = nullptr;
            int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i)));
            if (len >= 0) names.push_back({"CN", std::string(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len))});
            OPENSSL_free(utf8);
        }
    }
    auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); ++i) {
        const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
        if (n->type != GEN_DNS) continue;
        const auto* data = reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName));
        names.push_back({"DNS", std::string(data, static_cast<std::size_t>(ASN1_STRING_length(n->d.dNSName)))});
    }
    GENERAL_NAMES_free(sans);
    return names;
}

}  // namespace

struct TlsServer::Impl {
    SSL_CTX* ctx = nullptr;
    std::vector<std::string> allowedNames;
    ~Impl() { SSL_CTX_free(ctx); }
};

TlsServer::TlsServer(const ListenerTls& o) : impl_(std::make_unique<Impl>()) {
    ERR_clear_error();
    auto fail = [](const std::string& what) { throw std::runtime_error("TLS: " + what + ": " + opensslError()); };
    SSL_CTX* ctx = impl_->ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) fail("cannot set up");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);  // an idle connection holds no record buffers
    if (SSL_CTX_use_certificate_chain_file(ctx, o.cert.c_str()) != 1) fail("cannot use the certificate " + o.cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, o.key.c_str(), SSL_FILETYPE_PEM) != 1) fail("cannot use the private key " + o.key);
    if (SSL_CTX_check_private_key(ctx) != 1) fail("the private key " + o.key + " does not match the certificate");
    if (!o.ca.empty()) {
        if (SSL_CTX_load_verify_locations(ctx, o.ca.c_str(), nullptr) != 1) fail("cannot read the CAs " + o.ca);
        // Told to the client, which then picks a certificate one of them signed.
        if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.ca.c_str())) SSL_CTX_set_client_CA_list(ctx, names);
    }
    if (o.verifyClient || !o.allowedNames.empty()) {
        if (o.ca.empty()) throw std::runtime_error("TLS: a client certificate cannot be checked without ca");
        // The chain is checked against `ca` only: the peer's address plays no part.
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    static const unsigned char kContext[] = "junction-mllp";
    SSL_CTX_set_session_id_context(ctx, kContext, sizeof kContext - 1);
    impl_->allowedNames = o.allowedNames;
}

TlsServer::~TlsServer() = default;

struct TlsSession::Impl {
    const TlsServer::Impl& server;
    SSL* ssl = nullptr;
    BIO* in = nullptr;   // bytes received, for OpenSSL to read (owned by ssl)
    BIO* out = nullptr;  // bytes OpenSSL wrote, to send (owned by ssl)
    explicit Impl(const TlsServer::Impl& s) : server(s) {}
    ~Impl() { SSL_free(ssl); }

    // Why the last call failed (`result`: what it returned).
    std::string why(int result) {
        int e = SSL_get_error(ssl, result);
        if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) return "the connection ended";
        std::string text = opensslError();
        long verify = SSL_get_verify_result(ssl);
        if (verify != X509_V_OK) text += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
        return text;
    }

    // Empty when the client certificate may connect, else why not.
    std::string checkNames() {
        if (server.allowedNames.empty()) return {};
        X509* cert = SSL_get0_peer_certificate(ssl);
        if (!cert) return "no client certificate, tls.allowed_names needs one";
        std::vector<Name> names = namesOf(cert);
        for (const auto& n : names)
            for (const auto& allowed : server.allowedNames)
                if (sameName(n.value, allowed)) return {};
        std::string list;
        for (const auto& n : names) list += (list.empty() ? "" : ", ") + n.kind + (n.kind == "CN" ? "=" : ":") + n.value;
        return "client certificate (" + (list.empty() ? std::string("no CN or DNS name") : list) +
               ") matches none of tls.allowed_names";
    }
};

TlsSession::TlsSession(const TlsServer& server) : impl_(std::make_unique<Impl>(*server.impl_)) {
    Impl& m = *impl_;
    m.ssl = SSL_new(server.impl_->ctx);
    m.in = BIO_new(BIO_s_mem());
    m.out = BIO_new(BIO_s_mem());
    if (!m.ssl || !m.in || !m.out) {
        BIO_free(m.in);
        BIO_free(m.out);
        throw std::runtime_error("TLS: " + opensslError());
    }
    BIO_set_mem_eof_return(m.in, -1);  // no more bytes yet: "retry", not end of stream
    SSL_set_bio(m.ssl, m.in, m.out);
    SSL_set_accept_state(m.ssl);
}

TlsSession::~TlsSession() = default;

TlsSession::Status TlsSession::receive(const char* data, std::size_t size, FrameDecoder& decoder, std::string& error) {
    Impl& m = *impl_;
    ERR_clear_error();
    while (size > 0) {
        int chunk = static_cast<int>(std::min<std::size_t>(size, INT_MAX));
        if (BIO_write(m.in, data, chunk) != chunk) {
            error = "TLS: out of memory";
            return Status::Failed;
        }
        data += chunk;
        size -= static_cast<std::size_t>(chunk);
    }
    if (handshaking_) {
        int r = SSL_do_handshake(m.ssl);
        if (r != 1) {
            int e = SSL_get_error(m.ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Status::Ok;
            error = "TLS handshake failed: " + m.why(r);
            return Status::Failed;
        }
        handshaking_ = false;
        error = m.checkNames();
        if (!error.empty()) return Status::Failed;
    }
    char plain[16384];  // one record
    for (;;) {
        int r = SSL_read(m.ssl, plain, sizeof plain);
        if (r > 0) {
            decoder.feed(plain, static_cast<std::size_t>(r));
            continue;
        }
        int e = SSL_get_error(m.ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Status::Ok;
        if (e == SSL_ERROR_ZERO_RETURN) return Status::Ended;
        error = "TLS: " + m.why(r);
        return Status::Failed;
    }
}

bool TlsSession::send(std::string_view plain, std::string& error) {
    Impl& m = *impl_;
    ERR_clear_error();
    while (!plain.empty()) {
        // A memory buffer takes everything: a write is only ever cut by INT_MAX.
        int chunk = static_cast<int>(std::min<std::size_t>(plain.size(), INT_MAX));
        int r = SSL_write(m.ssl, plain.data(), chunk);
        if (r <= 0) {
            error = "TLS: " + m.why(r);
            return false;
        }
        plain.remove_prefix(static_cast<std::size_t>(r));
    }
    return true;
}

void TlsSession::drain(std::string& wire) {
    Impl& m = *impl_;
    std::size_t pending = BIO_ctrl_pending(m.out);
    if (pending == 0) return;
    std::size_t at = wire.size();
    wire.resize(at + pending);
    int n = BIO_read(m.out, wire.data() + at, static_cast<int>(std::min<std::size_t>(pending, INT_MAX)));
    wire.resize(at + static_cast<std::size_t>(std::max(n, 0)));
}

bool TlsSession::partial() const { return SSL_has_pending(impl_->ssl) || BIO_ctrl_pending(impl_->in) > 0; }

}  // namespace junction::mllp
