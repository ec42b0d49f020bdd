// Helpers shared by the files that implement Channel (channel.cpp,
// channel_intake.cpp, channel_delivery.cpp). Internal to engine/core.
#pragma once

#include <chrono>
#include <string>

#include "engine/lua/script.h"
#include "engine/store/message_log.h"

namespace junction::core::detail {

// A script's log line as a line of its message's log.
inline store::LogEntry logEntry(const lua::LogLine& l, std::string stage, std::chrono::system_clock::time_point now) {
    store::LogLevel level = l.level == lua::LogLine::Error ? store::LogLevel::Error
                          : l.level == lua::LogLine::Warn  ? store::LogLevel::Warn
                                                           : store::LogLevel::Info;
    return {now, std::move(stage), level, l.where.empty() ? l.text : l.where + ": " + l.text};
}

inline std::chrono::microseconds since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t);
}

}  // namespace junction::core::detail
