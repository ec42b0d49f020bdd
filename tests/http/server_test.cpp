// The HTTP server (engine/http/server.h), driven by the HTTP client and raw
// sockets: requests reach the handler whole, bodies over the bound get 413,
// a throwing handler 500, a taken port a clear error.
#include <catch2/catch.hpp>

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>

#include <atomic>
#include <mutex>
#include <string>

#include "engine/http/client.h"
#include "engine/http/server.h"
#include "tests/support/raw_http.h"

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
