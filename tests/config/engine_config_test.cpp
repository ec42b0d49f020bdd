#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "engine/config/engine_config.h"

using namespace junction::config;
namespace fs = std::filesystem;

namespace {
struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("junction-config-" + std::to_string(::getpid()) + "-" +
                                            std::to_string(reinterpret_cast<std::uintptr_t>(this)));
        fs::create_directories(path);
    }
    ~TempDir() { fs::remove_all(path); }
    std::string write(const std::string& name, const std::string& text) {
        fs::path p = path / name;
        fs::create_directories(p.parent_path());
        std::ofstream(p) << text;
        return p.string();
    }
};
// Loading `text` fails with an error that starts with the file and `place`
// ("2" or "2:15") and says `needle`.
void expectError(TempDir& t, const std::string& text, const std::string& place, const std::string& needle) {
    std::string file = t.write("bad.yaml", text);
    INFO(text);
    try {
        loadEngineConfig(file);
        FAIL("no error");
    } catch (const ConfigError& e) {
        CHECK_THAT(e.what(), Catch::StartsWith(file + ":" + place) && Catch::Contains(needle));
    }
}
}  // namespace

TEST_CASE("engine config: defaults and relative paths", "[config]") {
    TempDir t;
    std::string file = t.write("junction.yaml",
                               "store: { type: sqlite, path: data/j.db }\nchannels: ch\nadmin: { port: 9090, session_timeout: 30m }\n");
    EngineConfig c = loadEngineConfig(file);
    CHECK(c.admin.sessionTimeout == std::chrono::minutes(30));
    CHECK(c.store.type == "sqlite");
    CHECK(c.store.path == (t.path / "data/j.db").string());
    CHECK(c.channelsDir == (t.path / "ch").string());
    CHECK(c.admin.port == 9090);
    t.write("ch/b.yaml", "channel: b\n");
    t.write("ch/a.yml", "channel: a\n");
    t.write("ch/notes.txt", "x");
    auto files = listChannelFiles(c);
    REQUIRE(files.size() == 2);
    CHECK(fs::path(files[0]).filename() == "a.yml");
    CHECK(readChannelName(files[1]) == "b");

    std::string empty = t.write("empty.yaml", "");
    EngineConfig d = loadEngineConfig(empty);
    CHECK(d.admin.port == 8080);
    CHECK(d.admin.sessionTimeout == std::chrono::hours(8));
    CHECK(d.store.path == (t.path / "var/junction.db").string());
    CHECK(d.channelsDir == (t.path / "channels").string());
}

TEST_CASE("engine config: errors carry file:line and a hint", "[config]") {
    TempDir t;
    auto expectError = [&](const std::string& text, int line, const std::string& needle) {
        ::expectError(t, text, std::to_string(line) + ":", needle);
    };
    expectError("store: { type: sqlite }\nchanels: x\n", 2, "unknown key 'chanels'");
    expectError("admin:\n  port: eighty\n", 2, "admin.port must be a whole number");
    expectError("admin:\n  port: 70000\n", 2, "between 0 and 65535");
    expectError("admin:\n  session_timeout: 5s\n", 2, "admin.session_timeout");
    expectError("admin:\n  session_timout: 1h\n", 2, "unknown key 'session_timout'");
    expectError("store:\n  type: oracle\n", 2, "one of: sqlite, postgres");
    expectError("store:\n  type: postgres\n  url: postgresql://j@localhost/j\n", 2,
                "store type 'postgres' is not available in this build");
    expectError("store: [1, 2]\n", 1, "must be a mapping");
    expectError("admin: { port: 1\n", 2, "");  // YAML syntax error
    CHECK_THROWS_AS(loadEngineConfig(std::string("/nonexistent/junction.yaml")), ConfigError);
    std::string noName = t.write("c.yaml", "source: { type: mllp }\n");
    CHECK_THROWS_WITH(readChannelName(noName), Catch::Contains("missing key 'channel'"));
}

TEST_CASE("engine config: Orthanc servers by name", "[config]") {
    TempDir t;
    std::string file = t.write("junction.yaml",
                               "orthanc:\n"
                               "  main: { url: http://127.0.0.1:8042, username: junction, password: s3cret, timeout: 10s }\n"
                               "  research:\n"
                               "    url: https://pacs.example:8043\n"
                               "    tls: { ca: certs/ca.pem, verify: false }\n");
    EngineConfig c = loadEngineConfig(file);
    REQUIRE(c.orthanc.size() == 2);
    CHECK(c.orthanc[0].name == "main");
    CHECK(c.orthanc[0].url == "http://127.0.0.1:8042");
    CHECK(c.orthanc[0].username == "junction");
    CHECK(c.orthanc[0].password == "s3cret");
    CHECK(c.orthanc[0].timeout == std::chrono::seconds(10));
    CHECK(c.orthanc[0].tls.verify);
    CHECK(c.orthanc[1].name == "research");
    CHECK(c.orthanc[1].timeout == std::chrono::seconds(30));
    CHECK(c.orthanc[1].tls.ca == (t.path / "certs/ca.pem").string());
    CHECK_FALSE(c.orthanc[1].tls.verify);

    auto error = [&](const std::string& text) {
        std::string bad = t.write("bad.yaml", text);
        try {
            loadEngineConfig(bad);
        } catch (const ConfigError& e) {
            return std::to_string(e.line()) + ": " + e.what();
        }
        return std::string("no error");
    };
    CHECK_THAT(error("orthanc:\n  main: { username: a, password: b }\n"), Catch::StartsWith("2: ") && Catch::Contains("missing"));
    CHECK_THAT(error("orthanc:\n  main:\n    url: ftp://x\n"), Catch::StartsWith("3: ") && Catch::Contains("not an http:// or https:// URL"));
    CHECK_THAT(error("orthanc:\n  main: { url: http://x, username: a }\n"), Catch::Contains("username and password go together"));
    CHECK_THAT(error("orthanc:\n  main: { url: http://x, user: a }\n"), Catch::Contains("unknown key 'user'"));
    CHECK_THAT(error("orthanc: [a]\n"), Catch::Contains("orthanc must be a mapping"));
}

