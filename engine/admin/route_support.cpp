// Helpers shared by the admin API's route tables (route_support.h).
#include "engine/admin/route_support.h"

#include <Poco/DateTime.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>
#include <Poco/Timestamp.h>

#include <regex>

namespace junction::admin {

std::string isoTime(std::chrono::system_clock::time_point t) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
    return Poco::DateTimeFormatter::format(Poco::Timestamp(us), "%Y-%m-%dT%H:%M:%S.%iZ");
}

std::chrono::system_clock::time_point parseIsoTime(const std::string& text, const std::string& what) {
    static const std::regex iso(R"(\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?)");
    try {
        if (!std::regex_match(text, iso)) throw ApiError(400, "");
        int tz = 0;
        Poco::DateTime dt;
        bool ok = text.size() == 10 ? Poco::DateTimeParser::tryParse("%Y-%m-%d", text, dt, tz)
                                    : Poco::DateTimeParser::tryParse(Poco::DateTimeFormat::ISO8601_FRAC_FORMAT, text, dt, tz);
        if (!ok) throw ApiError(400, "");
        dt.makeUTC(tz);
        auto us = dt.timestamp().epochMicroseconds();
        return std::chrono::system_clock::time_point(std::chrono::microseconds(us));
    } catch (const ApiError&) {
    } catch (const Poco::Exception&) {
    }
    throw ApiError(400, what + ": '" + text + "' is not an ISO 8601 time such as 2026-12-07T18:15:00Z");
}

std::int64_t pageLimit(const Fields& query) {
    auto limit = query.integer("limit", 100);
    if (limit < 1 || limit > 1000) throw ApiError(400, "limit is from 1 to 1000");
    return limit;
}

void writeCounters(JsonWriter& w, const core::CountersSnapshot& c) {
    w.beginObject()
        .field("received", c.received)
        .field("filtered", c.filtered)
        .field("queued", c.queued)
        .field("sent", c.sent)
        .field("errored", c.errored)
        .field("retried", c.retried)
        .endObject();
}

void writeLatency(JsonWriter& w, const core::Histogram::Snapshot& h) {
    w.beginObject()
        .field("count", h.count)
        .field("mean_us", h.meanUs)
        .field("p50_us", h.p50Us)
        .field("p90_us", h.p90Us)
        .field("p99_us", h.p99Us)
        .field("max_us", h.maxUs)
        .endObject();
}

Schema countersSchema(std::string description) {
    return object({{"received", integer(), true},
                   {"filtered", integer(), true},
                   {"queued", integer(), true},
                   {"sent", integer(), true},
                   {"errored", integer(), true},
                   {"retried", integer(), true}},
                  std::move(description));
}

Schema latencySchema() {
    return object({{"count", integer(), true},
                   {"mean_us", number(), true},
                   {"p50_us", number(), true},
                   {"p90_us", number(), true},
                   {"p99_us", number(), true},
                   {"max_us", number(), true}},
                  "latency in microseconds");
}

}  // namespace junction::admin
