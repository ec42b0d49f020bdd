// The engine's log (engine/util/log.h): levels, the text lines as the engine
// has always written them, JSON lines, and a file reopened after it was moved.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/util/log.h"

using namespace junction::util;

namespace {

std::string readAll(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

struct LogDir {
    std::string dir;
    LogDir() {
        char tmpl[] = "/tmp/junction-log-test-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        dir = tmpl;
    }
    ~LogDir() {
        configureLog({});  // back to the process's streams
        std::filesystem::remove_all(dir);
    }
};

}  // namespace

TEST_CASE("log levels: words, and the least level written", "[util][log]") {
    CHECK(parseLogLevel("error") == LogLevel::Error);
    CHECK(parseLogLevel("warn") == LogLevel::Warn);
    CHECK(parseLogLevel("info") == LogLevel::Info);
    CHECK(parseLogLevel("debug") == LogLevel::Debug);
    CHECK_FALSE(parseLogLevel("loud"));
    LogDir d;
    configureLog({d.dir + "/a.log", LogLevel::Warn, LogFormat::Text});
    CHECK(logEnabled(LogLevel::Error));
    CHECK(logEnabled(LogLevel::Warn));
    CHECK_FALSE(logEnabled(LogLevel::Info));
    logChannel(LogLevel::Info, "ris", "not written");
    logChannel(LogLevel::Warn, "ris", "destination out is failing");
    logLine(LogLevel::Error, "junction: warning: written as it is");
    logLine(LogLevel::Debug, "junction: not written either", LogStream::Out);
    CHECK(readAll(d.dir + "/a.log") ==
          "[ris] warn: destination out is failing\njunction: warning: written as it is\n");
}

TEST_CASE("log in JSON: one object per line, channel only on a channel's lines", "[util][log]") {
    LogDir d;
    configureLog({d.dir + "/j.log", LogLevel::Debug, LogFormat::Json});
    logChannel(LogLevel::Info, "ris", "following \"changes\"\n");
    logLine(LogLevel::Debug, "junction: running");
    std::string text = readAll(d.dir + "/j.log");
    std::istringstream lines(text);
    std::string first, second, extra;
    REQUIRE(std::getline(lines, first));
    REQUIRE(std::getline(lines, second));
    CHECK_FALSE(std::getline(lines, extra));
    CHECK(first.rfind("{\"time\":\"", 0) == 0);
    CHECK(first.find("Z\",\"level\":\"info\",\"channel\":\"ris\",\"text\":\"following \\\"changes\\\"\\n\"}") !=
          std::string::npos);
    CHECK(second.find("\"level\":\"debug\",\"text\":\"junction: running\"}") != std::string::npos);
    CHECK(second.find("channel") == std::string::npos);
}

TEST_CASE("log file: reopened under its name after it was moved", "[util][log]") {
    LogDir d;
    const std::string path = d.dir + "/junction.log";
    configureLog({path, LogLevel::Info, LogFormat::Text});
    logLine(LogLevel::Info, "before");
    std::filesystem::rename(path, path + ".1");
    logLine(LogLevel::Info, "still to the moved file");
    CHECK(reopenLog());
    logLine(LogLevel::Info, "after");
    CHECK(readAll(path + ".1") == "before\nstill to the moved file\n");
    CHECK(readAll(path) == "after\n");
    // A file that cannot be opened (its folder is a file) is an error at
    // configuration, and the log stays as it was.
    CHECK_THROWS(configureLog({path + "/x.log", LogLevel::Info, LogFormat::Text}));
    logLine(LogLevel::Info, "kept");
    CHECK(readAll(path) == "after\nkept\n");
    // A missing folder is made.
    configureLog({d.dir + "/new/folder/j.log", LogLevel::Info, LogFormat::Text});
    logLine(LogLevel::Info, "in a new folder");
    CHECK(readAll(d.dir + "/new/folder/j.log") == "in a new folder\n");
}

TEST_CASE("ISO times in UTC with milliseconds", "[util][log]") {
    auto t = std::chrono::system_clock::time_point(std::chrono::milliseconds(1796676188123LL));
    CHECK(isoTimeUtc(t) == "2026-12-07T20:43:08.123Z");
}
