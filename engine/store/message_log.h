// A message's log: what processing said about it (a filter's reason, the
// scripts' log.* lines, errors) and each destination's delivery attempts.
// Kept with the message (in its day partition's content table) and shown with
// it; bounded per stage and per line so that a chatty script cannot grow a
// message without limit.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace junction::store {

enum class Status;

enum class LogLevel { Info, Warn, Error };
const char* toString(LogLevel level);  // "info", "warn", "error"

struct LogEntry {
    std::chrono::system_clock::time_point time;
    std::string stage;  // "source", "filter", "transform" or "destination:<name>"
    LogLevel level = LogLevel::Info;
    std::string text;
};

// One attempt to deliver a message to a destination.
struct DeliveryAttempt {
    std::chrono::system_clock::time_point time;
    Status status;  // Sent, Error, or Queued (failed, retried later)
    std::string error;
};

// Bounds of what is kept: lines per stage (past it one line says how many were
// left out) and bytes per line (a longer line is cut and says so); attempts per
// delivery (past it only the last attempt is kept).
constexpr std::size_t kLogLinesPerStage = 50;
constexpr std::size_t kLogLineBytes = 2048;
constexpr int kAttemptsKept = 50;

// The stored form: one text line per entry, so that entries written at
// different times are appended by concatenation.
std::string encodeLog(const std::vector<LogEntry>& entries);  // bounded as said above
std::vector<LogEntry> decodeLog(std::string_view data);
std::string encodeAttempt(const DeliveryAttempt& attempt);
std::vector<DeliveryAttempt> decodeAttempts(std::string_view data);

}  // namespace junction::store
