// The `http` destination (connectors/http) against the engine's HTTP server
// as the peer: the requests it makes (templated URL and headers, auth, body,
// content type, multipart bytes), what each answer means for the delivery,
// the answer it keeps, time-outs and abort, and the settings it refuses.
#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "connectors/http/http_connectors.h"
#include "engine/config/node.h"
#include "engine/http/client.h"
#include "engine/http/server.h"

using namespace junction;
using namespace std::chrono_literals;

namespace {

// A peer that records every request and answers with `reply`'s response.
class Sink {
public:
    using Reply = std::function<http::ServerResponse(const http::ServerRequest&)>;
    explicit Sink(Reply reply = {}) : reply_(std::move(reply)) {
        http::ServerOptions o;
        o.host = "127.0.0.1";
        server_ = std::make_unique<http::Server>(o, [this](const http::ServerRequest& r) {
            {
                std::lock_guard<std::mutex> lock(m_);
                seen_.push_back(r);
            }
            return reply_ ? reply_(r) : http::ServerResponse{200, "application/json", {}, "{\"ok\":true}"};
        });
        server_->start();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
    std::vector<http::ServerRequest> seen() {
        std::lock_guard<std::mutex> lock(m_);
        return seen_;
    }
    http::ServerRequest last() {
        auto all = seen();
        REQUIRE_FALSE(all.empty());
        return all.back();
    }

private:
    Reply reply_;
    std::mutex m_;
    std::vector<http::ServerRequest> seen_;
    std::unique_ptr<http::Server> server_;
};

const core::ConnectorRegistry& registry() {
    static const core::ConnectorRegistry r = [] {
        core::ConnectorRegistry reg;
        connectors::registerHttp(reg);
        return reg;
    }();
    return r;
}

config::Node conf(const std::string& yaml) { return config::loadYamlString(yaml, "channel.yaml"); }

std::unique_ptr<core::Destination> destination(const std::string& yaml) {
    core::BuildContext ctx;
    ctx.channel = "orders";
    ctx.baseDir = "/srv/junction";
    return registry().destination("http")->create(conf("name: emr\ntype: http\n" + yaml), ctx);
}

std::string refusal(const std::string& yaml) {
    core::BuildContext ctx;
    ctx.baseDir = "/srv/junction";
    try {
        registry().destination("http")->validate(conf("name: emr\ntype: http\n" + yaml), ctx);
    } catch (const config::ConfigError& e) {
        return e.what();
    }
    return "accepted";
}

std::string sample(const std::string& name) {
    std::ifstream in(std::string(JUNCTION_SOURCE_DIR) + "/samples/hl7/" + name, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

core::Outbound message(std::string content, long long id = 7) {
    core::Outbound m;
    m.messageId = id;
    m.channel = "orders";
    m.destination = "emr";
    m.content = std::move(content);
    return m;
}

}  // namespace

TEST_CASE("http destination: URL and headers from the message, the content as the body", "[http_connectors]") {
    Sink sink;
    auto d = destination("url: " + sink.url() + "/api/orders/${MSH-10}?patient=${PID-5}&id=${id}\n"
                         "method: PUT\n"
                         "headers: { X-Source: junction, X-Patient: \"${PID-3.1}\", Accept: application/json }\n");
    std::string hl7 = sample("orm_o01_nw.hl7");
    core::SendResult r = d->send(message(hl7));
    CHECK(r.kind == core::SendResult::Kind::Ok);
    auto req = sink.last();
    CHECK(req.method == "PUT");
    CHECK(req.path == "/api/orders/ORM0001");
    CHECK(req.query == "patient=DOE%5EJANE%5EMARIE%5E%5EMRS&id=7");  // field values URL-encoded
    CHECK(req.param("patient") == "DOE^JANE^MARIE^^MRS");
    CHECK(req.header("X-Source") == "junction");
    CHECK(req.header("X-Patient") == "MRN482913");
    CHECK(req.header("Accept") == "application/json");
    CHECK(req.header("Content-Type") == "x-application/hl7-v2+er7");
    CHECK(req.header("Authorization").empty());
    CHECK(req.body == hl7);

    // JSON content: JSON Pointer fields, application/json; a value with '/' stays in its segment.
    auto j = destination("url: " + sink.url() + "/fhir/Patient/${/id}\nmethod: PATCH\n");
    std::string patient = R"({"resourceType": "Patient", "id": "p/1"})";
    CHECK(j->send(message(patient)).kind == core::SendResult::Kind::Ok);
    CHECK(sink.last().method == "PATCH");
    CHECK(sink.last().path == "/fhir/Patient/p/1");  // the server decodes the path: it was sent as p%2F1
    CHECK(sink.last().header("Content-Type") == "application/json");
    CHECK(sink.last().body == patient);

    // content_type set; GET and DELETE send no body.
    auto x = destination("url: " + sink.url() + "/x\ncontent_type: application/fhir+json\n");
    CHECK(x->send(message("<a/>")).kind == core::SendResult::Kind::Ok);
    CHECK(sink.last().header("Content-Type") == "application/fhir+json");
    auto g = destination("url: " + sink.url() + "/lookup/${id}\nmethod: GET\n");
    CHECK(g->send(message("{\"a\": 1}", 12)).kind == core::SendResult::Kind::Ok);
    CHECK(sink.last().method == "GET");
    CHECK(sink.last().path == "/lookup/12");
    CHECK(sink.last().body.empty());
    CHECK(sink.last().header("Content-Type").empty());
    auto t = destination("url: " + sink.url() + "/t\n");
    CHECK(t->send(message("plain words")).kind == core::SendResult::Kind::Ok);
    CHECK(sink.last().header("Content-Type") == "text/plain");

    // body: none: a POST whose message only fills the URL (OpenMRS's updaterequeststatus).
    auto n = destination("url: " + sink.url() + "/status?study=${/study}&step=${/step}\nbody: none\n");
    CHECK(n->send(message(R"({"study": "1.2.3", "step": "SPS-1"})")).kind == core::SendResult::Kind::Ok);
    CHECK(sink.last().method == "POST");
    CHECK(sink.last().query == "study=1.2.3&step=SPS-1");
    CHECK(sink.last().body.empty());
    CHECK(sink.last().header("Content-Length") == "0");
    CHECK(sink.last().header("Content-Type").empty());
    CHECK(refusal("url: http://x/y\nbody: none\ncontent_type: text/plain\n").find("body: none sends no body") !=
          std::string::npos);
}

TEST_CASE("http destination: basic and bearer credentials", "[http_connectors]") {
    Sink sink;
    auto basic = destination("url: " + sink.url() + "/a\nauth: { type: basic, username: admin, password: Admin123 }\n");
    CHECK(basic->send(message("{}")).kind == core::SendResult::Kind::Ok);
    CHECK(sink.last().header("Authorization") == "Basic YWRtaW46QWRtaW4xMjM=");
    auto bearer = destination("url: " + sink.url() + "/b\nauth: { type: bearer, token: t0k.e-n }\n");
    CHECK(bearer->send(message("{}")).kind == core::SendResult::Kind::Ok);
    CHECK(sink.last().header("Authorization") == "Bearer t0k.e-n");
}

TEST_CASE("http destination: 2xx is sent, 4xx an error with the answer kept, 429 and 5xx retried", "[http_connectors]") {
    std::atomic<int> status{201};
    Sink sink([&](const http::ServerRequest&) {
        int s = status.load();
        return http::ServerResponse{s, "application/json", {{"Location", "/fhir/Patient/9"}},
                                    s < 300 ? "{\"id\":\"9\"}" : "{\"error\":\"patient \\\"x\\\" unknown\"}"};
    });
    auto d = destination("url: " + sink.url() + "/fhir/Patient?q=secret\n");
    core::SendResult ok = d->send(message("{}"));
    CHECK(ok.kind == core::SendResult::Kind::Ok);
    // {"status", "headers" (names in lower case, in order), "body"}
    CHECK_THAT(ok.response, Catch::StartsWith(R"({"status":201,"headers":{)"));
    CHECK_THAT(ok.response, Catch::Contains(R"("content-length":"10","content-type":"application/json",)"));
    CHECK_THAT(ok.response, Catch::Contains(R"("location":"/fhir/Patient/9"},"body":"{\"id\":\"9\"}"})"));

    status = 404;
    core::SendResult notFound = d->send(message("{}"));
    CHECK(notFound.kind == core::SendResult::Kind::Error);
    CHECK(notFound.error == "POST " + sink.url() + "/fhir/Patient: HTTP 404 Not Found: {\"error\":\"patient \\\"x\\\" unknown\"}");
    CHECK_THAT(notFound.response, Catch::StartsWith("{\"status\":404,") &&
                                      Catch::EndsWith(R"("body":"{\"error\":\"patient \\\"x\\\" unknown\"}"})"));
    status = 400;
    CHECK(d->send(message("{}")).kind == core::SendResult::Kind::Error);
    status = 429;
    core::SendResult busy = d->send(message("{}"));
    CHECK(busy.kind == core::SendResult::Kind::Retry);
    CHECK_THAT(busy.error, Catch::Contains("HTTP 429"));
    CHECK_THAT(busy.response, Catch::StartsWith("{\"status\":429,"));
    status = 500;
    CHECK(d->send(message("{}")).kind == core::SendResult::Kind::Retry);
    status = 503;
    CHECK(d->send(message("{}")).kind == core::SendResult::Kind::Retry);
    status = 302;
    CHECK(d->send(message("{}")).kind == core::SendResult::Kind::Error);
    status = 204;
    CHECK(d->send(message("{}")).kind == core::SendResult::Kind::Ok);
    CHECK(sink.seen().size() == 8);
}

TEST_CASE("http destination: an answer that is no text is kept as base64", "[http_connectors]") {
    Sink sink([](const http::ServerRequest&) {
        return http::ServerResponse{200, "image/png", {}, std::string("\x89PNG\r\n\x1a\n", 8)};
    });
    core::SendResult r = destination("url: " + sink.url() + "/render\n")->send(message("{}"));
    CHECK(r.kind == core::SendResult::Kind::Ok);
    CHECK_THAT(r.response, Catch::EndsWith("\"body_base64\":\"iVBORw0KGgo=\"}"));
}

TEST_CASE("http destination: no peer, a silent peer and abort() are retried", "[http_connectors]") {
    SECTION("refused") {
        std::string url;
        {
            Sink gone;
            url = gone.url();
        }
        core::SendResult r = destination("url: " + url + "/x\n")->send(message("{}"));
        CHECK(r.kind == core::SendResult::Kind::Retry);
        CHECK_THAT(r.error, Catch::Contains("connection refused"));
    }
    std::mutex m;
    std::condition_variable cv;
    bool arrived = false, release = false;
    Sink slow([&](const http::ServerRequest&) {
        std::unique_lock<std::mutex> lock(m);
        arrived = true;
        cv.notify_all();
        cv.wait_for(lock, 20s, [&] { return release; });
        return http::ServerResponse{200, "application/json", {}, "{}"};
    });
    // The peer answers only once let go (so any earlier end of a send is the client's).
    auto letGo = [&] {
        {
            std::lock_guard<std::mutex> lock(m);
            release = true;
        }
        cv.notify_all();
    };
    SECTION("timeout") {
        core::SendResult r = destination("url: " + slow.url() + "/x\ntimeout: 300ms\n")->send(message("{}"));
        letGo();  // the peer had not answered: it waits for this
        CHECK(r.kind == core::SendResult::Kind::Retry);
        CHECK_THAT(r.error, Catch::Contains("timed out"));
    }
    SECTION("abort") {
        auto d = destination("url: " + slow.url() + "/x\n");  // 30 s timeout: only abort() ends it early
        core::SendResult r;
        std::thread sender([&] { r = d->send(message("{}")); });
        {
            std::unique_lock<std::mutex> lock(m);
            REQUIRE(cv.wait_for(lock, 10s, [&] { return arrived; }));
        }
        d->abort();
        sender.join();
        letGo();  // the peer had not answered: it waits for this
        CHECK(r.kind == core::SendResult::Kind::Retry);
        CHECK_THAT(r.error, Catch::Contains("aborted"));
    }
}

TEST_CASE("http destination: body: multipart builds form-data from the message's JSON parts", "[http_connectors]") {
    Sink sink;
    auto d = destination("url: " + sink.url() + "/ws/rest/v1/attachment\nbody: multipart\n"
                         "auth: { type: basic, username: admin, password: Admin123 }\n");
    const std::string png("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
    core::SendResult r = d->send(message(R"([
        {"name": "patient", "value": "5b2f2c8a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"},
        {"name": "fileCaption", "value": "CT chest, série 1"},
        {"name": "file", "filename": "preview.png", "content_type": "image/png", "base64": "iVBORw0KGgoAAAANSUhEUg=="}
    ])"));
    REQUIRE(r.kind == core::SendResult::Kind::Ok);
    auto req = sink.last();
    std::string type = req.header("Content-Type");
    REQUIRE_THAT(type, Catch::StartsWith("multipart/form-data; boundary="));
    std::string b = type.substr(type.find('=') + 1);
    CHECK(req.body == "--" + b + "\r\n"
                      "Content-Disposition: form-data; name=\"patient\"\r\n\r\n"
                      "5b2f2c8a-1c2d-4e5f-8a9b-0c1d2e3f4a5b\r\n"
                      "--" + b + "\r\n"
                      "Content-Disposition: form-data; name=\"fileCaption\"\r\n\r\n"
                      "CT chest, s\xc3\xa9rie 1\r\n"
                      "--" + b + "\r\n"
                      "Content-Disposition: form-data; name=\"file\"; filename=\"preview.png\"\r\n"
                      "Content-Type: image/png\r\n\r\n" + png + "\r\n"
                      "--" + b + "--\r\n");
    CHECK(req.header("Authorization") == "Basic YWRtaW46QWRtaW4xMjM=");

    // A message that is no list of parts is an error at once (sending it again cannot help).
    auto refused = [&](const std::string& content) {
        core::SendResult e = d->send(message(content));
        CHECK(e.kind == core::SendResult::Kind::Error);
        return e.error;
    };
    std::size_t before = sink.seen().size();
    CHECK_THAT(refused("MSH|^~\\&|"), Catch::StartsWith("body: multipart needs the message to be a JSON array of parts, and it is not JSON"));
    CHECK(refused(R"({"name": "x"})") == "body: multipart needs the message to be a JSON array of parts");
    CHECK(refused("[]") == "body: multipart needs at least one part");
    CHECK(refused(R"([{"value": "v"}])") == "multipart part 1 has no name");
    CHECK(refused(R"([{"name": "a", "value": "v"}, {"name": "b"}])") == "multipart part 2 (b) needs one of value (text) or base64 (bytes)");
    CHECK(refused(R"([{"name": "a", "value": "v", "base64": "AA=="}])") == "multipart part 1 (a) needs one of value (text) or base64 (bytes)");
    CHECK(refused(R"([{"name": "a", "value": 5}])") == "multipart part 1: value must be a string");
    CHECK(refused(R"([{"name": "a", "value": "v", "file": "/etc/passwd"}])") ==
          "multipart part 1: unknown key 'file' (name, value or base64, filename, content_type)");
    CHECK(refused(R"([{"name": "a", "base64": "not base64!"}])") == "multipart part 1 (a): base64 is not base64");
    CHECK(refused(R"(["a"])") == "multipart part 1 is not an object");
    CHECK(sink.seen().size() == before);  // none of them was sent
}

TEST_CASE("http destination: settings that cannot work are refused at the key", "[http_connectors]") {
    CHECK(refusal("url: https://emr.example.org/api/${MSH-10}\n") == "accepted");
    CHECK_THAT(refusal("method: POST\n"), Catch::Contains("missing key 'url'"));
    CHECK_THAT(refusal("url: emr.example.org/api\n"), Catch::StartsWith("channel.yaml:3:6: url must start with http:// or https://"));
    CHECK_THAT(refusal("url: http://${MSH-4}/api\n"), Catch::Contains("the url's scheme, host and port cannot take fields"));
    CHECK_THAT(refusal("url: http://h/${nope}\n"), Catch::Contains("unknown field ${nope}"));
    CHECK_THAT(refusal("url: http://h/${MSH-10\n"), Catch::Contains("'${' without its '}'"));
    CHECK_THAT(refusal("url: http://h/\nmethod: HEAD\n"), Catch::Contains("method cannot be 'HEAD'"));
    CHECK_THAT(refusal("url: http://h/\nheaders: { X-A: \"${bad}\" }\n"), Catch::Contains("headers.X-A: unknown field ${bad}"));
    CHECK_THAT(refusal("url: http://h/\nheaders: { \"Bad Name\": x }\n"), Catch::Contains("'Bad Name' is no header name"));
    CHECK_THAT(refusal("url: http://h/\nheaders: { Content-Length: 5 }\n"), Catch::Contains("cannot set Content-Length"));
    CHECK_THAT(refusal("url: http://h/\nheaders: { authorization: x }\nauth: { type: bearer, token: t }\n"),
               Catch::Contains("headers sets Authorization and auth sets it too"));
    CHECK_THAT(refusal("url: http://h/\nheaders: { Content-Type: a/b }\ncontent_type: c/d\n"),
               Catch::Contains("headers sets Content-Type and content_type sets it too"));
    CHECK_THAT(refusal("url: http://h/\nauth: { type: basic }\n"), Catch::Contains("auth type basic needs username"));
    CHECK_THAT(refusal("url: http://h/\nauth: { type: bearer }\n"), Catch::Contains("auth type bearer needs token"));
    CHECK_THAT(refusal("url: http://h/\nauth: { type: basic, username: u, token: t }\n"),
               Catch::Contains("auth.token is for type: bearer"));
    CHECK_THAT(refusal("url: http://h/\nauth: { type: digest }\n"), Catch::Contains("auth.type cannot be 'digest'"));
    CHECK_THAT(refusal("url: http://h/\nmethod: GET\nbody: multipart\n"), Catch::Contains("body: multipart needs method POST, PUT or PATCH"));
    CHECK_THAT(refusal("url: http://h/\nbody: multipart\ncontent_type: a/b\n"), Catch::Contains("body: multipart sets the Content-Type itself"));
    CHECK_THAT(refusal("url: http://h/\ntls: { cert: c.pem }\n"), Catch::Contains("tls needs both cert and key, or neither"));
    CHECK_THAT(refusal("url: http://h/\ntimeout: 10ms\n"), Catch::Contains("timeout must be"));
    CHECK_THAT(refusal("url: http://h/\nport: 80\n"), Catch::Contains("unknown key 'port'"));
}
