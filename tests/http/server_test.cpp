// The HTTP server (engine/http/server.h), driven by the HTTP client and raw
// sockets: requests reach the handler whole, bodies over the bound get 413,
// a throwing handler 500, a taken port a clear error, connections told.
#include <catch2/catch.hpp>

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/http/client.h"
#include "engine/http/server.h"
#include "tests/support/raw_http.h"
#include "tests/support/test_certificates.h"

using namespace junction::http;

using test_support::rawExchange;

TEST_CASE("the HTTP server hands each request whole to its handler and sends its answer", "[http]") {
    std::mutex m;
    ServerRequest seen;
    ServerOptions o;
    o.host = "127.0.0.1";
    Server server(o, [&](const ServerRequest& r) {
        {
            std::lock_guard<std::mutex> lock(m);
            seen = r;
        }
        if (r.path == "/boom") throw std::runtime_error("handler \"failed\"");
        return ServerResponse{202, "application/json", {{"X-Message-Id", "42"}}, "{\"id\":42}"};
    });
    server.start();
    REQUIRE(server.port() > 0);
    Client client;
    std::string base = "http://127.0.0.1:" + std::to_string(server.port());
    Result r = client.send({"POST", base + "/in/orders?source=ris&x=a%20b", {{"Authorization", "Bearer t0k"}}, "MSH|^~\\&|"});
    REQUIRE(r.answered);
    CHECK(r.response.status == 202);
    CHECK(r.response.body == "{\"id\":42}");
    CHECK(r.response.header("X-Message-Id") == "42");
    {
        std::lock_guard<std::mutex> lock(m);
        CHECK(seen.method == "POST");
        CHECK(seen.path == "/in/orders");
        CHECK(seen.param("source") == "ris");
        CHECK(seen.param("x") == "a b");
        CHECK(seen.param("none").empty());
        CHECK(seen.header("authorization") == "Bearer t0k");
        CHECK(seen.body == "MSH|^~\\&|");
        CHECK(seen.peer.rfind("127.0.0.1:", 0) == 0);
    }
    r = client.send({"GET", base + "/boom", {}, {}});
    CHECK(r.response.status == 500);
    CHECK(r.response.body == "{\"error\": \"handler \\\"failed\\\"\"}");
    server.stop();
    CHECK_FALSE(client.send({"GET", base + "/", {}, {}}).answered);
}

TEST_CASE("the HTTP server refuses a body over its bound with 413", "[http]") {
    std::atomic<int> handled{0};
    ServerOptions o;
    o.host = "127.0.0.1";
    o.maxBodyBytes = 1000;
    Server server(o, [&](const ServerRequest&) {
        ++handled;
        return ServerResponse{};
    });
    server.start();
    Client client;
    std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/";
    Result r = client.send({"POST", url, {}, std::string(1001, 'x')});
    CHECK(r.response.status == 413);
    CHECK(r.response.reason == "Request Entity Too Large");  // the reason of the status, not "OK"
    CHECK(r.response.body.find("larger than 1000") != std::string::npos);
    CHECK(client.send({"POST", url, {}, std::string(1000, 'x')}).response.status == 200);
    // Chunked, with no length announced: cut at the bound as well.
    std::string chunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i) chunked += "200\r\n" + std::string(512, 'y') + "\r\n";
    chunked += "0\r\n\r\n";
    std::string answer = rawExchange(server.port(), chunked);
    CHECK(answer.rfind("HTTP/1.1 413", 0) == 0);
    CHECK(handled == 1);
}

TEST_CASE("an HTTP server whose port is taken says so", "[http]") {
    Poco::Net::ServerSocket taken;
    taken.bind(Poco::Net::SocketAddress("127.0.0.1", 0), true, false);
    taken.listen();
    ServerOptions o;
    o.host = "127.0.0.1";
    o.port = taken.address().port();
    Server server(o, [](const ServerRequest&) { return ServerResponse{}; });
    try {
        server.start();
        FAIL("started on a taken port");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(o.port)) == 0);
    }
}

