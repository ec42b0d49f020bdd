// The engine's log: every line of `junction run` (a channel's events, the
// engine's own) goes through here, at a level, in text or JSON, to the
// process's streams or to a file (junction.yaml `log:`). The text format is
// the one the engine has always written ("[ris-orders] info: ...",
// "junction: warning: ..."); JSON writes one object per line
// {"time", "level", "channel"?, "text"}. A file is opened for appending and
// reopened by reopenLog() (SIGUSR1 after logrotate moved it).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace junction::util {

enum class LogLevel { Error, Warn, Info, Debug };
const char* toString(LogLevel level);
std::optional<LogLevel> parseLogLevel(std::string_view word);  // error warn info debug

enum class LogFormat { Text, Json };

struct LogOptions {
    std::string file;  // "" = stdout/stderr, as the line asks
    LogLevel level = LogLevel::Info;
    LogFormat format = LogFormat::Text;
};

// Applies `options` (opening the file, and making its folder when missing);
// throws std::runtime_error when the file cannot be opened, and the previous
// settings stay.
void configureLog(const LogOptions& options);
// Opens the log file again under its name (a rotated file is let go); false,
// and the old file kept, when it cannot be opened. Nothing to do without a file.
bool reopenLog();
// Whether lines of `level` are written.
bool logEnabled(LogLevel level);

// Where a line goes when the log has no file.
enum class LogStream { Out, Err };

// A line of a channel: "[channel] level: text" in text format.
void logChannel(LogLevel level, std::string_view channel, std::string_view text);
// A line of the engine written as it is in text format ("junction: running, ...");
// in JSON its text is `text` and its channel `channel` when not empty.
void logLine(LogLevel level, std::string_view text, LogStream stream = LogStream::Err, std::string_view channel = {});

// "2026-12-07T20:43:08.123Z": the time of a JSON line, an alert's webhook.
std::string isoTimeUtc(std::chrono::system_clock::time_point t);

}  // namespace junction::util
