// Templates that destinations fill from the message they send: a file name
// ("${OBR-18}-${MSH-10}.hl7"), a URL ("/Patient/${PID-3.1}"), a header value.
// Fields: ${id} ${channel} ${destination} ${attempt} ${timestamp} ${uuid},
// any HL7 path of an HL7 message (${MSH-10}, ${PID-3.1}) and any JSON Pointer
// into a JSON message (${/subject/reference}, ${/identifier/0/value}).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/connector.h"
#include "engine/hl7/message.h"

namespace junction::core {

class MessageTemplate {
public:
    // What the fields are, for help texts.
    static constexpr const char* kFields =
        "${id} ${channel} ${destination} ${attempt} ${timestamp} ${uuid}, an HL7 path such as ${MSH-10}, "
        "a JSON Pointer such as ${/subject/reference}";

    // Why `text` is no template (an unknown field, a '${' without '}'), "" when it is one.
    static std::string check(std::string_view text);
    // Throws std::invalid_argument with check()'s message.
    explicit MessageTemplate(std::string_view text);
    MessageTemplate() = default;

    // The text with each field replaced by its value for `m` ("" when the
    // message has none), passed through `escape` when given (literal text is
    // not). The content is parsed at most once, as HL7 or JSON, when a field needs it.
    std::string expand(const Outbound& m, const std::function<std::string(std::string_view)>& escape = {}) const;
    const std::string& text() const { return text_; }

private:
    struct Part {
        enum class Kind { Text, Id, Channel, Destination, Attempt, Timestamp, Uuid, Hl7, Json } kind = Kind::Text;
        std::string text;                // Text: the literal; Json: the pointer
        std::optional<hl7::Path> path;   // Hl7
    };
    std::string text_;
    std::vector<Part> parts_;
};

}  // namespace junction::core
