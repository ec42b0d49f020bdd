// The names of the message store's states and storage modes (message_store.h),
// to text and back; the store itself is in sqlite/.
#include "engine/store/message_store.h"

#include <cctype>

namespace junction::store {

namespace {

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

}  // namespace

const char* toString(Status s) {
    switch (s) {
        case Status::Received: return "RECEIVED";
        case Status::Filtered: return "FILTERED";
        case Status::Transformed: return "TRANSFORMED";
        case Status::Queued: return "QUEUED";
        case Status::Sent: return "SENT";
        case Status::Error: return "ERROR";
    }
    return "Unknown";
}

std::optional<Status> parseStatus(std::string_view s) {
    for (Status st : {Status::Received, Status::Filtered, Status::Transformed, Status::Queued, Status::Sent,
                      Status::Error})
        if (equalsIgnoreCase(s, toString(st))) return st;
    return std::nullopt;
}

const char* toString(StorageMode m) {
    switch (m) {
        case StorageMode::Development: return "development";
        case StorageMode::Production: return "production";
        case StorageMode::Metadata: return "metadata";
        case StorageMode::Disabled: return "disabled";
    }
    return "unknown";
}

std::optional<StorageMode> parseStorageMode(std::string_view s) {
    for (StorageMode m :
         {StorageMode::Development, StorageMode::Production, StorageMode::Metadata, StorageMode::Disabled})
        if (equalsIgnoreCase(s, toString(m))) return m;
    return std::nullopt;
}

}  // namespace junction::store
