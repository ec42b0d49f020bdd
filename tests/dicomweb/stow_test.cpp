// STOW-RS (connectors/dicomweb/stow.h) against a real Orthanc with its
// DICOMweb plugin: reports built by engine/dicom stored into the study of a
// sample CT, through a server of junction.yaml and by URL; a wrong root, a
// wrong study, wrong credentials and a server that is down; and, against a
// server of the test, the request's form and what each answer means.
#include <catch2/catch.hpp>

#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>

#include "connectors/dicomweb/stow.h"
#include "engine/dicom/report_instance.h"
#include "engine/http/server.h"
#include "engine/orthanc/server.h"
#include "tests/orthanc/orthanc_fixture.h"

using namespace junction;
using dicomweb::StowClient;
using dicomweb::StowResult;
using dicomweb::StowTarget;

namespace {

const std::string kStudyUid = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";  // samples/dicom/ct_small.dcm
const std::string kStudy = R"({"PatientID": "1CT1", "PatientName": "CompressedSamples^CT1", "StudyInstanceUID": ")" +
                           kStudyUid + R"("})";

orthanc_test::OrthancProcess& peer() {
    static orthanc_test::OrthancProcess p;
    return p;
}

orthanc::Server& mainServer() {
    static orthanc::Servers servers = [] {
        orthanc::Servers s;
        orthanc::ServerOptions o;
        o.name = "main";
        o.url = peer().url();
        o.username = peer().user();
        o.password = peer().password();
        s.add(o);
        std::ifstream ct(std::string(JUNCTION_SOURCE_DIR) + "/samples/dicom/ct_small.dcm", std::ios::binary);
        std::ostringstream bytes;
        bytes << ct.rdbuf();
        REQUIRE(s.find("main")->call("POST", "/instances", bytes.str(), "application/dicom").response.status == 200);
        return s;
    }();
    return *servers.find("main");
}

// The instance's study in Orthanc (its StudyInstanceUID), "" when Orthanc does not have it.
std::string studyOfInstance(const std::string& sopInstanceUid) {
    http::Result r = mainServer().call("POST", "/tools/lookup", sopInstanceUid, "text/plain");
    std::smatch m;
    if (!std::regex_search(r.response.body, m, std::regex(R"re("ID"\s*:\s*"([0-9a-f-]+)")re"))) return {};
    r = mainServer().call("GET", "/instances/" + m[1].str() + "/study");
    if (!std::regex_search(r.response.body, m, std::regex(R"re("StudyInstanceUID"\s*:\s*"([0-9.]+)")re"))) return {};
    return m[1].str();
}

}  // namespace

TEST_CASE("STOW-RS stores a report into its study on an Orthanc of junction.yaml", "[dicomweb]") {
    StowTarget t;
    t.server = &mainServer();
    StowClient client(t);
    CHECK(client.describe() == "orthanc 'main' /dicom-web");

    dicom::ReportOptions o;
    o.observer = "WELBY^MARCUS";
    dicom::ReportInstance sr = dicom::basicTextSr(kStudy, "IMPRESSION: normal.", o);
    dicom::ReportInstance pdf = dicom::encapsulatedPdf(kStudy, "%PDF-1.4\n%%EOF\n");
    StowResult r = client.store({sr.bytes, pdf.bytes}, kStudyUid);
    INFO(r.error << r.answer);
    CHECK(r.kind == StowResult::Kind::Stored);
    CHECK(r.stored == 2);
    CHECK(r.failed == 0);
    CHECK(r.answer.find(sr.sopInstanceUid) != std::string::npos);  // ReferencedSOPSequence
    CHECK(studyOfInstance(sr.sopInstanceUid) == kStudyUid);
    CHECK(studyOfInstance(pdf.sopInstanceUid) == kStudyUid);

    // Into another study's URL: the server refuses the instance, and says so.
    dicom::ReportInstance other = dicom::basicTextSr(kStudy, "text");
    r = client.store({other.bytes}, "1.2.3.4");
    INFO(r.error << r.answer);
    CHECK(r.kind == StowResult::Kind::Error);
    CHECK(r.failed == 1);
    CHECK(r.error.find("POST /dicom-web/studies/1.2.3.4") != std::string::npos);
    CHECK(r.error.find(other.sopInstanceUid) != std::string::npos);
    CHECK(studyOfInstance(other.sopInstanceUid).empty());

    // A root that is not there: an error (retrying would not help), the answer kept.
    t.root = "/no-dicom-web/";
    StowClient nowhere(t);
    r = nowhere.store({other.bytes}, kStudyUid);
    CHECK(r.kind == StowResult::Kind::Error);
    CHECK(r.error.find("orthanc server 'main'") == 0);
    CHECK(r.error.find("POST /no-dicom-web/studies/" + kStudyUid + ": 404") != std::string::npos);
}

