// The MLLP listener with TLS (io_uring and epoll): served on the loops, the
// handshake timeout, connections that never handshake, client certificates
// checked against the CA alone, allowed_names. The certificates are made here
// with the openssl command.
#include <catch2/catch.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "connectors/mllp/framing.h"
#include "connectors/mllp/listener.h"
#include "tests/mllp/listener_peers.h"
#include "tests/support/test_certificates.h"

using namespace junction::mllp;
using namespace std::chrono_literals;
using namespace mllp_test;

namespace {

// A CA, a server certificate (localhost), client certificates lab-a (CN) and
// lab-b (CN, and DNS name lab-b.example), and "stranger" (CN lab-a) from another CA.
const test_support::Certificates& certs() {
    static test_support::Certificates c(R"(
ca ca "Test CA"
ca other-ca "Other CA"
issue server localhost ca "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
issue lab-a lab-a ca "extendedKeyUsage=clientAuth\n"
issue lab-b lab-b ca "extendedKeyUsage=clientAuth\nsubjectAltName=DNS:lab-b.example\n"
issue stranger lab-a other-ca "extendedKeyUsage=clientAuth\n")");
    return c;
}

ListenerOptions tlsLoopback(bool ioUring, int threads = 1) {
    auto o = loopback(ioUring, threads);
    o.tls.enabled = true;
    o.tls.cert = certs()("server.pem");
    o.tls.key = certs()("server.key");
    return o;
}

// A blocking MLLP client over TLS (OpenSSL) that checks the server's
// certificate, with a client certificate when named.
class TlsPeer : public Peer {
public:
    explicit TlsPeer(int port, const std::string& client = {}) : Peer(port) {
        ::signal(SIGPIPE, SIG_IGN);  // a write to a connection the server closed
        ctx_ = SSL_CTX_new(TLS_client_method());
        SSL_CTX_load_verify_locations(ctx_, certs()("ca.pem").c_str(), nullptr);
        SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
        if (!client.empty()) {
            SSL_CTX_use_certificate_file(ctx_, certs()(client + ".pem").c_str(), SSL_FILETYPE_PEM);
            SSL_CTX_use_PrivateKey_file(ctx_, certs()(client + ".key").c_str(), SSL_FILETYPE_PEM);
        }
        ssl_ = SSL_new(ctx_);
        SSL_set_fd(ssl_, fd());
        SSL_set1_host(ssl_, "localhost");
        setTimeout(5000ms);
        handshaken_ = connected() && SSL_connect(ssl_) == 1;
        ERR_clear_error();
    }
    ~TlsPeer() override {
        SSL_free(ssl_);
        SSL_CTX_free(ctx_);
    }
    bool handshaken() const { return handshaken_; }
    void write(const std::string& bytes) override {
        if (handshaken_ && SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())) <= 0) ERR_clear_error();
    }
    // Sends `message`: whether its ACK came.
    bool served(const std::string& message, std::chrono::milliseconds timeout = 5000ms) {
        write(frame(message));
        std::string got;
        return read(got, timeout) && got == "ACK " + message;
    }
    // Not served: the handshake failed, or the connection was closed unanswered.
    bool refused() {
        if (!handshaken_) return true;
        write(frame("refused?"));
        std::string got;
        return !read(got, 3000ms) && closedByPeer();
    }

protected:
    long receive(char* buf, std::size_t size, std::chrono::milliseconds timeout) override {
        if (!handshaken_) return -1;
        setTimeout(timeout);
        int n = SSL_read(ssl_, buf, static_cast<int>(std::min<std::size_t>(size, 16384)));
        if (n > 0) return n;
        bool timedOut = SSL_get_error(ssl_, n) == SSL_ERROR_WANT_READ;
        ERR_clear_error();
        return timedOut ? -1 : 0;
    }

