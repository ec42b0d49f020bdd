// The `http` source in a running engine: requests become stored messages
// (answered once stored), delivered on by an `http` destination; what it
// refuses (path, credentials, method, size, unreadable bodies, a paused
// channel) and how (status, headers, what is kept); HL7 over HTTP with its
// ACK; ack: after_destinations relaying the destination's answer.
#include <catch2/catch.hpp>

#include <mutex>

#include "engine/config/node.h"
#include "engine/core/engine.h"
#include "engine/http/client.h"
#include "engine/http/server.h"
#include "tests/core/test_support.h"
#include "tests/support/connectors.h"
#include "tests/support/test_certificates.h"

using namespace junction;
using namespace junction::testing;
using namespace std::chrono_literals;

namespace {

const std::string kSamples = std::string(JUNCTION_SOURCE_DIR) + "/samples/hl7/";

// An engine in a folder of its own, running the channel `yaml`.
struct Running {
    TempDir dir;
    core::Engine engine{engineOptions(dir.str()), connectorRegistry()};
    explicit Running(const std::string& yaml) {
        engine.addChannel(testChannel(dir.str(), yaml));
        engine.start();
    }
    ~Running() { engine.stop(); }
};

// The peer the destination sends to: records requests, answers `status`.
struct Peer {
    std::mutex m;
    std::vector<http::ServerRequest> seen;
    std::atomic<int> status{201};
    http::Server server{[] {
                            http::ServerOptions o;
                            o.host = "127.0.0.1";
                            return o;
                        }(),
                        [this](const http::ServerRequest& r) {
                            std::lock_guard<std::mutex> lock(m);
                            seen.push_back(r);
                            return http::ServerResponse{status.load(), "application/json", {}, "{\"peer\":\"answer\"}"};
                        }};
    Peer() { server.start(); }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(server.port()); }
    std::size_t count() {
        std::lock_guard<std::mutex> lock(m);
        return seen.size();
    }
};

http::Result post(int port, const std::string& path, const std::string& body, std::vector<http::Header> headers = {},
                  const std::string& method = "POST") {
    http::Client c;
    return c.send({method, "http://127.0.0.1:" + std::to_string(port) + path, std::move(headers), body});
}

std::size_t countAll(core::Engine& e, const std::string& ch) {
    std::size_t n = 0;
    for (auto& [status, k] : e.store().countByStatus(ch)) n += k;
    return n;
}

const http::Header kBearer{"Authorization", "Bearer s3cret"};

}  // namespace

TEST_CASE("http source: a request is answered once stored and forwarded by an http destination", "[http_connectors]") {
    Peer peer;
    int port = freePort();
    Running run(R"(
channel: hook
source: { type: http, port: )" + std::to_string(port) + R"(, host: 127.0.0.1, path: /hook, auth: { type: bearer, token: s3cret } }
destinations:
  - { name: emr, type: http, url: ")" + peer.url() + R"(/api/patients/${/id}", headers: { X-From: "${channel}" } }
)");
    auto& engine = run.engine;
    const std::string body = R"({"id": "MRN482913", "name": "DOE^JANE"})";
    http::Result r = post(port, "/hook?source=ris", body, {kBearer});
    REQUIRE(r.answered);
    CHECK(r.response.status == 200);
    CHECK(r.response.header("Content-Type") == "application/json");
    std::string id = r.response.header("X-Message-Id");
    REQUIRE_FALSE(id.empty());
    CHECK(r.response.body == "{\"id\": " + id + "}");
    // Stored when answered: the store has it.
    engine.store().flush();
    auto stored = engine.store().get(std::stoll(id));
    REQUIRE(stored);
    CHECK(stored->raw == body);
    CHECK(stored->summary.dataType == "json");  // the http source's default
    CHECK_THAT(stored->summary.source, Catch::StartsWith("http 127.0.0.1:") && Catch::EndsWith(" POST /hook?source=ris"));

    REQUIRE(eventually([&] { return countStatus(engine, "hook", store::Status::Sent) == 1; }));
    {
        std::lock_guard<std::mutex> lock(peer.m);
        REQUIRE(peer.seen.size() == 1);
        CHECK(peer.seen[0].method == "POST");
        CHECK(peer.seen[0].path == "/api/patients/MRN482913");
        CHECK(peer.seen[0].header("X-From") == "hook");
        CHECK(peer.seen[0].header("Content-Type") == "application/json");
        CHECK(peer.seen[0].body == body);
    }
    auto sent = engine.store().get(std::stoll(id));
    REQUIRE(sent);
    REQUIRE(sent->deliveries.size() == 1);
    CHECK_THAT(sent->deliveries[0].response, Catch::StartsWith("{\"status\":201,") &&
                                                 Catch::EndsWith("\"body\":\"{\\\"peer\\\":\\\"answer\\\"}\"}"));
    CHECK(post(port, "/hook", "[1, 2]", {kBearer}, "PUT").response.status == 200);
}

