// The HTTP client (engine/http/client.h) against a POCO HTTP(S) server in
// the test: keep-alive and reconnection, timeouts, size limits, TLS checks,
// what each status means for a delivery, and the body helpers.
#include <catch2/catch.hpp>

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "engine/http/client.h"
#include "tests/support/test_certificates.h"

using namespace junction::http;
using namespace std::chrono_literals;

namespace {

struct Seen {
    std::string method, uri, body, auth, contentType, custom;
};

// A server whose answer is `handler`'s; it records what it saw and counts connections.
class TestServer {
public:
    using Handler = std::function<void(Poco::Net::HTTPServerRequest&, Poco::Net::HTTPServerResponse&)>;

    explicit TestServer(Handler h, Poco::Net::Context::Ptr tls = nullptr) : handler_(std::move(h)) {
        Poco::Net::SocketAddress addr("127.0.0.1", 0);
        if (tls) socket_ = std::make_unique<Poco::Net::SecureServerSocket>(addr, 64, tls);
        else socket_ = std::make_unique<Poco::Net::ServerSocket>(addr);
        port_ = socket_->address().port();
        auto params = new Poco::Net::HTTPServerParams;
        params->setKeepAlive(true);
        params->setMaxThreads(4);
        server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), *socket_, params);
        server_->start();
    }
    ~TestServer() { server_->stopAll(true); }

    std::string url(const std::string& path = "/") const {
        return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + path;
    }
    int connections() const { return static_cast<int>(server_->totalConnections()); }
    Seen last() {
        std::lock_guard<std::mutex> lock(m_);
        return last_;
    }
    bool tls_ = false;

private:
    struct H : Poco::Net::HTTPRequestHandler {
        TestServer& s;
        explicit H(TestServer& s) : s(s) {}
        void handleRequest(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& res) override {
            Seen seen;
            seen.method = req.getMethod();
            seen.uri = req.getURI();
            Poco::StreamCopier::copyToString(req.stream(), seen.body);
            seen.auth = req.get("Authorization", "");
            seen.contentType = req.getContentType();
            seen.custom = req.get("X-Custom", "");
            {
                std::lock_guard<std::mutex> lock(s.m_);
                s.last_ = seen;
            }
            s.handler_(req, res);
        }
    };
    struct Factory : Poco::Net::HTTPRequestHandlerFactory {
        TestServer& s;
        explicit Factory(TestServer& s) : s(s) {}
        Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
            return new H(s);
        }
    };
    Handler handler_;
    std::unique_ptr<Poco::Net::ServerSocket> socket_;
    std::unique_ptr<Poco::Net::HTTPServer> server_;
    int port_ = 0;
    std::mutex m_;
    Seen last_;
};

void reply(Poco::Net::HTTPServerResponse& res, int status, const std::string& body) {
    res.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
    res.setContentType("application/json");
    res.setContentLength(static_cast<std::streamsize>(body.size()));
    res.send() << body;
}

}  // namespace

TEST_CASE("the HTTP client sends, keeps the connection and reads the answer", "[http]") {
    TestServer server([](auto& req, auto& res) { reply(res, 201, "{\"ok\":true}"); });
    Client client;
    Request r;
    r.method = "POST";
    r.url = server.url("/ws/rest/v1/attachment?x=1");
    r.headers = {{"Authorization", basicAuth("svc", "p@ss:word")}, {"Content-Type", "application/json"},
                 {"X-Custom", "yes"}};
    r.body = "{\"a\":1}";
    Result res = client.send(r);
    REQUIRE(res.answered);
    CHECK(res.response.status == 201);
    CHECK(res.response.body == "{\"ok\":true}");
    CHECK(res.response.header("content-type") == "application/json");
    CHECK(classify(res) == Outcome::Sent);
    Seen seen = server.last();
    CHECK(seen.method == "POST");
    CHECK(seen.uri == "/ws/rest/v1/attachment?x=1");
    CHECK(seen.body == "{\"a\":1}");
    CHECK(seen.auth == "Basic c3ZjOnBAc3M6d29yZA==");
    CHECK(seen.contentType == "application/json");
    CHECK(seen.custom == "yes");
    for (int i = 0; i < 5; ++i) CHECK(client.send(r).response.status == 201);
    CHECK(server.connections() == 1);  // one kept-alive connection for all six
}

