// The admin API's repairs of messages over real HTTP: a message reprocessed
// (as received and edited) into its channel and linked to the original, a
// search result reprocessed, a delivery sent again by its destination, a
// message deleted, and a selection exported as an HL7 file and as a zip that
// unzip accepts.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/admin/admin_test_support.h"

using namespace junction;
using namespace junction::testing;
using admin::Role;

namespace {

const std::string kOrder = "MSH|^~\\&|RIS|H|EMR|H|20261207120000||ORM^O01|CTL1|P|2.5.1\rPID|||PAT1\rORC|NW|ACC1\r";

// Puts a file into a source's folder whole (written beside it, then renamed in):
// the source never reads it half written.
void drop(AdminFixture& f, const std::string& folder, const std::string& name, const std::string& content) {
    std::filesystem::create_directories(f.dir.str() + "/" + folder);
    std::filesystem::rename(f.dir.write("staging/" + name, content), f.dir.str() + "/" + folder + "/" + name);
}

// Drops a message into the file channel's folder and waits until it is sent: its id.
store::MessageId sendThroughFiles(AdminFixture& f, const std::string& name, const std::string& content) {
    drop(f, "in", name, content);
    store::MessageId id = 0;
    REQUIRE(eventually([&] {
        store::SearchQuery q;
        q.channel = "files";
        for (const auto& m : f.engine->store().search(q))
            if (m.status == store::Status::Sent && m.source.find(name) != std::string::npos) id = m.id;
        return id != 0;
    }));
    return id;
}

store::Status statusOf(AdminFixture& f, store::MessageId id) {
    auto d = f.engine->store().get(id);
    return d ? d->summary.status : store::Status::Received;
}

std::uint64_t sentBy(AdminFixture& f, const std::string& channel) {
    auto c = f.engine->channel(channel);
    return c && !c->destinations.empty() ? c->destinations[0].counters.sent : 0;
}

std::string outFile(AdminFixture& f, long long id) { return f.dir.str() + "/out/" + std::to_string(id) + ".hl7"; }

std::string readAll(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("a message is reprocessed into its channel as a new message linked to the original", "[admin]") {
    AdminFixture f;
    auto id = sendThroughFiles(f, "order.hl7", kOrder);
    const std::string base = "/api/v1/messages/" + std::to_string(id);

    auto r = f.as(Role::Operator, "POST", base + "/reprocess");
    REQUIRE(r.status == 201);
    auto copy = jsonObject(r.body)->getValue<std::int64_t>("id");
    CHECK(jsonObject(r.body)->getValue<std::int64_t>("original") == id);
    CHECK(copy > id);
    REQUIRE(eventually([&] { return statusOf(f, copy) == store::Status::Sent; }));
    CHECK(readAll(outFile(f, copy)) == readAll(outFile(f, id)));

    auto detail = jsonObject(f.as(Role::Viewer, "GET", "/api/v1/messages/" + std::to_string(copy)).body);
    CHECK(detail->getValue<std::int64_t>("original") == id);
    CHECK(detail->getArray("copies")->size() == 0);
    CHECK(detail->getValue<std::string>("source") == "reprocess of #" + std::to_string(id) + " by op");
    CHECK(detail->getValue<std::string>("control_id") == "CTL1");

    // Edited: the new message carries the edit to the destination.
    std::string edited = kOrder;
    edited.replace(edited.find("PAT1"), 4, "PAT2");
    r = f.as(Role::Operator, "POST", base + "/reprocess", R"({"raw": ")" + [&] {
        std::string escaped;
        for (char c : edited) escaped += c == '\r' ? std::string("\\r") : c == '\\' ? std::string("\\\\") : std::string(1, c);
        return escaped;
    }() + "\"}");
    REQUIRE(r.status == 201);
    auto editedCopy = jsonObject(r.body)->getValue<std::int64_t>("id");
    REQUIRE(eventually([&] { return statusOf(f, editedCopy) == store::Status::Sent; }));
    CHECK(readAll(outFile(f, editedCopy)).find("PID|||PAT2") != std::string::npos);
    auto edit = jsonObject(f.as(Role::Viewer, "GET", "/api/v1/messages/" + std::to_string(editedCopy)).body);
    CHECK(edit->getValue<std::string>("patient_id") == "PAT2");

    auto original = jsonObject(f.as(Role::Viewer, "GET", base).body);
    CHECK(original->isNull("original"));
    auto copies = original->getArray("copies");
    REQUIRE(copies->size() == 2);
    CHECK(copies->getElement<std::int64_t>(0) == copy);
    CHECK(copies->getElement<std::int64_t>(1) == editedCopy);

    // Links survive a restart of the store (they are in the database).
    f.engine->store().flush();
    CHECK(f.engine->store().get(editedCopy)->original == id);

    CHECK(f.as(Role::Operator, "POST", "/api/v1/messages/987654/reprocess").status == 404);
    CHECK(f.as(Role::Operator, "POST", base + "/reprocess", R"({"raw": 5})").status == 400);
    REQUIRE(f.engine->stopChannel("files"));
    r = f.as(Role::Operator, "POST", base + "/reprocess");
    CHECK(r.status == 409);
    CHECK(jsonErrorText(r).find("channel 'files' is not running") != std::string::npos);
}

