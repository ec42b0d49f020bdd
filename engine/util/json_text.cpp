// JSON string quoting (see json_text.h).
#include "engine/util/json_text.h"

namespace junction::util {

namespace {

// The length of the UTF-8 sequence starting at `p` (a byte >= 0x80), or 0 when
// it is no valid one (overlong, a surrogate, past U+10FFFF, cut short).
int utf8Length(const unsigned char* p, const unsigned char* e) {
    unsigned char c = *p;
    int len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
    if (len == 0 || e - p < len) return 0;
    for (int k = 1; k < len; ++k)
        if ((p[k] & 0xC0) != 0x80) return 0;
    if (len == 3) {
        unsigned cp = ((c & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    } else if (len == 4) {
        unsigned cp = ((c & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
        if (cp < 0x10000 || cp > 0x10FFFF) return 0;
    }
    return len;
}

void appendByteEscape(std::string& out, unsigned char c) {
    static const char hex[] = "0123456789abcdef";
    out += "\\u00";
    out += hex[c >> 4];
    out += hex[c & 15];
}

}  // namespace

void appendJsonString(std::string& out, std::string_view s, NonUtf8 nonUtf8) {
    const bool keep = nonUtf8 == NonUtf8::Keep;
    out += '"';
    const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
    const unsigned char* e = p + s.size();
    while (p < e) {
        // A run of bytes copied as they are.
        const unsigned char* run = p;
        while (p < e && *p >= 0x20 && *p != '"' && *p != '\\' && (*p < 0x80 || keep)) ++p;
        out.append(reinterpret_cast<const char*>(run), static_cast<std::size_t>(p - run));
        if (p >= e) break;
        unsigned char c = *p;
        if (c < 0x80) {
            switch (c) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                case '\b': out += "\\b"; break;
                case '\f': out += "\\f"; break;
                default: appendByteEscape(out, c);
            }
            ++p;
            continue;
        }
        // Not kept as it is: UTF-8 passes, any other byte becomes \u00XX.
        int len = utf8Length(p, e);
        if (len) {
            out.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(len));
            p += len;
        } else {
            appendByteEscape(out, c);
            ++p;
        }
    }
    out += '"';
}

std::string jsonString(std::string_view s, NonUtf8 nonUtf8) {
    std::string out;
    out.reserve(s.size() + 2);
    appendJsonString(out, s, nonUtf8);
    return out;
}

bool validUtf8(std::string_view s) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
    const unsigned char* e = p + s.size();
    while (p < e) {
        if (*p < 0x80) {
            ++p;
            continue;
        }
        int len = utf8Length(p, e);
        if (!len) return false;
        p += len;
    }
    return true;
}

}  // namespace junction::util
