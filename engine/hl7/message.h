// HL7 v2 message model: parse, serialize, path access and editing.
//
// A Message keeps its input text and indexes it down to fields; repetitions,
// components and subcomponents are split on demand. Unmodified fields are
// views into the input, so parse + serialize of a CR-separated message gives
// back the exact input bytes. Edited fields are re-encoded (escaped) into
// storage owned by the message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace junction::hl7 {

// The encoding characters of a message (MSH-1 and MSH-2). A character of 0
// means "not used" (MSH-2 may be shorter than four characters).
struct Delimiters {
    char field = '|';
    char component = '^';
    char repetition = '~';
    char escape = '\\';
    char subcomponent = '&';
    char truncation = 0;  // v2.7+: fifth MSH-2 character, usually '#'

    std::string encodingCharacters() const;  // the MSH-2 value
    bool isDelimiter(char c) const;
};

// A parse failure: what went wrong and where (byte offset into the input).
struct ParseError {
    std::string message;
    std::size_t offset = 0;
    std::string describe() const;  // "at byte N: message"
};

struct ParseOptions {
    // Inputs longer than this are rejected (0 = no limit). 64 MiB by default.
    std::size_t maxBytes = 64u * 1024u * 1024u;
};

// A position inside a message: SEG[occurrence]-field[repetition].component.subcomponent
// Examples: "PID-5", "PID-3[2].1", "OBX[3]-5.1", "PID-5.1.2", "MSH-9.2".
// Missing parts are 0. A field without [n] means the whole field (all
// repetitions) when no component is given, else its first repetition.
struct Path {
    std::string segment;
    int occurrence = 1;   // which segment with that id (1-based)
    int field = 0;        // 0 = the whole segment
    int repetition = 0;   // 1-based; 0 = not given
    int component = 0;    // 0 = the whole repetition
    int subcomponent = 0; // 0 = the whole component

    // Parses "PID-3[2].1.2" (also accepts '-' between field/component/subcomponent,
    // e.g. "PID-3-1-2", and "PID.3.1"). Returns nullopt and sets *error on failure.
    static std::optional<Path> parse(std::string_view text, std::string* error = nullptr);
    std::string toString() const;
};

class PathError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

// The parsed structure of one field: repetitions → components → subcomponents.
// Values are raw (still escaped).
using Components = std::vector<std::vector<std::string>>;  // [component][subcomponent]
using FieldTree = std::vector<Components>;                  // [repetition]

class Message;

// Result of a parse: a message, or an error with offset. Never throws.
struct ParseResult;

class Message {
public:
    Message();  // an empty message with default delimiters and no segments
    ~Message();
    Message(Message&&) noexcept;
    Message& operator=(Message&&) noexcept;
    Message(const Message& other);  // deep copy
    Message& operator=(const Message& other);

    // Parse one message. Separators CR, LF or CRLF; trailing whitespace, NULs
    // and EOF markers are ignored. Never throws; see ParseResult.
    static ParseResult parse(std::string_view text, const ParseOptions& options = {});
    // Same, but throws std::runtime_error with the described ParseError.
    static Message parseOrThrow(std::string_view text, const ParseOptions& options = {});

    // A new message with an MSH segment: MSH-7 now, MSH-9 from `type`
    // ("ORM^O01" or "ORM^O01^ORM_O01"), MSH-10 a fresh control id, MSH-11 "P",
    // MSH-12 `version`.
    static Message create(std::string_view type, std::string_view version = "2.5.1");

    // Serialize with CR segment separators (or `segmentSeparator`).
    std::string serialize(std::string_view segmentSeparator = "\r") const;
    void serializeTo(std::string& out, std::string_view segmentSeparator = "\r") const;

    const Delimiters& delimiters() const { return delims_; }

