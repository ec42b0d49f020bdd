// The message search's filters (message_filters.h).
#include "engine/admin/message_filters.h"

#include <algorithm>

#include "engine/admin/api.h"
#include "engine/admin/route_support.h"

namespace junction::admin {

const std::vector<std::string>& messageStatuses() {
    static const std::vector<std::string> statuses = {"RECEIVED", "FILTERED", "TRANSFORMED", "QUEUED", "SENT", "ERROR"};
    return statuses;
}

std::vector<Property> messageFilterProperties() {
    return {{"channel", string("channel name")},
            {"status", words(messageStatuses())},
            {"type", string("message type, e.g. ORM^O01")},
            {"control_id", string("MSH-10")},
            {"patient_id", string("PID-3.1")},
            {"accession", string("accession number")},
            {"destination", string("with a delivery to this destination")},
            {"destination_status", words(destinationStatuses(), "with a delivery (to `destination` when given) in this state")},
            {"from", string("received at or after (ISO 8601)")},
            {"to", string("received before (ISO 8601)")},
            {"text", string("in the raw content: a substring, any case, at least 3 characters")}};
}

const std::vector<std::string>& destinationStatuses() {
    static const std::vector<std::string> statuses = {"QUEUED", "SENT", "ERROR", "FILTERED"};
    return statuses;
}

store::SearchQuery messageFilters(const Fields& q) {
    store::SearchQuery sq;
    sq.channel = q.str("channel");
    if (q.has("status")) sq.status = store::parseStatus(q.str("status"));
    sq.messageType = q.str("type");
    sq.controlId = q.str("control_id");
    sq.patientId = q.str("patient_id");
    sq.accession = q.str("accession");
    sq.destination = q.str("destination");
    if (q.has("destination_status")) sq.destinationStatus = store::parseStatus(q.str("destination_status"));
    if (q.has("from")) sq.from = parseIsoTime(q.str("from"), "from");
    if (q.has("to")) sq.to = parseIsoTime(q.str("to"), "to");
    if (q.has("text")) {
        sq.text = q.str("text");
        auto chars = std::count_if(sq.text.begin(), sq.text.end(),
                                   [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
        if (chars < 3) throw ApiError(400, "text needs at least 3 characters");
    }
    return sq;
}

int messageLimit(const Fields& fields, int fallback) {
    auto limit = fields.integer("limit", fallback);
    if (limit < 1 || limit > 1000) throw ApiError(400, "limit is from 1 to 1000");
    return static_cast<int>(limit);
}

std::vector<store::MessageSummary> selectMessages(store::MessageStore& store, store::SearchQuery query, int limit) {
    query.limit = limit;
    return store.search(query);
}

}  // namespace junction::admin
