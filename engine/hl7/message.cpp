// The HL7 v2 message model (message.h): delimiters, parsing into segments
// and fields, paths, reading and editing values (escaped and unescaped) and
// serializing.
#include "engine/hl7/split.h"
#include "engine/hl7/message.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <stdexcept>

#include "engine/hl7/digits.h"
#include "engine/hl7/types.h"

namespace junction::hl7 {

namespace {

bool isUpperAlnum(char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool isAlnum(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool validSegmentId(std::string_view s) {
    return s.size() == 3 && s[0] >= 'A' && s[0] <= 'Z' && isUpperAlnum(s[1]) && isUpperAlnum(s[2]);
}

bool isTrailingJunk(char c) {
    return c == '\r' || c == '\n' || c == ' ' || c == '\t' || c == '\0' || c == '\x1a' ||
           c == '\x1c' || c == '\x0b';
}

std::string printable(std::string_view s, std::size_t max = 16) {
    std::string out;
    for (std::size_t i = 0; i < s.size() && i < max; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            static const char* hex = "0123456789ABCDEF";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    if (s.size() > max) out += "...";
    return out;
}

int hexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

std::vector<std::string> splitAll(std::string_view s, char sep) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (true) {
        std::size_t p = sep ? s.find(sep, start) : std::string_view::npos;
        if (p == std::string_view::npos) {
            out.emplace_back(s.substr(start));
            return out;
        }
        out.emplace_back(s.substr(start, p - start));
        start = p + 1;
    }
}

}  // namespace

// ---------------------------------------------------------------- Delimiters

std::string Delimiters::encodingCharacters() const {
    std::string s;
    for (char c : {component, repetition, escape, subcomponent, truncation}) {
        if (!c) break;
        s += c;
    }
    return s;
}

bool Delimiters::isDelimiter(char c) const {
    return c && (c == field || c == component || c == repetition || c == escape || c == subcomponent);
}

std::string ParseError::describe() const {
    return "at byte " + std::to_string(offset) + ": " + message;
}

// ---------------------------------------------------------------- escaping

std::string escapeValue(std::string_view value, const Delimiters& d) {
    auto special = [&](char c) {
        return d.isDelimiter(c) || static_cast<unsigned char>(c) < 0x20 || (d.truncation && c == d.truncation);
    };
    std::size_t i = 0;
    while (i < value.size() && (!special(value[i]) || value[i] == '\t')) ++i;
    if (i == value.size()) return std::string(value);
    if (!d.escape)
        throw std::invalid_argument("the value holds a delimiter or control character and MSH-2 defines no escape "
                                    "character to encode it");
    std::string out(value.substr(0, i));
    out.reserve(value.size() + 16);
    auto seq = [&](std::string_view code) {
        out += d.escape;
        out += code;
        out += d.escape;
    };
    for (; i < value.size(); ++i) {
        char c = value[i];
        if (c == d.field) seq("F");
        else if (c == d.component && c) seq("S");
        else if (c == d.subcomponent && c) seq("T");
        else if (c == d.repetition && c) seq("R");
        else if (c == d.escape) seq("E");
        else if (d.truncation && c == d.truncation) seq("P");
        else if (c == '\r' && i + 1 < value.size() && value[i + 1] == '\n') {
            seq(".br");
            ++i;
        } else if (c == '\n') seq(".br");
        else if (static_cast<unsigned char>(c) < 0x20 && c != '\t') {
            static const char* hex = "0123456789ABCDEF";
            const char code[] = {'X', hex[(c >> 4) & 15], hex[c & 15], 0};
            seq(code);
        } else out += c;
    }
    return out;
}

std::string unescapeValue(std::string_view raw, const Delimiters& d) {
    if (!d.escape || raw.find(d.escape) == std::string_view::npos) return std::string(raw);
    std::string out;
    out.reserve(raw.size());
    std::size_t i = 0;
    while (i < raw.size()) {
        char c = raw[i];
        if (c != d.escape) {
            out += c;
            ++i;
            continue;
        }
        std::size_t end = raw.find(d.escape, i + 1);
        if (end == std::string_view::npos) {  // unterminated: keep literally
            out.append(raw.substr(i));
            break;
        }
        std::string_view code = raw.substr(i + 1, end - i - 1);
        bool handled = true;
        if (code == "F") out += d.field;
        else if (code == "S") out += d.component;
        else if (code == "T") out += d.subcomponent;
        else if (code == "R") out += d.repetition;
        else if (code == "E") out += d.escape;
        else if (code == "P" && d.truncation) out += d.truncation;
        else if (code == ".br") out += '\n';
        else if (code.size() >= 3 && (code[0] == 'X' || code[0] == 'x') && (code.size() - 1) % 2 == 0) {
            std::string bytes;
            for (std::size_t k = 1; k + 1 < code.size() && handled; k += 2) {
                int hi = hexValue(code[k]), lo = hexValue(code[k + 1]);
                if (hi < 0 || lo < 0) handled = false;
                else bytes += static_cast<char>(hi * 16 + lo);
            }
            if (handled) out += bytes;
        } else {
            handled = false;
        }
        if (!handled) out.append(raw.substr(i, end - i + 1));  // unknown: preserved as is
        i = end + 1;
    }
    return out;
}

std::string newControlId() {
    static std::atomic<std::uint32_t> counter{0};
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
    std::uint32_t n = counter.fetch_add(1, std::memory_order_relaxed) % 100000;
    // "J" + milliseconds since the epoch + a 5-digit counter.
    std::string out = "J" + std::to_string(ms);
    putDigits(out, static_cast<long>(n), 5);
    return out;
}

// ---------------------------------------------------------------- Path

std::optional<Path> Path::parse(std::string_view text, std::string* error) {
    auto fail = [&](const std::string& why) -> std::optional<Path> {
        if (error) *error = "invalid HL7 path '" + std::string(text) + "': " + why;
        return std::nullopt;
    };
    Path p;
    std::size_t i = 0;
    auto number = [&](int& out) -> bool {
        std::size_t start = i;
        long v = 0;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
            v = v * 10 + (text[i] - '0');
            if (v > 1000000) return false;
            ++i;
        }
        if (i == start || v < 1) return false;
        out = static_cast<int>(v);
        return true;
    };
    auto bracket = [&](int& out) -> int {  // 0 none, 1 ok, -1 error
        if (i >= text.size() || (text[i] != '[' && text[i] != '(')) return 0;
        char close = text[i] == '[' ? ']' : ')';
        ++i;
        if (!number(out)) return -1;
        if (i >= text.size() || text[i] != close) return -1;
        ++i;
        return 1;
    };
    if (text.size() < 3) return fail("a segment id has three characters");
    for (int k = 0; k < 3; ++k) {
        char c = text[k];
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        p.segment += c;
    }
    if (!validSegmentId(p.segment)) return fail("bad segment id '" + p.segment + "'");
    i = 3;
    if (bracket(p.occurrence) < 0) return fail("bad segment occurrence");
    if (i == text.size()) return p;
    if (text[i] != '-' && text[i] != '.') return fail("expected '-' after the segment id");
    ++i;
    if (!number(p.field)) return fail("bad field number");
    if (bracket(p.repetition) < 0) return fail("bad repetition index");
    if (i == text.size()) return p;
    if (text[i] != '.' && text[i] != '-') return fail("expected '.' before the component");
    ++i;
    if (!number(p.component)) return fail("bad component number");
    if (i == text.size()) return p;
    if (text[i] != '.' && text[i] != '-') return fail("expected '.' before the subcomponent");
    ++i;
    if (!number(p.subcomponent)) return fail("bad subcomponent number");
    if (i != text.size()) return fail("unexpected text after the subcomponent");
    return p;
}

std::string Path::toString() const {
    std::string s = segment;
    if (occurrence > 1) s += "[" + std::to_string(occurrence) + "]";
    if (field == 0) return s;
    s += "-" + std::to_string(field);
    if (repetition > 0) s += "[" + std::to_string(repetition) + "]";
    if (component > 0) s += "." + std::to_string(component);
    if (subcomponent > 0) s += "." + std::to_string(subcomponent);
    return s;
}

namespace {
Path parsePathOrThrow(std::string_view text) {
    std::string err;
    auto p = Path::parse(text, &err);
    if (!p) throw PathError(err);
    return *p;
}
}  // namespace

// ---------------------------------------------------------------- Message::Impl

struct Message::Impl {
    struct Segment {
        std::vector<std::string_view> fields;  // [0] = id; MSH: [1] field separator, [2] MSH-2
    };
    std::string input;               // the parsed text; unmodified fields view into it
    std::deque<std::string> owned;   // storage for edited fields (stable addresses)
    std::vector<Segment> segments;
    bool endsWithSeparator = true;