TEST_CASE("STOW-RS by URL with basic authentication, wrong credentials and a server that is down", "[dicomweb]") {
    mainServer();
    StowTarget t;
    t.url = peer().url() + "/dicom-web/";
    t.username = peer().user();
    t.password = peer().password();
    StowClient client(t);
    CHECK(client.describe() == peer().url() + "/dicom-web");
    dicom::ReportInstance sr = dicom::basicTextSr(kStudy, "by URL");
    StowResult r = client.store({sr.bytes});  // no study in the URL: POST /studies
    INFO(r.error << r.answer);
    CHECK(r.kind == StowResult::Kind::Stored);
    CHECK(studyOfInstance(sr.sopInstanceUid) == kStudyUid);

    t.password = "not-the-password";
    r = StowClient(t).store({sr.bytes});
    CHECK(r.kind == StowResult::Kind::Error);
    CHECK(r.error.find("401") != std::string::npos);

    t.url = "http://127.0.0.1:" + std::to_string(orthanc_test::freePort()) + "/dicom-web";
    r = StowClient(t).store({sr.bytes});
    CHECK(r.kind == StowResult::Kind::Retry);
    CHECK(r.error.find("refused") != std::string::npos);
}

TEST_CASE("a STOW-RS request's form, and what each answer means", "[dicomweb]") {
    std::mutex m;
    http::ServerRequest seen;
    int status = 200;
    std::string answer;
    http::ServerOptions so;
    so.host = "127.0.0.1";
    http::Server server(so, [&](const http::ServerRequest& req) {
        std::lock_guard<std::mutex> lock(m);
        seen = req;
        http::ServerResponse out;
        out.status = status;
        out.contentType = "application/dicom+json";
        out.body = answer;
        return out;
    });
    server.start();
    StowTarget t;
    t.url = "http://127.0.0.1:" + std::to_string(server.port()) + "/wado";
    t.bearer = "t0k3n";
    StowClient client(t);
    const std::string one = std::string(128, '\0') + "DICM one", two = std::string(128, '\0') + "DICM two";

    answer = R"({"00081199": {"vr": "SQ", "Value": [{}, {}]}})";
    StowResult r = client.store({one, two}, "1.2.3");
    CHECK(r.kind == StowResult::Kind::Stored);
    CHECK(r.stored == 2);
    CHECK(r.answer == answer);
    {
        std::lock_guard<std::mutex> lock(m);
        CHECK(seen.method == "POST");
        CHECK(seen.path == "/wado/studies/1.2.3");
        CHECK(seen.header("Authorization") == "Bearer t0k3n");
        CHECK(seen.header("Accept") == "application/dicom+json");
        std::smatch b;
        std::string type = seen.header("Content-Type");
        REQUIRE(std::regex_match(type, b, std::regex(R"(multipart/related; type="application/dicom"; boundary=(\S+))")));
        const std::string boundary = b[1].str();
        CHECK(seen.body == "--" + boundary + "\r\nContent-Type: application/dicom\r\n\r\n" + one + "\r\n--" + boundary +
                               "\r\nContent-Type: application/dicom\r\n\r\n" + two + "\r\n--" + boundary + "--\r\n");
    }

    // 202 with a refused instance: an error naming it and the reason.
    status = 202;
    answer = R"({"00081199": {"vr": "SQ", "Value": [{}]}, "00081198": {"vr": "SQ", "Value": [
                 {"00081155": {"vr": "UI", "Value": ["1.2.3.9"]}, "00081197": {"vr": "US", "Value": [49152]}}]}})";
    r = client.store({one, two}, "1.2.3");
    CHECK(r.kind == StowResult::Kind::Error);
    CHECK(r.failed == 1);
    CHECK(r.error.find("1 of 2 instances refused: 1.2.3.9 (0xC000 cannot understand)") != std::string::npos);
    CHECK(r.answer == answer);

    // 202 with warnings only (values coerced): stored.
    answer = R"({"00081199": {"vr": "SQ", "Value": [{"00081196": {"vr": "US", "Value": [45056]}}]}})";
    CHECK(client.store({one}).kind == StowResult::Kind::Stored);

    status = 409;
    answer = R"({"00081198": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3.9"]}}]}})";
    r = client.store({one}, "1.2.3");
    CHECK(r.kind == StowResult::Kind::Error);
    CHECK(r.error.find(": 409 ") != std::string::npos);

    status = 400;
    answer = "not a DICOM file";
    r = client.store({one});
    CHECK(r.kind == StowResult::Kind::Error);
    INFO(r.error);
    CHECK(r.error.find("/wado/studies: 400 ") != std::string::npos);
    CHECK(r.error.find(": not a DICOM file") != std::string::npos);  // an answer that is no DICOM JSON, quoted

    for (int s : {503, 429}) {
        status = s;
        answer = "busy";
        CHECK(client.store({one}).kind == StowResult::Kind::Retry);
    }
}