TEST_CASE("what an answer means for a delivery", "[http]") {
    std::atomic<int> status{200};
    TestServer server([&](auto&, auto& res) { reply(res, status.load(), "{}"); });
    Client client;
    auto outcome = [&](int s) {
        status = s;
        return classify(client.send({"GET", server.url(), {}, {}}));
    };
    CHECK(outcome(200) == Outcome::Sent);
    CHECK(outcome(204) == Outcome::Sent);
    CHECK(outcome(400) == Outcome::Error);
    CHECK(outcome(401) == Outcome::Error);
    CHECK(outcome(404) == Outcome::Error);
    CHECK(outcome(429) == Outcome::Retry);
    CHECK(outcome(500) == Outcome::Retry);
    CHECK(outcome(503) == Outcome::Retry);
}

TEST_CASE("the HTTP client reports a peer that is not there, too slow or too large", "[http]") {
    SECTION("refused") {
        int port;
        {
            Poco::Net::ServerSocket s(Poco::Net::SocketAddress("127.0.0.1", 0));
            port = s.address().port();
        }
        Client client;
        Result r = client.send({"GET", "http://127.0.0.1:" + std::to_string(port) + "/x", {}, {}});
        CHECK_FALSE(r.answered);
        CHECK(r.error.find("connection refused") != std::string::npos);
        CHECK(r.error.find("/x") != std::string::npos);  // names the URL
        CHECK(classify(r) == Outcome::Retry);
    }
    SECTION("too slow") {
        TestServer server([](auto&, auto& res) {
            std::this_thread::sleep_for(1500ms);
            reply(res, 200, "late");
        });
        ClientOptions o;
        o.timeout = 300ms;
        Client client(o);
        auto began = std::chrono::steady_clock::now();
        Result r = client.send({"GET", server.url(), {}, {}});
        CHECK(std::chrono::steady_clock::now() - began < 1200ms);
        CHECK_FALSE(r.answered);
        CHECK(r.error.find("timed out") != std::string::npos);
    }
    SECTION("too large") {
        TestServer server([](auto&, auto& res) { reply(res, 200, std::string(5000, 'x')); });
        ClientOptions o;
        o.maxResponseBytes = 4096;
        Client client(o);
        Result r = client.send({"GET", server.url(), {}, {}});
        CHECK_FALSE(r.answered);
        CHECK(r.error.find("larger than 4096") != std::string::npos);
    }
    SECTION("not a URL") {
        Client client;
        Result r = client.send({"GET", "ftp://127.0.0.1/x", {}, {}});
        CHECK_FALSE(r.answered);
        CHECK(r.error.find("not an http") != std::string::npos);
    }
}

TEST_CASE("abort() ends a send waiting for its answer, and the client sends again afterwards", "[http]") {
    std::mutex m;
    std::condition_variable cv;
    bool arrived = false, release = false;
    TestServer server([&](auto& req, auto& res) {
        if (req.getURI() == "/hold") {
            std::unique_lock<std::mutex> lock(m);
            arrived = true;
            cv.notify_all();
            cv.wait_for(lock, 20s, [&] { return release; });
        }
        reply(res, 200, "done");
    });
    Client client;  // a 30 s timeout: only abort() can end the first send early
    Result held;
    std::thread sender([&] { held = client.send({"POST", server.url("/hold"), {}, "x"}); });
    {
        std::unique_lock<std::mutex> lock(m);
        REQUIRE(cv.wait_for(lock, 10s, [&] { return arrived; }));
    }
    client.abort();
    sender.join();
    {
        std::lock_guard<std::mutex> lock(m);
        CHECK_FALSE(release);  // the server had not answered
        release = true;
    }
    cv.notify_all();
    CHECK_FALSE(held.answered);
    CHECK(held.error.find("aborted") != std::string::npos);
    CHECK(classify(held) == Outcome::Retry);
    Result next = client.send({"GET", server.url("/again"), {}, {}});
    CHECK(next.answered);
    CHECK(next.response.body == "done");
}