TEST_CASE("engine config: the store's text index is on unless turned off", "[config]") {
    TempDir t;
    CHECK(loadEngineConfig(t.write("on.yaml", "store: { path: j.db }\n")).store.textIndex);
    CHECK_FALSE(loadEngineConfig(t.write("off.yaml", "store: { path: j.db, text_index: false }\n")).store.textIndex);
    CHECK_THROWS_WITH(loadEngineConfig(t.write("bad.yaml", "store:\n  text_index: sometimes\n")),
                      Catch::Contains("store.text_index"));
    CHECK_THROWS_WITH(loadEngineConfig(t.write("typo.yaml", "store:\n  text_indexes: false\n")),
                      Catch::Contains("unknown key 'text_indexes'"));
}

TEST_CASE("engine config: log, events and alert rules", "[config]") {
    TempDir t;
    std::string file = t.write("junction.yaml",
                               "log: { file: log/j.log, level: warn, format: json }\n"
                               "events: { keep: 30d }\n"
                               "alerts:\n"
                               "  - name: ris-down\n"
                               "    when: destination_retrying\n"
                               "    channel: ris\n"
                               "    destination: out\n"
                               "    for: 2m\n"
                               "    actions: [log, { webhook: { url: 'http://127.0.0.1:9/h', headers: { X-A: b } } }]\n"
                               "  - { name: errs, when: errors, over: 5, window: 10m }\n"
                               "  - { name: hook-only, when: channel_stopped, actions: [{ webhook: { url: 'https://x' } }] }\n");
    EngineConfig c = loadEngineConfig(file);
    CHECK(c.log.file == (t.path / "log/j.log").string());
    CHECK(c.log.level == "warn");
    CHECK(c.log.format == "json");
    CHECK(c.events.keep == std::chrono::hours(24 * 30));
    REQUIRE(c.alerts.size() == 3);
    const auto& a = c.alerts[0];
    CHECK(a.name == "ris-down");
    CHECK(a.forTime == std::chrono::minutes(2));
    CHECK(a.logAction);
    REQUIRE(a.webhooks.size() == 1);
    CHECK(a.webhooks[0].headers == std::vector<std::pair<std::string, std::string>>{{"X-A", "b"}});
    CHECK(a.webhooks[0].timeout == std::chrono::seconds(5));
    CHECK(a.text() == "destination_retrying on channel ris destination out for 2m");
    CHECK(c.alerts[1].text() == "errors over 5 in 10m");
    CHECK(c.alerts[1].logAction);  // no actions: log
    CHECK_FALSE(c.alerts[2].logAction);
    CHECK(loadEngineConfig(t.write("d.yaml", "")).events.keep == std::chrono::hours(24 * 90));
}

TEST_CASE("engine config: bad log and alert settings carry file:line:column", "[config]") {
    TempDir t;
    auto expectError = [&](const std::string& text, const std::string& place, const std::string& needle) {
        ::expectError(t, text, place, needle);
    };
    expectError("log: { level: loud }\n", "1:15", "one of: error, warn, info, debug");
    expectError("log: { colour: red }\n", "1:8", "unknown key 'colour'");
    expectError("alerts:\n  - { name: a, when: errors, window: 5x }\n", "2:38", "window");
    expectError("alerts:\n  - { name: a, when: errors, overr: 5 }\n", "2:30", "unknown key 'overr'");
    expectError("alerts:\n  - { name: a, when: sometimes }\n", "2:22", "one of: errors");
    expectError("alerts:\n  - { when: errors }\n", "2:5", "name");
    expectError("alerts:\n  - { name: a, when: no_messages }\n", "2:5", "no_messages needs a channel");
    expectError("alerts:\n  - { name: a, when: errors, actions: [shout] }\n", "2:40", "unknown action 'shout'");
    expectError("alerts:\n  - { name: a, when: errors, actions: [{ webhook: { url: ftp://x } }] }\n", "2:58",
                "not an http:// or https:// URL");
    expectError("alerts:\n  - { name: a, when: errors }\n  - { name: a, when: queue_depth }\n", "3:13",
                "alert name 'a' is used twice");
    expectError("alerts: { name: a }\n", "1:9", "alerts must be a list");
}
