// The engine's log (log.h): one mutex around the writes, the file's handle
// swapped on reopen, JSON lines quoted with json_text.h.
#include "engine/util/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <stdexcept>

#include "engine/util/json_text.h"

namespace junction::util {

namespace {

struct State {
    std::mutex mutex;
    LogOptions options;
    std::FILE* file = nullptr;
    std::atomic<int> level{static_cast<int>(LogLevel::Info)};
};

State& state() {
    static State s;
    return s;
}

std::FILE* openFile(const std::string& path) {
    std::error_code ec;
    auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);  // a failure shows at the open
    std::FILE* f = std::fopen(path.c_str(), "a");
    if (!f) throw std::runtime_error("cannot open the log file " + path);
    return f;
}

}  // namespace

std::string isoTimeUtc(std::chrono::system_clock::time_point t) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
    return buf;
}

namespace {

void write(LogLevel level, std::string_view channel, std::string_view text, std::string_view textLine,
           LogStream stream) {
    if (!logEnabled(level)) return;
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    std::string line;
    if (s.options.format == LogFormat::Json) {
        line = "{\"time\":\"" + isoTimeUtc(std::chrono::system_clock::now()) + "\",\"level\":\"" + toString(level) + "\"";
        if (!channel.empty()) {
            line += ",\"channel\":";
            appendJsonString(line, channel, NonUtf8::Latin1);
        }
        line += ",\"text\":";
        appendJsonString(line, text, NonUtf8::Latin1);
        line += "}\n";
    } else {
        line.assign(textLine);
        line += '\n';
    }
    std::FILE* out = s.file ? s.file : stream == LogStream::Out ? stdout : stderr;
    std::fwrite(line.data(), 1, line.size(), out);
    std::fflush(out);
}

}  // namespace

const char* toString(LogLevel level) {
    switch (level) {
        case LogLevel::Error: return "error";
        case LogLevel::Warn: return "warn";
        case LogLevel::Info: return "info";
        case LogLevel::Debug: return "debug";
    }
    return "info";
}

std::optional<LogLevel> parseLogLevel(std::string_view word) {
    for (LogLevel l : {LogLevel::Error, LogLevel::Warn, LogLevel::Info, LogLevel::Debug})
        if (word == toString(l)) return l;
    if (word == "warning") return LogLevel::Warn;
    return std::nullopt;
}

void configureLog(const LogOptions& options) {
    State& s = state();
    std::FILE* f = options.file.empty() ? nullptr : openFile(options.file);
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.file) std::fclose(s.file);
    s.file = f;
    s.options = options;
    s.level = static_cast<int>(options.level);
}

bool reopenLog() {
    State& s = state();
    std::string path;
    {
        std::lock_guard<std::mutex> lock(s.mutex);
        path = s.options.file;
    }
    if (path.empty()) return true;
    std::FILE* f = std::fopen(path.c_str(), "a");
    if (!f) return false;
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.file) std::fclose(s.file);
    s.file = f;
    return true;
}

bool logEnabled(LogLevel level) { return static_cast<int>(level) <= state().level.load(std::memory_order_relaxed); }

void logChannel(LogLevel level, std::string_view channel, std::string_view text) {
    if (!logEnabled(level)) return;
    std::string textLine = "[" + std::string(channel) + "] " + toString(level) + ": " + std::string(text);
    write(level, channel, text, textLine, LogStream::Err);
}

void logLine(LogLevel level, std::string_view text, LogStream stream, std::string_view channel) {
    write(level, channel, text, text, stream);
}

}  // namespace junction::util