TEST_CASE("a kept-alive connection the server closed is reopened without an error", "[http]") {
    std::atomic<bool> closeAfter{false};
    TestServer server([&](auto&, auto& res) {
        if (closeAfter) res.setKeepAlive(false);
        reply(res, 200, "ok");
    });
    Client client;
    CHECK(client.send({"GET", server.url(), {}, {}}).response.status == 200);
    closeAfter = true;
    CHECK(client.send({"GET", server.url(), {}, {}}).response.status == 200);  // then the server closes
    closeAfter = false;
    Result r = client.send({"GET", server.url(), {}, {}});
    CHECK(r.answered);
    CHECK(r.response.status == 200);
    CHECK(server.connections() == 2);
}

TEST_CASE("HTTPS: the server's certificate is checked against the configured CA", "[http]") {
    // A CA, a server certificate for 127.0.0.1 from it, and another CA.
    static test_support::Certificates certs(R"(
ca ca "Test CA"
ca other-ca "Other CA"
issue server 127.0.0.1 ca "subjectAltName=DNS:localhost,IP:127.0.0.1\n")");
    Poco::Net::Context::Params p;
    p.privateKeyFile = certs("server.key");
    p.certificateFile = certs("server.pem");
    p.verificationMode = Poco::Net::Context::VERIFY_NONE;
    Poco::Net::Context::Ptr ctx = new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, p);
    TestServer server([](auto&, auto& res) { reply(res, 200, "secure"); }, ctx);
    server.tls_ = true;

    ClientOptions good;
    good.tls.ca = certs("ca.pem");
    Result r = Client(good).send({"GET", server.url(), {}, {}});
    INFO(r.error);
    CHECK(r.answered);
    CHECK(r.response.body == "secure");

    ClientOptions wrong;
    wrong.tls.ca = certs("other-ca.pem");
    r = Client(wrong).send({"GET", server.url(), {}, {}});
    CHECK_FALSE(r.answered);
    CHECK(r.error.find("TLS") != std::string::npos);

    ClientOptions unchecked;
    unchecked.tls.ca = certs("other-ca.pem");
    unchecked.tls.verify = false;
    CHECK(Client(unchecked).send({"GET", server.url(), {}, {}}).response.body == "secure");
}

TEST_CASE("multipart/form-data and multipart/related bodies, basic auth and URL encoding", "[http]") {
    std::string boundary;
    std::string body = multipartBody({{"patient", "uuid-1", "", ""}, {"file", std::string("\x89PNG\r\n\0x", 8), "preview.png", "image/png"}},
                                     &boundary);
    CHECK(boundary.size() > 20);
    CHECK(body == "--" + boundary + "\r\nContent-Disposition: form-data; name=\"patient\"\r\n\r\nuuid-1\r\n--" + boundary +
                      "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"preview.png\"\r\nContent-Type: "
                      "image/png\r\n\r\n" + std::string("\x89PNG\r\n\0x", 8) + "\r\n--" + boundary + "--\r\n");
    // multipart/related (STOW-RS): parts with headers of their own, bytes as they are.
    const std::string dicom = std::string(128, '\0') + "DICM\r\n--\r\n";
    std::string related = multipartBody(std::vector<BodyPart>{{{{"Content-Type", "application/dicom"}}, dicom},
                                                              {{{"Content-Type", "application/dicom"}}, "DICM2"}},
                                        &boundary);
    CHECK(related == "--" + boundary + "\r\nContent-Type: application/dicom\r\n\r\n" + dicom + "\r\n--" + boundary +
                         "\r\nContent-Type: application/dicom\r\n\r\nDICM2\r\n--" + boundary + "--\r\n");
    // A quote or a line break in a name cannot end the part's header early.
    body = multipartBody({{"a\"b\r\nX: y", "v", "c\".png", "image/png\r\nX: z"}}, &boundary);
    CHECK(body == "--" + boundary + "\r\nContent-Disposition: form-data; name=\"a%22b%0D%0AX: y\"; filename=\"c%22.png\"\r\n"
                  "Content-Type: image/png%0D%0AX: z\r\n\r\nv\r\n--" + boundary + "--\r\n");
    CHECK(basicAuth("admin", "Admin123") == "Basic YWRtaW46QWRtaW4xMjM=");
    CHECK(urlEncode("1.2.840/x y&z=é") == "1.2.840%2Fx%20y%26z%3D%C3%A9");
}