TEST_CASE("http source: wrong path, no credentials, other methods, large and unreadable bodies", "[http_connectors]") {
    int port = freePort();
    Running run(R"(
channel: hook
source: { type: http, port: )" + std::to_string(port) + R"(, host: 127.0.0.1, path: /hook, max_body: 1KB,
          auth: { type: basic, username: ris, password: "pa:ss" } }
destinations: []
)");
    auto& engine = run.engine;
    const http::Header basic{"Authorization", http::basicAuth("ris", "pa:ss")};
    http::Result r = post(port, "/other", "{}", {basic});
    CHECK(r.response.status == 404);
    r = post(port, "/hook", "{}");
    CHECK(r.response.status == 401);
    CHECK(r.response.header("WWW-Authenticate") == "Basic realm=\"junction\"");
    CHECK(post(port, "/hook", "{}", {{"Authorization", http::basicAuth("ris", "wrong")}}).response.status == 401);
    CHECK(post(port, "/hook", "{}", {kBearer}).response.status == 401);
    r = post(port, "/hook", "", {basic}, "GET");
    CHECK(r.response.status == 405);
    CHECK(r.response.header("Allow") == "POST, PUT");
    CHECK(post(port, "/hook", "{}", {basic}, "DELETE").response.status == 405);
    r = post(port, "/hook", "[\"" + std::string(1100, 'x') + "\"]", {basic});
    CHECK(r.response.status == 413);
    engine.store().flush();
    CHECK(countAll(engine, "hook") == 0);  // nothing refused was stored

    // JSON the channel cannot read: 400, kept as ERROR with the reason.
    r = post(port, "/hook", "{\"a\": 1,,}", {basic});
    CHECK(r.response.status == 400);
    std::string id = r.response.header("X-Message-Id");
    REQUIRE_FALSE(id.empty());
    CHECK_THAT(r.response.body, Catch::StartsWith("{\"id\": " + id + ", \"error\": \"not JSON: unexpected character ','"));
    engine.store().flush();
    auto bad = engine.store().get(std::stoll(id));
    REQUIRE(bad);
    CHECK(bad->summary.status == store::Status::Error);
    CHECK_THAT(bad->summary.error, Catch::Contains("not JSON: unexpected character ','"));
    CHECK(bad->raw == "{\"a\": 1,,}");
    CHECK(post(port, "/hook", "", {basic}).response.status == 400);  // an empty body is no JSON either
    CHECK(post(port, "/hook", "{\"ok\": true}", {basic}).response.status == 200);
    engine.store().flush();
    CHECK(countStatus(engine, "hook", store::Status::Error) == 2);
}

TEST_CASE("http source: HL7 over HTTP is answered with its ACK, broken HL7 with a NAK and 400", "[http_connectors]") {
    int port = freePort();
    Running run(R"(
channel: hl7-in
source: { type: http, port: )" + std::to_string(port) + R"(, host: 127.0.0.1, data_type: hl7v2 }
destinations: []
)");
    auto& engine = run.engine;
    http::Result r = post(port, "/anything", readFile(kSamples + "orm_o01_nw.hl7"));
    CHECK(r.response.status == 200);
    CHECK(r.response.header("Content-Type") == "x-application/hl7-v2+er7");
    CHECK_THAT(r.response.body, Catch::StartsWith("MSH|") && Catch::Contains("MSA|AA|ORM0001"));
    r = post(port, "/anything", "PID|1||x\r");
    CHECK(r.response.status == 400);
    CHECK_THAT(r.response.body, Catch::Contains("MSA|AE"));
    engine.store().flush();
    CHECK(countStatus(engine, "hl7-in", store::Status::Error) == 1);
}

TEST_CASE("http source: ack after_destinations relays the destination's answer, 500 when it failed", "[http_connectors]") {
    Peer peer;
    int port = freePort();
    Running run(R"(
channel: relay
source: { type: http, port: )" + std::to_string(port) + R"(, host: 127.0.0.1, ack: after_destinations }
destinations:
  - { name: emr, type: http, url: ")" + peer.url() + R"(/fhir", retry: { attempts: 1 } }
)");
    http::Result r = post(port, "/", "{\"resourceType\": \"Patient\"}");
    CHECK(r.response.status == 200);
    CHECK(r.response.header("Content-Type") == "application/json");
    CHECK_THAT(r.response.body, Catch::StartsWith("{\"status\":201,") && Catch::Contains("\"body\":\"{\\\"peer\\\":\\\"answer\\\"}\""));
    peer.status = 422;
    r = post(port, "/", "{\"resourceType\": \"Patient\"}");
    CHECK(r.response.status == 500);
    CHECK_THAT(r.response.body, Catch::StartsWith("{\"status\":422,"));
    CHECK_FALSE(r.response.header("X-Message-Id").empty());
}

TEST_CASE("http source: a paused channel answers 503 once its timeout passes, and takes requests again after", "[http_connectors]") {
    int port = freePort();
    Running run(R"(
channel: hold
source: { type: http, port: )" + std::to_string(port) + R"(, host: 127.0.0.1, timeout: 1s }
destinations: []
)");
    auto& engine = run.engine;
    REQUIRE(engine.pauseChannel("hold"));
    http::Result r = post(port, "/", "{}");
    CHECK(r.response.status == 503);
    CHECK(r.response.header("Retry-After") == "5");
    engine.store().flush();
    CHECK(countAll(engine, "hold") == 0);
    REQUIRE(engine.resumeChannel("hold"));
    CHECK(post(port, "/", "{}").response.status == 200);
}

