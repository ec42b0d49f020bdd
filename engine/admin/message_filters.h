// The message search's filters, shared by the routes that select messages the
// way GET /api/v1/messages does (its query parameters; the export's; the bulk
// reprocess's body): their schema properties and the store query they make.
#pragma once

#include <string>
#include <vector>

#include "engine/admin/schema.h"
#include "engine/store/message_store.h"

namespace junction::admin {

// RECEIVED FILTERED TRANSFORMED QUEUED SENT ERROR
const std::vector<std::string>& messageStatuses();

// A delivery's: QUEUED SENT ERROR FILTERED
const std::vector<std::string>& destinationStatuses();

// channel, status, type, control_id, patient_id, accession, destination,
// destination_status, text, from, to
// (without paging: before, limit).
std::vector<Property> messageFilterProperties();

// The store query of those filters; ApiError 400 for a bad time or a text
// shorter than 3 characters.
store::SearchQuery messageFilters(const Fields& fields);

// "limit": 1 to 1000, `fallback` when absent; ApiError 400 otherwise.
int messageLimit(const Fields& fields, int fallback = 100);

// Messages matching `query` (newest first, from query.beforeId), at most `limit`.
std::vector<store::MessageSummary> selectMessages(store::MessageStore& store, store::SearchQuery query, int limit);

}  // namespace junction::admin
