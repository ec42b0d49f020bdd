// What the route tables of engine/admin share: answers, times, the JSON of
// counters and latency, and the schemas of these.
#pragma once

#include <chrono>
#include <string>

#include "engine/admin/api.h"
#include "engine/admin/json_writer.h"
#include "engine/core/stats.h"

namespace junction::admin {

// A JSON answer.
inline ApiResponse jsonAnswer(const JsonWriter& w, int status = 200) { return {status, w.str(), "application/json", {}}; }

// "2026-12-07T18:15:00.123Z" (UTC).
std::string isoTime(std::chrono::system_clock::time_point t);
// Parses an ISO 8601 time ("2026-12-07T18:15:00Z", with an offset, or a date
// alone); throws ApiError 400 naming `what`.
std::chrono::system_clock::time_point parseIsoTime(const std::string& text, const std::string& what);

// The `limit` query parameter of a paged list: 1 to 1000, 100 when absent;
// ApiError 400 outside.
std::int64_t pageLimit(const Fields& query);

void writeCounters(JsonWriter& w, const core::CountersSnapshot& c);
void writeLatency(JsonWriter& w, const core::Histogram::Snapshot& h);
Schema countersSchema(std::string description = "counts since the engine started");
Schema latencySchema();

}  // namespace junction::admin
