// The admin API's message routes: search the store (by channel, time range,
// status, message type, control id, patient id, accession number), newest
// first, paged by id (keyset: each page says where the next one starts), and
// one message with every content stage and its deliveries.
#include <algorithm>
#include <charconv>

#include "engine/admin/admin_server.h"
#include "engine/admin/message_filters.h"
#include "engine/admin/route_support.h"
#include "engine/core/engine.h"

namespace junction::admin {

namespace {

Schema summarySchema() {
    return object({{"id", integer(), true},
                   {"channel", string(), true},
                   {"received", string("ISO 8601"), true},
                   {"status", words(messageStatuses()), true},
                   {"data_type", string(), true},
                   {"source", string("where it came from"), true},
                   {"type", string("message type, e.g. ORM^O01"), true},
                   {"control_id", string(), true},
                   {"patient_id", string(), true},
                   {"accession", string(), true},
                   {"error", string(), true}});
}

void writeSummary(JsonWriter& w, const store::MessageSummary& m) {
    w.field("id", static_cast<std::int64_t>(m.id))
        .field("channel", m.channel)
        .field("received", isoTime(m.receivedAt))
        .field("status", store::toString(m.status))
        .field("data_type", m.dataType)
        .field("source", m.source)
        .field("type", m.meta.messageType)
        .field("control_id", m.meta.controlId)
        .field("patient_id", m.meta.patientId)
        .field("accession", m.meta.accession)
        .field("error", m.error);
}

Schema logSchema() {
    return object({{"time", string("ISO 8601"), true},
                   {"stage", string("source, filter, transform or destination:<name>"), true},
                   {"level", words({"info", "warn", "error"}), true},
                   {"text", string(), true}});
}

Schema attemptSchema() {
    return object({{"time", string("ISO 8601"), true},
                   {"status", words({"SENT", "ERROR", "QUEUED"}), true},
                   {"error", string(), true}});
}

void writeLog(JsonWriter& w, const std::vector<store::LogEntry>& log) {
    w.key("log").beginArray();
    for (const auto& e : log)
        w.beginObject()
            .field("time", isoTime(e.time))
            .field("stage", e.stage)
            .field("level", store::toString(e.level))
            .field("text", e.text)
            .endObject();
    w.endArray();
}

void writeHistory(JsonWriter& w, const std::vector<store::DeliveryAttempt>& history) {
    w.key("history").beginArray();
    for (const auto& a : history)
        w.beginObject()
            .field("time", isoTime(a.time))
            .field("status", store::toString(a.status))
            .field("error", a.error)
            .endObject();
    w.endArray();
}

}  // namespace

std::vector<Route> messageRoutes(AdminContext& ctx) {
    std::vector<Route> routes;

    Route search{"GET", "/api/v1/messages", Role::Viewer, "messages",
                 "Search stored messages, newest first; `next` is the `before` of the following page"};
    auto filters = messageFilterProperties();
    filters.push_back({"before", integer("only ids lower than this (the previous page's next)")});
    filters.push_back({"limit", integer("1 to 1000, default 100")});
    search.query = object(std::move(filters));
    search.response = object({{"messages", array(summarySchema()), true},
                              {"next", nullable(integer("the `before` of the next page; null on the last page")), true}});
    search.handler = [&ctx](const ApiRequest& req) {
        const Fields& q = req.query;
        store::SearchQuery sq = messageFilters(q);
        sq.beforeId = q.integer("before", 0);
        if (sq.beforeId < 0) throw ApiError(400, "before must be a message id");
        auto limit = messageLimit(q);
        // One more than asked: whether there is a next page.
        sq.limit = static_cast<int>(limit) + 1;
        auto found = ctx.engine.store().search(sq);
        bool more = found.size() > static_cast<std::size_t>(limit);
        if (more) found.resize(static_cast<std::size_t>(limit));
        JsonWriter w;
        w.beginObject().key("messages").beginArray();
        for (const auto& m : found) {
            w.beginObject();
            writeSummary(w, m);
            w.endObject();
        }
        w.endArray().key("next");
        if (more) w.value(static_cast<std::int64_t>(found.back().id));
        else w.null();
        w.endObject();
        return jsonAnswer(w);
    };
    routes.push_back(std::move(search));

    Route one{"GET", "/api/v1/messages/{id}", Role::Viewer, "messages",
              "One message: raw and transformed content, its log, and each delivery's encoded content, response, error and attempts"};
    Schema detail = summarySchema();
    detail.properties.push_back({"raw", string("as received (empty when not kept)"), true});
    detail.properties.push_back({"transformed", string("after the channel's transformer (empty when not kept)"), true});
    detail.properties.push_back({"original", nullable(integer("the message this one reprocesses")), true});
    detail.properties.push_back({"copies", array(integer(), "the messages that reprocess this one"), true});
    detail.properties.push_back(
        {"deliveries",
         array(object({{"destination", string(), true},
                       {"status", words(destinationStatuses()), true},
                       {"attempts", integer(), true},
                       {"next_attempt", nullable(string("ISO 8601")), true},
                       {"updated", nullable(string("ISO 8601")), true},
                       {"encoded", string("what was (or is to be) sent"), true},
                       {"response", string("the destination's answer"), true},
                       {"error", string(), true},
                       {"history", array(attemptSchema()), true}})),
         true});
    detail.properties.push_back({"log", array(logSchema()), true});
    one.response = detail;
    one.errors = {404};
    one.handler = [&ctx](const ApiRequest& req) {
        const std::string& text = req.pathParam("id");
        store::MessageId id = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
        auto m = ec == std::errc() && end == text.data() + text.size() && id > 0 ? ctx.engine.store().get(id)
                                                                                 : std::nullopt;
        if (!m) throw ApiError(404, "no message " + text);
        JsonWriter w;
        w.beginObject();
        writeSummary(w, m->summary);
        w.field("raw", m->raw).field("transformed", m->transformed).key("deliveries").beginArray();
        auto when = [&w](const std::optional<store::Clock::time_point>& t) {
            if (t) w.value(isoTime(*t));
            else w.null();
        };
        for (const auto& d : m->deliveries) {
            w.beginObject()
                .field("destination", d.destination)
                .field("status", store::toString(d.status))
                .field("attempts", d.attempts)
                .key("next_attempt");
            when(d.nextAttempt);
            w.key("updated");
            when(d.updatedAt);
            w.field("encoded", d.encoded).field("response", d.response).field("error", d.error);
            writeHistory(w, d.history);
            w.endObject();
        }
        w.endArray();
        writeLog(w, m->log);
        w.key("original");
        if (m->original) w.value(static_cast<std::int64_t>(*m->original));
        else w.null();
        w.key("copies").beginArray();
        for (auto copy : m->copies) w.value(static_cast<std::int64_t>(copy));
        w.endArray().endObject();
        return jsonAnswer(w);
    };
    routes.push_back(std::move(one));
    return routes;
}

}  // namespace junction::admin
