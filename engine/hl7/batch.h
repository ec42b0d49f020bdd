// HL7 v2 batches: FHS/BHS ... MSH ... BTS/FTS files, or several messages one
// after another, split into messages.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/hl7/message.h"

namespace junction::hl7 {

struct BatchMessage {
    std::size_t offset = 0;   // byte offset of its MSH in the input
    std::string_view text;    // its raw text (a view into the input)
    ParseResult parsed;       // parse errors have offsets relative to the input
};

struct Batch {
    std::string fileHeader;    // FHS segment text, empty when absent
    std::string batchHeader;   // BHS
    std::string batchTrailer;  // BTS
    std::string fileTrailer;   // FTS
    std::vector<BatchMessage> messages;
    std::optional<long> declaredCount;  // BTS-1
    std::vector<std::string> warnings;  // count mismatch, stray segments ...
};

// True when the input starts with FHS or BHS, or holds more than one MSH.
bool isBatch(std::string_view text);

// Split `text` (views into it stay valid while `text` lives) and parse each message.
Batch parseBatch(std::string_view text, const ParseOptions& options = {});

// Only split, without parsing: the raw text of each message.
std::vector<std::string_view> splitMessages(std::string_view text);

}  // namespace junction::hl7
