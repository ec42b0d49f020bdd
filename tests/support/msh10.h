// MSH-10 (message control id) of a raw HL7 message, read or replaced without
// parsing it: for test peers and benchmark tools that echo it in their ACK or
// give every message they send an id of its own.
#pragma once

#include <string>
#include <string_view>

namespace junction::testing {

// Where MSH-10 stands in msg: its offset and length. The offset is npos when
// the first segment has fewer than ten fields.
struct Msh10Span {
    std::size_t pos = std::string_view::npos;
    std::size_t len = 0;
};

inline Msh10Span msh10Span(std::string_view msg) {
    char fs = msg.size() > 3 ? msg[3] : '|';
    int n = 0;
    for (std::size_t i = 0; i < msg.size() && msg[i] != '\r'; ++i) {
        if (msg[i] == fs && ++n == 9) {
            // MSH-10 runs from here to the next separator or the segment's end.
            std::size_t start = i + 1, end = start;
            while (end < msg.size() && msg[end] != fs && msg[end] != '\r') ++end;
            return {start, end - start};
        }
    }
    return {};
}

// MSH-10 as a view into msg; empty when there is none.
inline std::string_view msh10View(std::string_view msg) {
    Msh10Span s = msh10Span(msg);
    return s.pos == std::string_view::npos ? std::string_view{} : msg.substr(s.pos, s.len);
}

inline std::string msh10(const std::string& msg) { return std::string(msh10View(msg)); }

}  // namespace junction::testing
