// HL7 batches (batch.h): FHS/BHS ... BTS/FTS envelopes, or messages one
// after another, split into their messages.
#include "engine/hl7/batch.h"

#include <cstdlib>

namespace junction::hl7 {

namespace {

struct Line {
    std::size_t offset;
    std::string_view text;
};

template <class F>
void forEachLine(std::string_view text, F&& f) {
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t eol = text.find_first_of("\r\n", pos);
        if (eol == std::string_view::npos) eol = text.size();
        if (eol > pos) f(Line{pos, text.substr(pos, eol - pos)});
        pos = eol + 1;
    }
}

// End of a line including its separator (CR, LF or CRLF).
std::size_t endWithSeparator(std::string_view text, const Line& l) {
    std::size_t end = l.offset + l.text.size();
    if (end < text.size()) ++end;
    if (end < text.size() && text[end - 1] == '\r' && text[end] == '\n') ++end;
    return end;
}

bool startsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool isEnvelope(std::string_view line) {
    return startsWith(line, "FHS") || startsWith(line, "BHS") || startsWith(line, "BTS") || startsWith(line, "FTS");
}

}  // namespace

bool isBatch(std::string_view text) {
    std::size_t start = 0;
    while (start < text.size() && (text[start] == '\r' || text[start] == '\n' || text[start] == ' ')) ++start;
    std::string_view head = text.substr(start, 3);
    if (head == "FHS" || head == "BHS") return true;
    int msh = 0;
    forEachLine(text, [&](const Line& l) {
        if (startsWith(l.text, "MSH")) ++msh;
    });
    return msh > 1;
}

Batch parseBatch(std::string_view text, const ParseOptions& options) {
    Batch b;
    std::size_t msgStart = std::string_view::npos, msgEnd = 0;
    auto flush = [&] {
        if (msgStart == std::string_view::npos) return;
        BatchMessage m;
        m.offset = msgStart;
        m.text = text.substr(msgStart, msgEnd - msgStart);
        m.parsed = Message::parse(m.text, options);
        if (!m.parsed) m.parsed.error.offset += msgStart;
        b.messages.push_back(std::move(m));
        msgStart = std::string_view::npos;
    };
    char fs = '|';
    forEachLine(text, [&](const Line& l) {
        std::size_t lineEnd = endWithSeparator(text, l);
        if (startsWith(l.text, "MSH")) {
            flush();
            msgStart = l.offset;
            msgEnd = lineEnd;
        } else if (isEnvelope(l.text)) {
            flush();
            std::string seg(l.text);
            if ((startsWith(seg, "FHS") || startsWith(seg, "BHS")) && seg.size() > 3) fs = seg[3];
            if (startsWith(seg, "FHS")) b.fileHeader = seg;
            else if (startsWith(seg, "BHS")) b.batchHeader = seg;
            else if (startsWith(seg, "BTS")) {
                b.batchTrailer = seg;
                if (seg.size() > 4 && seg[3] == fs) {
                    std::string count = seg.substr(4, seg.find(fs, 4) == std::string::npos ? std::string::npos
                                                                                             : seg.find(fs, 4) - 4);
                    char* endp = nullptr;
                    long n = std::strtol(count.c_str(), &endp, 10);
                    if (!count.empty() && endp && *endp == '\0') b.declaredCount = n;
                }
            } else b.fileTrailer = seg;
        } else if (msgStart != std::string_view::npos) {
            msgEnd = lineEnd;
        } else {
            bool blank = l.text.find_first_not_of(" \t\x1a") == std::string_view::npos;
            if (!blank)
                b.warnings.push_back("segment outside any message at byte " + std::to_string(l.offset) + " ignored");
        }
    });
    flush();
    if (b.declaredCount && *b.declaredCount != static_cast<long>(b.messages.size()))
        b.warnings.push_back("BTS-1 declares " + std::to_string(*b.declaredCount) + " messages, found " +
                             std::to_string(b.messages.size()));
    return b;
}

std::vector<std::string_view> splitMessages(std::string_view text) {
    std::vector<std::string_view> out;
    std::size_t msgStart = std::string_view::npos, msgEnd = 0;
    forEachLine(text, [&](const Line& l) {
        std::size_t lineEnd = endWithSeparator(text, l);
        if (startsWith(l.text, "MSH")) {
            if (msgStart != std::string_view::npos) out.push_back(text.substr(msgStart, msgEnd - msgStart));
            msgStart = l.offset;
            msgEnd = lineEnd;
        } else if (isEnvelope(l.text)) {
            if (msgStart != std::string_view::npos) out.push_back(text.substr(msgStart, msgEnd - msgStart));
            msgStart = std::string_view::npos;
        } else if (msgStart != std::string_view::npos) {
            msgEnd = lineEnd;
        }
    });
    if (msgStart != std::string_view::npos) out.push_back(text.substr(msgStart, msgEnd - msgStart));
    return out;
}

}  // namespace junction::hl7