private:
    void setTimeout(std::chrono::milliseconds t) {
        timeval tv{static_cast<time_t>(t.count() / 1000), static_cast<suseconds_t>(t.count() % 1000 * 1000)};
        ::setsockopt(fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    bool handshaken_ = false;
};

Listener::Handlers echoBig(std::size_t bigReply) {
    Listener::Handlers h;
    h.message = [bigReply](std::string payload, const std::string&, Listener::Reply reply) {
        reply(payload == "big" ? std::string(bigReply, 'r') : "ACK " + payload);
    };
    return h;
}

}  // namespace

TEST_CASE("listener: TLS: messages are answered in order on the loops, a large reply too", "[mllp][listener][tls]") {
    Listener l(tlsLoopback(GENERATE(true, false), 2), echoBig(1u << 20));
    l.start();
    TlsPeer p(l.port());
    REQUIRE(p.handshaken());
    p.write(frame("one") + frame("two") + frame("big") + frame("three"));
    std::string got;
    REQUIRE(p.read(got));
    CHECK(got == "ACK one");
    REQUIRE(p.read(got));
    CHECK(got == "ACK two");
    REQUIRE(p.read(got));
    CHECK(got == std::string(1u << 20, 'r'));
    REQUIRE(p.read(got));
    CHECK(got == "ACK three");
    // Many clients at once, over two loops.
    std::vector<std::thread> clients;
    std::atomic<int> served{0};
    for (int c = 0; c < 8; ++c)
        clients.emplace_back([&, c] {
            TlsPeer q(l.port());
            for (int i = 0; i < 20; ++i) served += q.served("c" + std::to_string(c) + "-" + std::to_string(i));
        });
    for (auto& t : clients) t.join();
    CHECK(served == 160);
    l.stop();
}

TEST_CASE("listener: TLS: a connection without a handshake is closed after handshake_timeout, one speaking plain MLLP at once, each logged", "[mllp][listener][tls]") {
    auto o = tlsLoopback(GENERATE(true, false));
    o.tls.handshakeTimeout = 300ms;
    Logs logs;
    Listener l(o, logs.into(echo()));
    l.start();
    Peer silent(l.port()), plain(l.port());
    auto start = SteadyClock::now();
    plain.write(frame("not TLS"));
    CHECK(plain.closedWithin(2000ms));
    CHECK(logs.waitFor({plain.name(), "TLS handshake failed"}));
    TlsPeer p(l.port());
    CHECK(p.served("meanwhile"));
    CHECK(silent.closedWithin(3000ms));
    CHECK(SteadyClock::now() - start >= 250ms);
    CHECK(logs.waitFor({silent.name(), "handshake_timeout"}));
    l.stop();
}

TEST_CASE("listener: TLS: a frame or a TLS record not complete within frame_timeout closes the connection", "[mllp][listener][tls]") {
    auto o = tlsLoopback(GENERATE(true, false));
    o.frameTimeout = 500ms;
    Logs logs;
    Listener l(o, logs.into(echo()));
    l.start();
    // The start of a frame, whole TLS records.
    TlsPeer framed(l.port());
    REQUIRE(framed.handshaken());
    framed.write(std::string(1, kStartBlock) + "MSH|");
    // The start of a 16 KB record, a byte every 100 ms after it.
    TlsPeer recorded(l.port());
    REQUIRE(recorded.handshaken());
    std::atomic<bool> done{false};
    std::thread trickle([&] {
        const char header[] = {0x17, 0x03, 0x03, 0x40, 0x00};
        ::send(recorded.fd(), header, sizeof header, MSG_NOSIGNAL);
        for (int i = 0; i < 30 && !done; ++i) {
            ::send(recorded.fd(), "x", 1, MSG_NOSIGNAL);
            std::this_thread::sleep_for(100ms);
        }
    });
    std::string got;
    CHECK_FALSE(framed.read(got, 2000ms));
    CHECK(framed.closedByPeer());
    CHECK_FALSE(recorded.read(got, 2000ms));
    CHECK(recorded.closedByPeer());
    done = true;
    trickle.join();
    CHECK(logs.with({"frame_timeout"}).size() == 2);
    TlsPeer other(l.port());
    CHECK(other.served("meanwhile"));
    l.stop();
}

