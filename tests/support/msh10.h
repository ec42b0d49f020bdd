// MSH-10 (message control id) of a raw HL7 message, read without parsing it:
// for test peers and benchmark receivers that echo it in their ACK.
#pragma once

#include <string>

namespace junction::testing {

inline std::string msh10(const std::string& msg) {
    char fs = msg.size() > 3 ? msg[3] : '|';
    int n = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i < msg.size() && msg[i] != '\r'; ++i)
        if (msg[i] == fs) {
            if (++n == 9) start = i + 1;
            else if (n == 10) return msg.substr(start, i - start);
        }
    return {};
}

}  // namespace junction::testing