TEST_CASE("a search result is reprocessed only when confirmed", "[admin]") {
    AdminFixture f;
    auto a = sendThroughFiles(f, "a.hl7", kOrder);
    auto b = sendThroughFiles(f, "b.hl7", kOrder);
    CHECK(f.as(Role::Operator, "POST", "/api/v1/messages/reprocess", R"({"channel": "files"})").status == 400);
    auto r = f.as(Role::Operator, "POST", "/api/v1/messages/reprocess", R"({"channel": "files", "confirm": false})");
    CHECK(r.status == 400);
    CHECK(jsonErrorText(r).find("confirm") != std::string::npos);
    CHECK(f.as(Role::Operator, "POST", "/api/v1/messages/reprocess", R"({"limit": 0, "confirm": true})").status == 400);

    r = f.as(Role::Operator, "POST", "/api/v1/messages/reprocess",
             R"({"channel": "files", "status": "SENT", "text": "PAT1", "confirm": true})");
    REQUIRE(r.status == 200);
    auto o = jsonObject(r.body);
    CHECK(o->getValue<int>("reprocessed") == 2);
    auto ids = o->getArray("ids");
    REQUIRE(ids->size() == 2);
    // Oldest first: the copies keep the originals' order.
    CHECK(f.engine->store().get(ids->getElement<std::int64_t>(0))->original == a);
    CHECK(f.engine->store().get(ids->getElement<std::int64_t>(1))->original == b);
    REQUIRE(eventually([&] { return statusOf(f, ids->getElement<std::int64_t>(1)) == store::Status::Sent; }));

    r = f.as(Role::Operator, "POST", "/api/v1/messages/reprocess", R"({"text": "no such text", "confirm": true})");
    CHECK(jsonObject(r.body)->getValue<int>("reprocessed") == 0);
    REQUIRE(f.engine->stopChannel("files"));
    CHECK(f.as(Role::Operator, "POST", "/api/v1/messages/reprocess", R"({"channel": "files", "confirm": true})").status ==
          409);
}

TEST_CASE("a delivery is sent again by its destination with its stored content", "[admin]") {
    AdminFixture f;
    auto id = sendThroughFiles(f, "order.hl7", kOrder);
    const std::string base = "/api/v1/messages/" + std::to_string(id);
    REQUIRE(eventually([&] { return sentBy(f, "files") == 1; }));
    std::filesystem::remove(outFile(f, id));

    auto r = f.as(Role::Operator, "POST", base + "/resend", R"({"destination": "out"})");
    REQUIRE(r.status == 202);
    auto o = jsonObject(r.body);
    CHECK(o->getValue<std::int64_t>("id") == id);
    CHECK(o->getValue<std::string>("destination") == "out");
    CHECK(o->getValue<std::string>("status") == "QUEUED");
    REQUIRE(eventually([&] { return sentBy(f, "files") == 2 && statusOf(f, id) == store::Status::Sent; }));
    CHECK(readAll(outFile(f, id)) == kOrder);
    auto detail = jsonObject(f.as(Role::Viewer, "GET", base).body);
    CHECK(detail->getArray("deliveries")->getObject(0)->getValue<std::string>("status") == "SENT");
    CHECK(detail->getArray("deliveries")->getObject(0)->getValue<int>("attempts") == 1);

    // Several times in a row: each is sent once (no duplicate in the queue).
    for (int i = 0; i < 3; ++i) {
        REQUIRE(eventually([&] {
            return f.as(Role::Operator, "POST", base + "/resend", R"({"destination": "out"})").status == 202;
        }));
        REQUIRE(eventually([&] { return sentBy(f, "files") == 3u + i && statusOf(f, id) == store::Status::Sent; }));
    }
    f.engine->store().flush();
    CHECK(sentBy(f, "files") == 5);

    CHECK(f.as(Role::Operator, "POST", base + "/resend", R"({"destination": "elsewhere"})").status == 404);
    CHECK(f.as(Role::Operator, "POST", "/api/v1/messages/987654/resend", R"({"destination": "out"})").status == 404);
    CHECK(f.as(Role::Operator, "POST", base + "/resend", "{}").status == 400);
    REQUIRE(f.engine->stopChannel("files"));
    CHECK(f.as(Role::Operator, "POST", base + "/resend", R"({"destination": "out"})").status == 409);
}

TEST_CASE("a delivery whose content was not kept cannot be resent", "[admin]") {
    AdminFixture f;
    f.dir.write("channels/lean.yaml",
                "channel: lean\n"
                "storage: production\n"
                "source: { type: file, directory: lean-in, poll_interval: 100ms }\n"
                "destinations:\n"
                "  - { name: out, type: file, directory: lean-out }\n");
    auto reload = f.engine->reloadChannels();
    REQUIRE(reload.added == std::vector<std::string>{"lean"});
    drop(f, "lean-in", "m.hl7", kOrder);
    store::MessageId id = 0;
    REQUIRE(eventually([&] {
        store::SearchQuery q;
        q.channel = "lean";
        q.status = store::Status::Sent;
        auto found = f.engine->store().search(q);
        if (!found.empty()) id = found.front().id;
        return id != 0;
    }));
    auto r = f.as(Role::Operator, "POST", "/api/v1/messages/" + std::to_string(id) + "/resend", R"({"destination": "out"})");
    CHECK(r.status == 409);
    CHECK(jsonErrorText(r).find("not kept") != std::string::npos);
    // Its raw content is kept: reprocessing works.
    CHECK(f.as(Role::Operator, "POST", "/api/v1/messages/" + std::to_string(id) + "/reprocess").status == 201);
}