TEST_CASE("https: the source speaks TLS with its certificate, the destination checks its peer's with tls.ca", "[http_connectors]") {
    test_support::Certificates certs(
        "ca ca 'Junction Test CA'\n"
        "issue server 127.0.0.1 ca 'subjectAltName=IP:127.0.0.1\\n'\n"
        "ca other 'Another CA'\n");
    // The peer of the destination: HTTPS with the same certificate.
    std::mutex m;
    std::vector<std::string> seen;
    http::ServerOptions so;
    so.host = "127.0.0.1";
    so.tls.enabled = true;
    so.tls.cert = certs("server.pem");
    so.tls.key = certs("server.key");
    http::Server peer(so, [&](const http::ServerRequest& r) {
        std::lock_guard<std::mutex> lock(m);
        seen.push_back(r.body);
        return http::ServerResponse{200, "application/json", {}, "{}"};
    });
    peer.start();
    const std::string peerUrl = "https://127.0.0.1:" + std::to_string(peer.port());
    int port = freePort();
    Running run(R"(
channel: secure
source: { type: http, port: )" + std::to_string(port) + R"(, host: 127.0.0.1,
          tls: { cert: ")" + certs("server.pem") + R"(", key: ")" + certs("server.key") + R"(" } }
destinations:
  - { name: trusted, type: http, url: ")" + peerUrl + R"(/a", tls: { ca: ")" + certs("ca.pem") + R"(" } }
  - { name: untrusted, type: http, url: ")" + peerUrl + R"(/b", tls: { ca: ")" + certs("other.pem") + R"(" },
      retry: { attempts: 1 } }
)");
    http::ClientOptions co;
    co.tls.ca = certs("ca.pem");
    http::Client client(co);
    http::Result r = client.send({"POST", "https://127.0.0.1:" + std::to_string(port) + "/", {}, "{\"secure\": true}"});
    REQUIRE(r.answered);
    CHECK(r.response.status == 200);
    CHECK_FALSE(post(port, "/", "{}").answered);  // plain HTTP on the TLS port gets no answer
    const long long id = std::stoll(r.response.header("X-Message-Id"));
    auto delivery = [&](const std::string& name) {
        run.engine.store().flush();
        auto stored = run.engine.store().get(id);
        for (const auto& d : stored ? stored->deliveries : std::vector<store::DeliveryRecord>{})
            if (d.destination == name) return d;
        return store::DeliveryRecord{};
    };
    REQUIRE(eventually([&] { return delivery("trusted").status == store::Status::Sent; }));
    REQUIRE(eventually([&] { return delivery("untrusted").status == store::Status::Error; }));
    CHECK_THAT(delivery("untrusted").error, Catch::Contains("TLS"));
    std::lock_guard<std::mutex> lock(m);
    CHECK(seen == std::vector<std::string>{"{\"secure\": true}"});  // only the destination that trusts the CA sent it
}

TEST_CASE("http source: two channels cannot listen on one port, and its settings are checked", "[http_connectors]") {
    TempDir dir;
    int port = freePort();
    core::Engine engine(engineOptions(dir.str()), connectorRegistry());
    engine.addChannel(testChannel(dir.str(), "channel: a\nsource: { type: http, port: " + std::to_string(port) + " }\ndestinations: []\n"));
    CHECK_THROWS_WITH(engine.addChannel(testChannel(dir.str(), "channel: b\nsource: { type: http, port: " + std::to_string(port) +
                                                         ", path: /b }\ndestinations: []\n")),
                      Catch::Contains("port " + std::to_string(port) + " is already used by channel a"));
    auto refused = [&](const std::string& source) {
        try {
            testChannel(dir.str(), "channel: c\nsource: { type: http, " + source + " }\ndestinations: []\n");
        } catch (const config::ConfigError& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    CHECK(refused("port: 8443, tls: { cert: c.pem, key: k.pem }, auth: { type: bearer, token: t }") == "accepted");
    CHECK_THAT(refused("path: /x"), Catch::Contains("missing key 'port'"));
    CHECK_THAT(refused("port: 80, path: hook"), Catch::Contains("path must start with '/'"));
    CHECK_THAT(refused("port: 80, tls: { cert: c.pem }"), Catch::Contains("tls needs cert and key"));
    CHECK_THAT(refused("port: 80, tls: { cert: c.pem, key: k.pem, verify_client: true }"), Catch::Contains("verify_client needs ca"));
    CHECK_THAT(refused("port: 80, auth: { type: basic, password: p }"), Catch::Contains("auth type basic needs username"));
    CHECK_THAT(refused("port: 80, max_body: 0"), Catch::Contains("max_body"));
    CHECK_THAT(refused("port: 80, url: http://x/"), Catch::Contains("unknown key 'url'"));
}
