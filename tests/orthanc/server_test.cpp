// engine/orthanc against a real Orthanc: calls with the configured
// credentials, and checks that name the server and say what is wrong.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "engine/orthanc/server.h"
#include "tests/orthanc/orthanc_fixture.h"

using namespace junction;

namespace {
orthanc::ServerOptions server(std::string name, std::string url, std::string user, std::string password) {
    orthanc::ServerOptions o;
    o.name = std::move(name);
    o.url = std::move(url);
    o.username = std::move(user);
    o.password = std::move(password);
    return o;
}
std::string readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}
orthanc_test::OrthancProcess& peer() {
    static orthanc_test::OrthancProcess p;
    return p;
}
}  // namespace

TEST_CASE("an Orthanc server is called with its credentials and checked", "[orthanc]") {
    orthanc::Server server(::server("main", peer().url() + "/", peer().user(), peer().password()));
    CHECK(server.check().empty());

    http::Result r = server.call("POST", "/instances", readFile(std::string(JUNCTION_SOURCE_DIR) + "/samples/dicom/ct_small.dcm"),
                                 "application/dicom");
    REQUIRE(r.answered);
    CHECK(r.response.status == 200);
    CHECK(r.response.body.find("\"ParentStudy\"") != std::string::npos);
    r = server.call("GET", "/changes?since=0&limit=10");
    CHECK(r.response.status == 200);
    CHECK(r.response.body.find("NewInstance") != std::string::npos);

    orthanc::Server wrong(::server("main", peer().url(), peer().user(), "not-the-password"));
    std::string why = wrong.check();
    CHECK(why.find("orthanc server 'main' (" + peer().url() + "): GET /system: 401") == 0);
    CHECK(why.find("wrong username or password") != std::string::npos);

    orthanc::Server gone(::server("backup", "http://127.0.0.1:" + std::to_string(orthanc_test::freePort()), "u", "p"));
    why = gone.check();
    CHECK(why.find("orthanc server 'backup'") == 0);
    CHECK(why.find("connection refused") != std::string::npos);
}

TEST_CASE("Orthanc servers are found by name, and a name is given once", "[orthanc]") {
    orthanc::Servers servers;
    servers.add(server("main", "http://127.0.0.1:1", "", ""));
    servers.add(server("research", "http://127.0.0.1:2", "", ""));
    CHECK(servers.find("main") != nullptr);
    CHECK(servers.find("other") == nullptr);
    CHECK(servers.names() == std::vector<std::string>{"main", "research"});
    CHECK_THROWS_WITH(servers.add(server("main", "http://x", "", "")), "orthanc server 'main' named twice");
}