TEST_CASE("the HTTP server tells each connection's opening and closing, and the ones it turned away", "[http]") {
    std::mutex m;
    std::condition_variable cv;
    std::vector<std::pair<std::string, std::string>> events;
    bool release = false;
    int inHandler = 0;
    ServerOptions o;
    o.host = "127.0.0.1";
    o.threads = 1;
    o.maxQueued = 1;
    o.event = [&](const std::string& type, const std::string& text) {
        std::lock_guard<std::mutex> lock(m);
        events.emplace_back(type, text);
        cv.notify_all();
    };
    Server server(o, [&](const ServerRequest&) {
        std::unique_lock<std::mutex> lock(m);
        ++inHandler;
        cv.notify_all();
        cv.wait(lock, [&] { return release; });
        return ServerResponse{};
    });
    server.start();
    auto connect = [&] {
        return Poco::Net::StreamSocket(Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(server.port())));
    };
    const std::string get = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    auto busy = connect();  // takes the one thread
    busy.sendBytes(get.data(), static_cast<int>(get.size()));
    {
        std::unique_lock<std::mutex> lock(m);
        REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return inHandler == 1; }));
    }
    auto waiting = connect();  // waits for it
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto away = connect();  // turned away: the one thread busy, one waiting
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    waiting.sendBytes(get.data(), static_cast<int>(get.size()));
    {
        std::lock_guard<std::mutex> lock(m);
        release = true;
    }
    cv.notify_all();
    auto count = [&](const std::string& type) {
        return std::count_if(events.begin(), events.end(), [&](const auto& e) { return e.first == type; });
    };
    {
        std::unique_lock<std::mutex> lock(m);
        REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return count("connection.closed") == 2; }));
        CHECK(count("connection.opened") == 2);
        REQUIRE(count("connection.refused") == 1);
        for (const auto& [type, text] : events) {
            INFO(type << ": " << text);
            if (type == "connection.refused")
                CHECK(text == "1 connection(s) turned away: all 1 threads busy and 1 waiting");
            else
                CHECK(text.rfind("connection from 127.0.0.1:", 0) == 0);
        }
        CHECK(events.front().second == "connection from " + busy.address().toString());
    }
    server.stop();
}

TEST_CASE("an HTTPS server tells a connection that failed its TLS handshake, with why", "[http]") {
    static test_support::Certificates certs(R"(
ca ca "Test CA"
issue server 127.0.0.1 ca "subjectAltName=IP:127.0.0.1\n")");
    std::mutex m;
    std::vector<std::pair<std::string, std::string>> events;
    ServerOptions o;
    o.host = "127.0.0.1";
    o.tls.enabled = true;
    o.tls.cert = certs("server.pem");
    o.tls.key = certs("server.key");
    o.event = [&](const std::string& type, const std::string& text) {
        std::lock_guard<std::mutex> lock(m);
        events.emplace_back(type, text);
    };
    Server server(o, [](const ServerRequest&) { return ServerResponse{200, "text/plain", {}, "secure"}; });
    server.start();
    // Plain HTTP to the TLS port: no handshake.
    std::string answer = rawExchange(server.port(), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(answer.find("secure") == std::string::npos);
    auto closed = [&] {
        std::lock_guard<std::mutex> lock(m);
        for (const auto& [type, text] : events)
            if (type == "connection.closed") return text;
        return std::string();
    };
    for (int i = 0; i < 100 && closed().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    INFO(closed());
    CHECK(closed().rfind("connection from 127.0.0.1:", 0) == 0);
    CHECK(closed().find(" (") != std::string::npos);  // and why
    // A TLS client is served.
    ClientOptions co;
    co.tls.ca = certs("ca.pem");
    Result r = Client(co).send({"GET", "https://127.0.0.1:" + std::to_string(server.port()) + "/", {}, {}});
    INFO(r.error);
    CHECK(r.response.body == "secure");
    server.stop();
}