    // --- segments ---
    std::size_t segmentCount() const;
    std::string_view segmentName(std::size_t index) const;
    // Index of the n-th (1-based) segment with that id, or nullopt.
    std::optional<std::size_t> findSegment(std::string_view name, int occurrence = 1) const;
    std::vector<std::size_t> segmentsNamed(std::string_view name) const;
    // Number of fields in a segment (highest field index present; MSH counts MSH-1).
    std::size_t fieldCount(std::size_t segment) const;
    // Raw (escaped) field text; MSH-1 is the field separator, MSH-2 the encoding characters.
    std::string_view rawField(std::size_t segment, std::size_t field) const;
    // The raw text of a segment as it would be serialized (without separator).
    std::string segmentText(std::size_t segment) const;

    // Insert a new segment `name` at position `index` (segmentCount() appends);
    // `fields` are raw (already escaped) field values starting at field 1.
    std::size_t insertSegment(std::size_t index, std::string_view name,
                              const std::vector<std::string>& rawFields = {});
    std::size_t appendSegment(std::string_view name, const std::vector<std::string>& rawFields = {});
    // Insert a segment parsed from raw text ("ZDS|1.2.3^^Application^DICOM").
    std::size_t insertSegmentText(std::size_t index, std::string_view text);
    void removeSegment(std::size_t index);

    // --- path access ---
    // Leaf values (no deeper delimiters inside) come back unescaped; a node that
    // has structure comes back as its raw encoded text. Absent → "".
    std::string get(std::string_view path) const;
    std::string get(const Path& path) const;
    // Raw (escaped) text of the node.
    std::string getRaw(std::string_view path) const;
    std::string getRaw(const Path& path) const;
    // True if the node exists and is non-empty (explicit null counts as present).
    bool has(std::string_view path) const;
    // True if the node's raw value is the explicit null `""`.
    bool isNull(std::string_view path) const;
    // Number of repetitions of a field (0 when absent or empty).
    int repetitionCount(std::string_view path) const;

    // Set a node to a plain value; delimiters and escape characters inside it are
    // escaped. Creates the segment, field, repetition or component as needed
    // (a missing segment is appended). Throws PathError on an invalid path and
    // std::invalid_argument when the value cannot be encoded (see escapeValue).
    void set(std::string_view path, std::string_view value);
    void set(const Path& path, std::string_view value);
    // Set a node to raw, already encoded text (may contain delimiters).
    void setRaw(std::string_view path, std::string_view raw);
    void setRaw(const Path& path, std::string_view raw);
    // Set the explicit null `""`.
    void setNull(std::string_view path);
    // Remove a field repetition (shifting later ones); no-op when absent.
    void removeRepetition(std::string_view path);
    // Clear a node (set it empty).
    void clear(std::string_view path);

    // Parsed tree of a field (raw values).
    FieldTree fieldTree(std::size_t segment, std::size_t field) const;

    // Escape/unescape with this message's delimiters.
    std::string escape(std::string_view value) const;
    std::string unescape(std::string_view raw) const;

    // Common header fields.
    std::string messageType() const;    // "ORM^O01" (MSH-9.1^MSH-9.2)
    std::string controlId() const;      // MSH-10
    std::string version() const;        // MSH-12.1

    // Whether the input ended with a segment separator (kept for byte-exact output).
    bool endsWithSeparator() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    Delimiters delims_;

    friend struct ParseResult;
    std::size_t resolveSegment(const Path& path, bool create);
    std::optional<std::size_t> resolveSegment(const Path& path) const;
    void replaceField(std::size_t segment, std::size_t field, std::string raw);
};

struct ParseResult {
    std::optional<Message> message;
    ParseError error;
    bool ok() const { return message.has_value(); }
    explicit operator bool() const { return ok(); }
};

// Escaping with explicit delimiters (used by Message::escape/unescape).
// Delimiters become \F\ \S\ \T\ \R\ \E\ (\P\ for the truncation character),
// line breaks \.br\, other control characters \Xhh\. Throws
// std::invalid_argument when such a character must be escaped but MSH-2 has no
// escape character.
std::string escapeValue(std::string_view value, const Delimiters& d);
std::string unescapeValue(std::string_view raw, const Delimiters& d);

// A process-unique control id for new messages and ACKs.
std::string newControlId();

}  // namespace junction::hl7