TEST_CASE("a message is deleted with its content, not while the engine still works on it", "[admin]") {
    AdminFixture f;
    auto id = sendThroughFiles(f, "order.hl7", kOrder);
    auto copy = jsonObject(f.as(Role::Operator, "POST", "/api/v1/messages/" + std::to_string(id) + "/reprocess").body)
                    ->getValue<std::int64_t>("id");
    REQUIRE(eventually([&] { return statusOf(f, copy) == store::Status::Sent; }));
    const std::string path = "/api/v1/messages/" + std::to_string(copy);
    CHECK(f.as(Role::Operator, "DELETE", path).status == 403);
    auto r = f.as(Role::Admin, "DELETE", path);
    CHECK(r.status == 204);
    CHECK(r.body.empty());
    CHECK(f.as(Role::Viewer, "GET", path).status == 404);
    CHECK(f.as(Role::Admin, "DELETE", path).status == 404);
    // The original no longer lists it.
    CHECK(jsonObject(f.as(Role::Viewer, "GET", "/api/v1/messages/" + std::to_string(id)).body)->getArray("copies")->size() == 0);

    // A message still RECEIVED (stored, not processed: no channel of that name runs).
    store::NewMessage m;
    m.channel = "archive";
    m.raw = kOrder;
    store::MessageId received = 0;
    f.engine->store().insert(std::move(m), [&](store::MessageId newId, const std::string&) { received = newId; });
    f.engine->store().flush();
    REQUIRE(received > 0);
    r = f.as(Role::Admin, "DELETE", "/api/v1/messages/" + std::to_string(received));
    CHECK(r.status == 409);
    CHECK(f.engine->store().get(received));
}

TEST_CASE("a selection is exported as an HL7 file or a zip", "[admin]") {
    AdminFixture f;
    auto a = sendThroughFiles(f, "a.hl7", kOrder);
    std::string second = kOrder;
    second.replace(second.find("CTL1"), 4, "CTL2");
    auto b = sendThroughFiles(f, "b.hl7", second);

    auto r = f.as(Role::Viewer, "GET", "/api/v1/messages/export?channel=files");
    REQUIRE(r.status == 200);
    CHECK(r.header("Content-Type").find("text/plain") == 0);
    CHECK(r.header("Content-Disposition") == "attachment; filename=\"messages.hl7\"");
    auto lines = [](std::string s) {
        std::string out;
        for (char c : s) out += c == '\r' ? std::string("\r\n") : std::string(1, c);
        return out;
    };
    CHECK(r.body == lines(kOrder) + "\r\n" + lines(second));  // oldest first, a blank line between

    r = f.as(Role::Viewer, "GET", "/api/v1/messages/export?control_id=CTL2&name=ctl2.hl7");
    CHECK(r.header("Content-Disposition") == "attachment; filename=\"ctl2.hl7\"");
    CHECK(r.body == lines(second));
    r = f.as(Role::Viewer, "GET", "/api/v1/messages/export?text=CTL2");
    CHECK(r.body == lines(second));

    for (const char* bad : {"..%2Fetc%2Fpasswd", "a%2Fb", ".hidden", "x%20y", "na%22me", "%C3%A9t%C3%A9"}) {
        INFO(bad);
        auto e = f.as(Role::Viewer, "GET", std::string("/api/v1/messages/export?name=") + bad);
        CHECK(e.status == 400);
        CHECK(jsonErrorText(e).find("name") != std::string::npos);
    }
    CHECK(f.as(Role::Viewer, "GET", "/api/v1/messages/export?format=tar").status == 400);

    r = f.as(Role::Viewer, "GET", "/api/v1/messages/export?channel=files&format=zip&name=files.zip");
    REQUIRE(r.status == 200);
    CHECK(r.header("Content-Type") == "application/zip");
    CHECK(r.header("Content-Disposition") == "attachment; filename=\"files.zip\"");
    const std::string zip = f.dir.str() + "/files.zip";
    {
        std::ofstream out(zip, std::ios::binary);
        out << r.body;
    }
    CHECK(std::system(("unzip -tq " + zip + " > /dev/null").c_str()) == 0);
    const std::string unpacked = f.dir.str() + "/unpacked";
    REQUIRE(std::system(("unzip -q " + zip + " -d " + unpacked).c_str()) == 0);
    CHECK(readAll(unpacked + "/" + std::to_string(a) + ".hl7") == kOrder);
    CHECK(readAll(unpacked + "/" + std::to_string(b) + ".hl7") == second);
}