    std::string_view store(std::string s) {
        owned.push_back(std::move(s));
        return owned.back();
    }
    bool isMsh(std::size_t seg) const { return segments[seg].fields[0] == "MSH"; }
};

Message::Message() : impl_(std::make_unique<Impl>()) {}
Message::~Message() = default;
Message::Message(Message&&) noexcept = default;
Message& Message::operator=(Message&&) noexcept = default;

Message::Message(const Message& other) : impl_(std::make_unique<Impl>()), delims_(other.delims_) {
    const Impl& o = *other.impl_;
    impl_->input = o.input;
    impl_->endsWithSeparator = o.endsWithSeparator;
    impl_->segments.reserve(o.segments.size());
    const char* base = o.input.data();
    for (const auto& seg : o.segments) {
        Impl::Segment copy;
        copy.fields.reserve(seg.fields.size());
        for (std::string_view f : seg.fields) {
            if (f.data() >= base && f.data() + f.size() <= base + o.input.size() && !o.input.empty()) {
                copy.fields.emplace_back(impl_->input.data() + (f.data() - base), f.size());
            } else {
                copy.fields.push_back(impl_->store(std::string(f)));
            }
        }
        impl_->segments.push_back(std::move(copy));
    }
}

Message& Message::operator=(const Message& other) {
    if (this != &other) *this = Message(other);
    return *this;
}

// ---------------------------------------------------------------- parsing

ParseResult Message::parse(std::string_view text, const ParseOptions& options) {
    ParseResult result;
    auto fail = [&](std::size_t offset, std::string msg) {
        result.error = ParseError{std::move(msg), offset};
        return std::move(result);
    };
    if (options.maxBytes && text.size() > options.maxBytes) {
        return fail(options.maxBytes, "message of " + std::to_string(text.size()) +
                                          " bytes exceeds the limit of " +
                                          std::to_string(options.maxBytes) + " bytes");
    }
    std::size_t start = 0;
    if (text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xEF &&
        static_cast<unsigned char>(text[1]) == 0xBB && static_cast<unsigned char>(text[2]) == 0xBF) {
        start = 3;  // UTF-8 byte order mark
    }
    while (start < text.size() && (text[start] == '\r' || text[start] == '\n' || text[start] == ' ' ||
                                   text[start] == '\t' || text[start] == '\x0b')) {
        ++start;
    }
    if (start >= text.size()) return fail(start, "empty message");
    std::string_view head = text.substr(start, 3);
    if (head != "MSH") {
        if (head == "FHS" || head == "BHS")
            return fail(start, "input is a batch (" + std::string(head) + "); parse it as a batch");
        return fail(start, "message does not start with an MSH segment (found '" +
                               printable(text.substr(start, 8)) + "')");
    }
    if (text.size() < start + 4) return fail(text.size(), "truncated MSH segment: no field separator");
    Delimiters d;
    d.field = text[start + 3];
    if (isAlnum(d.field) || d.field == '\r' || d.field == '\n' || d.field == ' ' || d.field == '\0')
        return fail(start + 3, "invalid field separator '" + printable(std::string_view(&d.field, 1)) + "' in MSH-1");
    std::size_t encStart = start + 4;
    std::size_t encEnd = encStart;
    while (encEnd < text.size() && text[encEnd] != d.field && text[encEnd] != '\r' && text[encEnd] != '\n')
        ++encEnd;
    std::string_view enc = text.substr(encStart, encEnd - encStart);
    if (enc.empty()) return fail(encStart, "MSH-2 encoding characters are missing");
    if (enc.size() > 5) return fail(encStart, "MSH-2 has " + std::to_string(enc.size()) +
                                                  " encoding characters, at most 5 are allowed");
    if (encEnd >= text.size() || text[encEnd] != d.field)
        return fail(encEnd, "truncated MSH segment: it ends after MSH-2");
    for (std::size_t k = 0; k < enc.size(); ++k) {
        char c = enc[k];
        if (isAlnum(c) || c == ' ' || c == '\0' || static_cast<unsigned char>(c) >= 0x80 || c < 0x20)
            return fail(encStart + k, "invalid encoding character '" + printable(enc.substr(k, 1)) + "' in MSH-2");
        if (c == d.field || enc.find(c) != k)
            return fail(encStart + k, "encoding character '" + printable(enc.substr(k, 1)) +
                                          "' in MSH-2 is used twice");
    }
    d.component = enc[0];
    d.repetition = enc.size() > 1 ? enc[1] : 0;
    d.escape = enc.size() > 2 ? enc[2] : 0;
    d.subcomponent = enc.size() > 3 ? enc[3] : 0;
    d.truncation = enc.size() > 4 ? enc[4] : 0;

    // Trailing separators, whitespace, NULs and EOF/MLLP bytes are not part of the message.
    // Spaces and tabs count only as a whitespace-only last line, never as the end of a value.
    std::size_t end = text.size();
    while (end > start) {
        char c = text[end - 1];
        if (isTrailingJunk(c) && c != ' ' && c != '\t') {
            --end;
            continue;
        }
        std::size_t ws = end;
        while (ws > start && (text[ws - 1] == ' ' || text[ws - 1] == '\t')) --ws;
        if (ws < end && ws > start && (text[ws - 1] == '\r' || text[ws - 1] == '\n' || isTrailingJunk(text[ws - 1]))) {
            end = ws;
            continue;
        }
        break;
    }

    Message msg;
    msg.delims_ = d;
    Impl& impl = *msg.impl_;
    impl.input.assign(text.data(), text.size());
    const char* base = impl.input.data();
    impl.endsWithSeparator = end < text.size() && (text[end] == '\r' || text[end] == '\n');

    // Byte classes: 1 field separator, 2 segment separator, 3 forbidden.
    unsigned char cls[256] = {};
    cls[static_cast<unsigned char>(d.field)] = 1;
    cls[static_cast<unsigned char>('\r')] = 2;
    cls[static_cast<unsigned char>('\n')] = 2;
    cls[0] = 3;
    cls[0x0b] = 3;
    cls[0x1c] = 3;

    impl.segments.reserve(16);
    std::size_t pos = start;
    const unsigned char* ub = reinterpret_cast<const unsigned char*>(base);
    while (pos < end) {
        if (cls[ub[pos]] == 2) {  // blank line
            ++pos;
            continue;
        }
        std::size_t segStart = pos;
        if (end - pos < 3 || !validSegmentId(std::string_view(base + pos, 3)) ||
            (end - pos > 3 && cls[ub[pos + 3]] != 1 && cls[ub[pos + 3]] != 2)) {
            std::size_t n = 0;
            while (pos + n < end && cls[ub[pos + n]] != 2 && n < 12) ++n;
            return fail(pos, "invalid segment id '" + printable(std::string_view(base + pos, n)) +
                                 "' (segment " + std::to_string(impl.segments.size() + 1) + ")");
        }
        Impl::Segment seg;
        seg.fields.reserve(24);
        seg.fields.emplace_back(base + pos, 3);
        bool msh = std::memcmp(base + pos, "MSH", 3) == 0;
        if (msh && !impl.segments.empty())
            return fail(pos, "a second MSH segment: the input holds more than one message (parse it as a batch)");
        pos += 3;
        if (msh) {
            seg.fields.emplace_back(base + pos, 1);                        // MSH-1
            seg.fields.emplace_back(base + encStart, encEnd - encStart);  // MSH-2
            pos = encEnd;
        }
        // pos is at a field separator, a segment separator, or end.
        while (pos < end && cls[ub[pos]] == 1) {
            std::size_t fstart = ++pos;
            while (pos < end) {
                unsigned char k = cls[ub[pos]];
                if (k) {
                    if (k == 3)
                        return fail(pos, std::string("forbidden byte ") + printable(std::string_view(base + pos, 1)) +
                                             " inside segment " + std::string(base + segStart, 3));
                    break;
                }
                ++pos;
            }
            seg.fields.emplace_back(base + fstart, pos - fstart);
        }
        impl.segments.push_back(std::move(seg));
        if (pos < end) ++pos;  // skip the segment separator
    }
    if (msg.rawField(0, 9).empty())
        return fail(start, "MSH-9 (message type) is empty: the header is truncated or incomplete");
    result.message.emplace(std::move(msg));
    return result;
}

Message Message::parseOrThrow(std::string_view text, const ParseOptions& options) {
    auto r = parse(text, options);
    if (!r) throw std::runtime_error("HL7 parse error " + r.error.describe());
    return std::move(*r.message);
}

Message Message::create(std::string_view type, std::string_view version) {
    std::string text = "MSH|^~\\&|||||" + formatNow() + "||" + std::string(type) + "|" +
                       newControlId() + "|P|" + std::string(version) + "\r";
    return parseOrThrow(text);
}

// ---------------------------------------------------------------- serialization

void Message::serializeTo(std::string& out, std::string_view sep) const {
    const Impl& impl = *impl_;
    std::size_t total = 0;
    for (const auto& s : impl.segments)
        for (auto f : s.fields) total += f.size() + 1;
    out.reserve(out.size() + total + impl.segments.size() * sep.size());
    const char fs = delims_.field;
    for (std::size_t i = 0; i < impl.segments.size(); ++i) {
        const auto& f = impl.segments[i].fields;
        out.append(f[0]);
        std::size_t k = 1;
        if (f[0] == "MSH" && f.size() >= 3) {
            out += fs;
            out.append(f[2]);
            k = 3;
        }
        for (; k < f.size(); ++k) {
            out += fs;
            out.append(f[k]);
        }
        if (i + 1 < impl.segments.size() || impl.endsWithSeparator) out.append(sep);
    }
}

std::string Message::serialize(std::string_view sep) const {
    std::string out;
    serializeTo(out, sep);
    return out;
}

bool Message::endsWithSeparator() const { return impl_->endsWithSeparator; }

// ---------------------------------------------------------------- segments

std::size_t Message::segmentCount() const { return impl_->segments.size(); }

std::string_view Message::segmentName(std::size_t index) const {
    return index < impl_->segments.size() ? impl_->segments[index].fields[0] : std::string_view{};
}

std::optional<std::size_t> Message::findSegment(std::string_view name, int occurrence) const {
    int seen = 0;
    for (std::size_t i = 0; i < impl_->segments.size(); ++i) {
        if (impl_->segments[i].fields[0] == name && ++seen == occurrence) return i;
    }
    return std::nullopt;
}

std::vector<std::size_t> Message::segmentsNamed(std::string_view name) const {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < impl_->segments.size(); ++i)
        if (impl_->segments[i].fields[0] == name) out.push_back(i);
    return out;
}

std::size_t Message::fieldCount(std::size_t segment) const {
    if (segment >= impl_->segments.size()) return 0;
    return impl_->segments[segment].fields.size() - 1;
}

std::string_view Message::rawField(std::size_t segment, std::size_t field) const {
    if (segment >= impl_->segments.size()) return {};
    const auto& f = impl_->segments[segment].fields;
    return field < f.size() ? f[field] : std::string_view{};
}

std::string Message::segmentText(std::size_t segment) const {
    if (segment >= impl_->segments.size()) return {};
    Message one;
    one.delims_ = delims_;
    one.impl_->endsWithSeparator = false;
    one.impl_->segments.push_back(impl_->segments[segment]);
    return one.serialize();
}

std::size_t Message::insertSegment(std::size_t index, std::string_view name,
                                   const std::vector<std::string>& rawFields) {
    if (!validSegmentId(name)) throw PathError("invalid segment id '" + std::string(name) + "'");
    if (name == "MSH") throw PathError("a message has exactly one MSH segment");
    Impl& impl = *impl_;
    if (index > impl.segments.size()) index = impl.segments.size();
    Impl::Segment seg;
    seg.fields.push_back(impl.store(std::string(name)));
    for (const auto& f : rawFields) seg.fields.push_back(impl.store(f));
    impl.segments.insert(impl.segments.begin() + static_cast<std::ptrdiff_t>(index), std::move(seg));
    return index;
}

std::size_t Message::appendSegment(std::string_view name, const std::vector<std::string>& rawFields) {
    return insertSegment(impl_->segments.size(), name, rawFields);
}

std::size_t Message::insertSegmentText(std::size_t index, std::string_view text) {
    while (!text.empty() && (text.back() == '\r' || text.back() == '\n')) text.remove_suffix(1);
    if (text.find_first_of("\r\n") != std::string_view::npos)
        throw PathError("segment text holds more than one segment");
    if (text.size() < 3) throw PathError("segment text is too short");
    std::vector<std::string> fields;
    if (text.size() > 3) {
        if (text[3] != delims_.field)
            throw PathError("segment id must be followed by the field separator");
        fields = splitAll(text.substr(4), delims_.field);
    }
    return insertSegment(index, text.substr(0, 3), fields);
}

void Message::removeSegment(std::size_t index) {
    Impl& impl = *impl_;
    if (index >= impl.segments.size()) return;
    if (impl.isMsh(index)) throw PathError("the MSH segment cannot be removed");
    impl.segments.erase(impl.segments.begin() + static_cast<std::ptrdiff_t>(index));
}

// ---------------------------------------------------------------- path access

std::optional<std::size_t> Message::resolveSegment(const Path& path) const {
    return findSegment(path.segment, path.occurrence);
}

std::size_t Message::resolveSegment(const Path& path, bool create) {
    if (auto i = findSegment(path.segment, path.occurrence)) return *i;
    if (!create) throw PathError("no segment " + path.toString());
    if (path.segment == "MSH") throw PathError("a message has exactly one MSH segment");
    int have = static_cast<int>(segmentsNamed(path.segment).size());
    std::size_t idx = 0;
    for (; have < path.occurrence; ++have) idx = appendSegment(path.segment);
    return idx;
}

namespace {

// The raw text a path points at inside a field. `structured` tells whether it
// still holds delimiters of a deeper level.
std::string_view locate(std::string_view field, const Path& p, const Delimiters& d, bool& structured) {
    structured = false;
    std::string_view node = field;
    if (p.repetition == 0 && p.component == 0) {
        structured = field.find_first_of(std::string{d.repetition ? d.repetition : d.component, d.component,
                                                     d.subcomponent ? d.subcomponent : d.component}) !=
                     std::string_view::npos;
        return node;
    }
    node = piece(node, d.repetition, p.repetition ? p.repetition : 1);
    if (p.component == 0) {
        structured = node.find(d.component) != std::string_view::npos ||
                     (d.subcomponent && node.find(d.subcomponent) != std::string_view::npos);
        return node;
    }
    node = piece(node, d.component, p.component);
    if (p.subcomponent == 0) {
        structured = d.subcomponent && node.find(d.subcomponent) != std::string_view::npos;
        return node;
    }
    return piece(node, d.subcomponent, p.subcomponent);
}

bool isHeaderDelimiterField(const Path& p) { return p.segment == "MSH" && (p.field == 1 || p.field == 2); }

}  // namespace

std::string Message::getRaw(const Path& path) const {
    auto seg = resolveSegment(path);
    if (!seg) return {};
    if (path.field == 0) return segmentText(*seg);
    std::string_view field = rawField(*seg, static_cast<std::size_t>(path.field));
    if (isHeaderDelimiterField(path)) return std::string(field);
    bool structured;
    return std::string(locate(field, path, delims_, structured));
}

std::string Message::getRaw(std::string_view path) const { return getRaw(parsePathOrThrow(path)); }

std::string Message::get(const Path& path) const {
    auto seg = resolveSegment(path);
    if (!seg) return {};
    if (path.field == 0) return segmentText(*seg);
    std::string_view field = rawField(*seg, static_cast<std::size_t>(path.field));
    if (isHeaderDelimiterField(path)) return std::string(field);
    bool structured;
    std::string_view node = locate(field, path, delims_, structured);
    if (structured) return std::string(node);
    return unescapeValue(node, delims_);
}

std::string Message::get(std::string_view path) const { return get(parsePathOrThrow(path)); }

bool Message::has(std::string_view path) const { return !getRaw(path).empty(); }

bool Message::isNull(std::string_view path) const { return getRaw(path) == "\"\""; }

int Message::repetitionCount(std::string_view path) const {
    Path p = parsePathOrThrow(path);
    auto seg = resolveSegment(p);
    if (!seg || p.field == 0) return 0;
    std::string_view field = rawField(*seg, static_cast<std::size_t>(p.field));
    if (field.empty()) return 0;
    if (isHeaderDelimiterField(p) || !delims_.repetition) return 1;
    int n = 1;
    for (char c : field)
        if (c == delims_.repetition) ++n;
    return n;
}

FieldTree Message::fieldTree(std::size_t segment, std::size_t field) const {
    std::string_view raw = rawField(segment, field);
    FieldTree tree;
    if (segmentName(segment) == "MSH" && field <= 2) {
        tree.push_back({{std::string(raw)}});
        return tree;
    }
    for (auto& rep : splitAll(raw, delims_.repetition)) {
        Components comps;
        for (auto& comp : splitAll(rep, delims_.component)) comps.push_back(splitAll(comp, delims_.subcomponent));
        tree.push_back(std::move(comps));
    }
    return tree;
}

void Message::replaceField(std::size_t segment, std::size_t field, std::string raw) {
    auto& fields = impl_->segments[segment].fields;
    if (fields.size() <= field) fields.resize(field + 1);
    fields[field] = impl_->store(std::move(raw));
}

void Message::setRaw(const Path& path, std::string_view raw) {
    if (isHeaderDelimiterField(path))
        throw PathError("MSH-1 and MSH-2 hold the delimiters and cannot be set");
    if (path.field == 0) {  // replace the whole segment
        auto seg = resolveSegment(path, true);
        Message probe;
        probe.delims_ = delims_;
        probe.insertSegmentText(0, raw);
        if (probe.segmentName(0) != path.segment)
            throw PathError("segment text does not start with " + path.segment);
        impl_->segments[seg].fields.clear();
        impl_->segments[seg].fields.push_back(impl_->store(std::string(path.segment)));
        for (std::size_t k = 1; k <= probe.fieldCount(0); ++k)
            impl_->segments[seg].fields.push_back(impl_->store(std::string(probe.rawField(0, k))));
        return;
    }
    std::size_t seg = resolveSegment(path, true);
    std::size_t f = static_cast<std::size_t>(path.field);
    if (path.repetition == 0 && path.component == 0) {
        replaceField(seg, f, std::string(raw));
        return;
    }
    const Delimiters& d = delims_;
    auto reps = splitAll(rawField(seg, f), d.repetition);
    if (rawField(seg, f).empty()) reps.clear();
    std::size_t r = static_cast<std::size_t>(path.repetition ? path.repetition : 1);
    if (reps.size() < r) reps.resize(r);
    std::string& rep = reps[r - 1];
    if (path.component == 0) {
        rep = std::string(raw);
    } else {
        auto comps = splitAll(rep, d.component);
        std::size_t c = static_cast<std::size_t>(path.component);
        if (comps.size() < c) comps.resize(c);
        if (path.subcomponent == 0) {
            comps[c - 1] = std::string(raw);
        } else {
            auto subs = splitAll(comps[c - 1], d.subcomponent);
            std::size_t s = static_cast<std::size_t>(path.subcomponent);
            if (subs.size() < s) subs.resize(s);
            subs[s - 1] = std::string(raw);
            while (subs.size() > 1 && subs.back().empty()) subs.pop_back();
            std::string joined;
            for (std::size_t k = 0; k < subs.size(); ++k) {
                if (k) joined += d.subcomponent;
                joined += subs[k];
            }
            comps[c - 1] = std::move(joined);
        }
        while (comps.size() > 1 && comps.back().empty()) comps.pop_back();
        std::string joined;
        for (std::size_t k = 0; k < comps.size(); ++k) {
            if (k) joined += d.component;
            joined += comps[k];
        }
        rep = std::move(joined);
    }
    while (reps.size() > 1 && reps.back().empty()) reps.pop_back();
    std::string out;
    for (std::size_t k = 0; k < reps.size(); ++k) {
        if (k) out += d.repetition;
        out += reps[k];
    }
    replaceField(seg, f, std::move(out));
}

void Message::setRaw(std::string_view path, std::string_view raw) { setRaw(parsePathOrThrow(path), raw); }

void Message::set(const Path& path, std::string_view value) {
    if (path.field == 0) throw PathError("set needs a field: use setRaw to replace a whole segment");
    setRaw(path, escapeValue(value, delims_));
}

void Message::set(std::string_view path, std::string_view value) { set(parsePathOrThrow(path), value); }

void Message::setNull(std::string_view path) { setRaw(parsePathOrThrow(path), "\"\""); }

void Message::clear(std::string_view path) {
    Path p = parsePathOrThrow(path);
    if (!resolveSegment(p)) return;
    setRaw(p, "");
}

void Message::removeRepetition(std::string_view path) {
    Path p = parsePathOrThrow(path);
    auto seg = resolveSegment(p);
    if (!seg || p.field == 0 || isHeaderDelimiterField(p)) return;
    std::size_t f = static_cast<std::size_t>(p.field);
    std::string_view raw = rawField(*seg, f);
    if (raw.empty()) return;
    auto reps = splitAll(raw, delims_.repetition);
    std::size_t r = static_cast<std::size_t>(p.repetition ? p.repetition : 1);
    if (r > reps.size()) return;
    reps.erase(reps.begin() + static_cast<std::ptrdiff_t>(r - 1));
    std::string out;
    for (std::size_t k = 0; k < reps.size(); ++k) {
        if (k) out += delims_.repetition;
        out += reps[k];
    }
    replaceField(*seg, f, std::move(out));
}

std::string Message::escape(std::string_view value) const { return escapeValue(value, delims_); }
std::string Message::unescape(std::string_view raw) const { return unescapeValue(raw, delims_); }

std::string Message::messageType() const {
    auto seg = findSegment("MSH");
    if (!seg) return {};
    std::string_view f = piece(rawField(*seg, 9), delims_.repetition, 1);
    std::string t = unescapeValue(piece(f, delims_.component, 1), delims_);
    std::string_view ev = piece(f, delims_.component, 2);
    if (!ev.empty()) t += "^" + unescapeValue(ev, delims_);
    return t;
}

std::string Message::controlId() const { return get(Path{"MSH", 1, 10, 0, 0, 0}); }

std::string Message::version() const { return get(Path{"MSH", 1, 12, 0, 1, 0}); }

}  // namespace junction::hl7
