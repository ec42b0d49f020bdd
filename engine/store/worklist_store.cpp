// The names of the worklist items' states (worklist_store.h), to text and
// back; the worklist store itself is in sqlite/sqlite_worklist.cpp.
#include "engine/store/worklist_store.h"

#include <cctype>

namespace junction::store {

const char* toString(WorklistStatus s) {
    switch (s) {
        case WorklistStatus::Scheduled: return "SCHEDULED";
        case WorklistStatus::InProgress: return "IN PROGRESS";
        case WorklistStatus::Completed: return "COMPLETED";
        case WorklistStatus::Discontinued: return "DISCONTINUED";
        case WorklistStatus::Cancelled: return "CANCELLED";
    }
    return "SCHEDULED";
}

std::optional<WorklistStatus> parseWorklistStatus(std::string_view s) {
    std::string t;
    t.reserve(s.size());
    for (char c : s) t += c == '_' ? ' ' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (auto st : {WorklistStatus::Scheduled, WorklistStatus::InProgress, WorklistStatus::Completed,
                    WorklistStatus::Discontinued, WorklistStatus::Cancelled})
        if (t == toString(st)) return st;
    if (t == "CANCELED") return WorklistStatus::Cancelled;
    return std::nullopt;
}

}  // namespace junction::store