TEST_CASE("listener: TLS: 300 connections that never handshake do not keep a TLS client out", "[mllp][listener][tls]") {
    auto o = tlsLoopback(GENERATE(true, false));  // max_connections 200, handshake_timeout 10 s
    Listener l(o, echo());
    l.start();
    std::vector<std::unique_ptr<Peer>> silent;
    for (int i = 0; i < 300; ++i) {
        silent.push_back(std::make_unique<Peer>(l.port()));
        REQUIRE(silent.back()->connected());
    }
    std::this_thread::sleep_for(200ms);
    auto start = SteadyClock::now();
    TlsPeer p(l.port());
    CHECK(p.served("real", 2000ms));
    CHECK(SteadyClock::now() - start < 2000ms);
    CHECK(waitForConnections(l, 200));  // 199 silent ones and the client: 101 evicted
    l.stop();
}

TEST_CASE("listener: TLS: a client certificate is checked against the CA alone, whatever its names", "[mllp][listener][tls]") {
    auto o = tlsLoopback(GENERATE(true, false));
    o.tls.ca = certs()("ca.pem");
    o.tls.verifyClient = true;
    Logs logs;
    Listener l(o, logs.into(echo()));
    l.start();
    // Neither CN is the client's address (127.0.0.1).
    TlsPeer a(l.port(), "lab-a"), b(l.port(), "lab-b");
    CHECK(a.served("from lab-a"));
    CHECK(b.served("from lab-b"));
    TlsPeer stranger(l.port(), "stranger");  // another CA
    CHECK(stranger.refused());
    TlsPeer none(l.port());
    CHECK(none.refused());
    CHECK(logs.waitFor({"TLS handshake failed", "certificate"}));
    l.stop();
}

TEST_CASE("listener: TLS: allowed_names lets in the certificates named by CN or DNS name, closes the others, logged with their names", "[mllp][listener][tls]") {
    const bool ioUring = GENERATE(true, false);
    struct Case {
        std::vector<std::string> allowed;
        std::string in, out;  // client certificates let in and closed
        std::vector<std::string> logged;
    };
    for (const Case& k : {Case{{"lab-a"}, "lab-a", "lab-b", {"CN=lab-b", "DNS:lab-b.example", "tls.allowed_names"}},
                          Case{{"LAB-B.example"}, "lab-b", "lab-a", {"CN=lab-a", "tls.allowed_names"}}}) {
        auto o = tlsLoopback(ioUring);
        o.tls.ca = certs()("ca.pem");
        o.tls.verifyClient = true;
        o.tls.allowedNames = k.allowed;
        Logs logs;
        Listener l(o, logs.into(echo()));
        l.start();
        TlsPeer in(l.port(), k.in), out(l.port(), k.out);
        CHECK(in.served("from " + k.in));
        CHECK(out.refused());
        CHECK(logs.waitFor({k.logged[0], k.logged.back()}));
        for (const auto& part : k.logged) CHECK(logs.with({out.name(), part}).size() == 1);
        TlsPeer stranger(l.port(), "stranger");  // CN lab-a, but from another CA
        CHECK(stranger.refused());
        l.stop();
    }
}

TEST_CASE("listener: TLS: a certificate that cannot be read is an error naming it", "[mllp][listener][tls]") {
    auto o = tlsLoopback(true);
    o.tls.cert = certs()("missing.pem");
    Listener l(o, echo());
    try {
        l.start();
        FAIL("started without its certificate");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find("missing.pem") != std::string::npos);
    }
    o = tlsLoopback(true);
    o.tls.verifyClient = true;  // without ca
    Listener noCa(o, echo());
    CHECK_THROWS_WITH(noCa.start(), Catch::Contains("ca"));
}
