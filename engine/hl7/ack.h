// ACK / NAK builder: original mode (AA/AE/AR) and enhanced mode (CA/CE/CR).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "engine/hl7/message.h"

namespace junction::hl7 {

enum class AckCode { AA, AE, AR, CA, CE, CR };

std::string_view toString(AckCode code);
std::optional<AckCode> parseAckCode(std::string_view text);
bool isPositive(AckCode code);  // AA or CA

// An error to report in the ERR segment (HL7 table 0357 codes: 100 segment
// sequence error, 101 required field missing, 102 data type error, 103 table
// value not found, 200 unsupported message type, 201 unsupported event code,
// 202 unsupported processing id, 203 unsupported version id, 207 application
// internal error).
struct AckError {
    std::string segment;    // e.g. "PID" (empty when unknown)
    int sequence = 1;       // segment occurrence
    int field = 0;          // 0 when not field-specific
    int component = 0;
    int code = 207;
    std::string text;       // diagnostic, e.g. the parse error
    char severity = 'E';    // E error, W warning, I information
};

struct AckOptions {
    std::string controlId;          // default: newControlId()
    std::string sendingApplication; // default: the original MSH-5 (receiving app)
    std::string sendingFacility;    // default: the original MSH-6
};

// Build the acknowledgement of `original`: MSH-3/4 and MSH-5/6 swapped, MSH-9
// ACK^<trigger>^ACK, MSH-11/12 echoed, MSA-1 code, MSA-2 the original MSH-10,
// MSA-3 the text; an ERR segment when `error` is given (ERR-1 for versions
// before 2.5, ERR-2/3/4/8 from 2.5 on).
Message makeAck(const Message& original, AckCode code, std::string_view text = {},
                const AckError* error = nullptr, const AckOptions& options = {});
// The same acknowledgement as text, ready to send (makeAck(...).serialize()
// without building the message tree).
std::string makeAckText(const Message& original, AckCode code, std::string_view text = {},
                        const AckError* error = nullptr, const AckOptions& options = {});

// Acknowledgement for input that could not be parsed: salvages what it can of
// the MSH (delimiters, applications, control id, version) from the raw text.
Message makeNak(std::string_view rawInput, AckCode code, std::string_view text,
                const AckError* error = nullptr, const AckOptions& options = {});

}  // namespace junction::hl7
