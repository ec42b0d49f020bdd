// The structural walk of a Part 10 file (part10_walk.h): element headers and
// lengths, sequence and encapsulated items, and the UIDs an instance is filed
// under.
#include "connectors/dicom/part10_walk.h"

#include <cstdio>
#include <cstring>
#include <string_view>

namespace junction::dicom {

namespace {

constexpr std::uint32_t kUndefinedLength = 0xFFFFFFFFu;
constexpr std::size_t kFailed = static_cast<std::size_t>(-1);
constexpr int kMaxDepth = 64;

std::string tagText(std::uint16_t g, std::uint16_t e) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "(%04X,%04X)", g, e);
    return buf;
}

// VRs with a 2-byte length in explicit VR. Every other one, unknown VRs
// included (as DCMTK reads them), has a 2-byte reserved field and a 4-byte length.
bool shortLengthVr(char a, char b) {
    static const char* const kShort[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO",
                                         "LT", "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US"};
    for (const char* v : kShort)
        if (v[0] == a && v[1] == b) return true;
    return false;
}

std::string trimmed(const std::uint8_t* p, std::size_t n) {
    std::string_view v(reinterpret_cast<const char*>(p), n);
    while (!v.empty() && (v.back() == '\0' || v.back() == ' ')) v.remove_suffix(1);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    return std::string(v);
}

class Walker {
public:
    Walker(const std::uint8_t* p, bool explicitVr, bool bigEndian, Part10Walk& out)
        : p_(p), explicit_(explicitVr), big_(bigEndian), out_(out) {}

    // Elements in [pos, end); with untilItemEnd, up to and past an item delimiter.
    std::size_t elements(std::size_t pos, std::size_t end, bool untilItemEnd, int depth, bool top) {
        for (;;) {
            if (pos == end) return untilItemEnd ? fail(pos, "an item of undefined length has no delimiter") : pos;
            if (end - pos < 8) return fail(pos, "an element header is cut short");
            std::uint16_t g = u16(pos), e = u16(pos + 2);
            if (g == 0xFFFE) {
                if (e == 0xE00D && untilItemEnd) return pos + 8;
                return fail(pos, "item tag " + tagText(g, e) + " where an element was expected");
            }
            std::size_t header = 8;
            std::uint32_t length;
            bool sequence = false, unknown = false;
            if (explicit_) {
                char a = static_cast<char>(p_[pos + 4]), b = static_cast<char>(p_[pos + 5]);
                if (a < 'A' || a > 'Z' || b < 'A' || b > 'Z') return fail(pos, "element " + tagText(g, e) + " has no valid VR");
                if (shortLengthVr(a, b)) {
                    length = u16(pos + 6);
                } else {
                    if (end - pos < 12) return fail(pos, "an element header is cut short");
                    length = u32(pos + 8);
                    header = 12;
                }
                sequence = a == 'S' && b == 'Q';
                unknown = a == 'U' && b == 'N';
            } else {
                length = u32(pos + 4);
            }
            pos += header;
            if (length == kUndefinedLength) {
                bool pixelData = g == 0x7FE0 && e == 0x0010;
                if (explicit_ && !sequence && !unknown && !pixelData)
                    return fail(pos - header, "element " + tagText(g, e) + " has an undefined length its VR does not allow");
                if (unknown) {
                    // A UN of undefined length holds a sequence in implicit VR little endian (CP-246).
                    Walker implicitLe(p_, false, false, out_);
                    pos = implicitLe.items(pos, end, true, false, depth + 1);
                } else {
                    pos = items(pos, end, true, pixelData, depth + 1);
                }
                if (pos == kFailed) return kFailed;
                continue;
            }
            if (length > end - pos)
                return fail(pos - header, "element " + tagText(g, e) + " of " + std::to_string(length) +
                                              " bytes runs past the end of the data (" + std::to_string(end - pos) + " left)");
            // With implicit VR a sequence is known by its first item's tag, not a dictionary.
            if (!explicit_ && length >= 8 && u16(pos) == 0xFFFE && u16(pos + 2) == 0xE000) sequence = true;
            if (sequence && items(pos, pos + length, false, false, depth + 1) == kFailed) return kFailed;
            if (top && g == 0x0008 && e == 0x0016) out_.sopClassUid = trimmed(p_ + pos, length);
            if (top && g == 0x0008 && e == 0x0018) out_.sopInstanceUid = trimmed(p_ + pos, length);
            if (top && g == 0x0020 && e == 0x000D) out_.studyUid = trimmed(p_ + pos, length);
            if (top && g == 0x0020 && e == 0x000E) out_.seriesUid = trimmed(p_ + pos, length);
            pos += length;
        }
    }

    // The items of a sequence or the fragments of encapsulated pixel data.
    std::size_t items(std::size_t pos, std::size_t end, bool undefinedLength, bool fragments, int depth) {
        if (depth > kMaxDepth) return fail(pos, "sequences nested deeper than " + std::to_string(kMaxDepth));
        for (;;) {
            if (!undefinedLength && pos == end) return pos;
            if (end - pos < 8) return fail(pos, undefinedLength ? "a sequence has no delimiter" : "a sequence item header is cut short");
            std::uint16_t g = u16(pos), e = u16(pos + 2);
            std::uint32_t length = u32(pos + 4);
            if (g != 0xFFFE) return fail(pos, "tag " + tagText(g, e) + " where a sequence item was expected");
            if (e == 0xE0DD) {
                if (!undefinedLength) return fail(pos, "a sequence delimiter in a sequence of defined length");
                return pos + 8;
            }
            if (e != 0xE000) return fail(pos, "tag " + tagText(g, e) + " where a sequence item was expected");
            pos += 8;
            if (length == kUndefinedLength) {
                if (fragments) return fail(pos - 8, "a pixel data fragment of undefined length");
                pos = elements(pos, end, true, depth, false);
                if (pos == kFailed) return kFailed;
                continue;
            }
            if (length > end - pos)
                return fail(pos - 8, "an item of " + std::to_string(length) + " bytes runs past the end of the data (" +
                                         std::to_string(end - pos) + " left)");
            if (!fragments && elements(pos, pos + length, false, depth, false) == kFailed) return kFailed;
            pos += length;
        }
    }

private:
    std::uint16_t u16(std::size_t at) const {
        return big_ ? static_cast<std::uint16_t>((p_[at] << 8) | p_[at + 1])
                    : static_cast<std::uint16_t>(p_[at] | (p_[at + 1] << 8));
    }
    std::uint32_t u32(std::size_t at) const {
        std::uint32_t a = p_[at], b = p_[at + 1], c = p_[at + 2], d = p_[at + 3];
        return big_ ? (a << 24) | (b << 16) | (c << 8) | d : a | (b << 8) | (c << 16) | (d << 24);
    }
    std::size_t fail(std::size_t pos, const std::string& why) {
        if (out_.error.empty()) out_.error = why + " (at byte " + std::to_string(pos) + ")";
        return kFailed;
    }

    const std::uint8_t* p_;
    bool explicit_, big_;
    Part10Walk& out_;
};

}  // namespace

Part10Walk walkPart10(const std::uint8_t* data, std::size_t size) {
    Part10Walk out;
    if (size < 132 || std::memcmp(data + 128, "DICM", 4) != 0) {
        out.error = "no DICOM file preamble";
        return out;
    }
    // The meta group: explicit VR little endian, elements of group 0002, no sequences.
    auto le16 = [&](std::size_t at) { return static_cast<std::uint32_t>(data[at] | (data[at + 1] << 8)); };
    std::size_t pos = 132;
    while (size - pos >= 8 && le16(pos) == 0x0002) {
        char a = static_cast<char>(data[pos + 4]), b = static_cast<char>(data[pos + 5]);
        if (a < 'A' || a > 'Z' || b < 'A' || b > 'Z') {
            out.error = "a meta element has no valid VR (at byte " + std::to_string(pos) + ")";
            return out;
        }
        std::size_t header = shortLengthVr(a, b) ? 8 : 12;
        std::uint32_t length = header == 8 ? le16(pos + 6) : size - pos < 12 ? 0 : le16(pos + 8) | (le16(pos + 10) << 16);
        if (size - pos < header || length > size - pos - header) {
            out.error = "the meta group runs past the end of the data";
            return out;
        }
        if (le16(pos + 2) == 0x0010) out.transferSyntaxUid = trimmed(data + pos + header, length);
        pos += header + length;
    }
    const std::string& ts = out.transferSyntaxUid;
    if (ts.empty()) {
        out.error = "the meta group has no transfer syntax";
        return out;
    }
    if (ts == "1.2.840.10008.1.2.1.99") {  // deflated
        out.walkable = false;
        out.error = "deflated data is not walked";
        return out;
    }
    bool implicitVr = ts == "1.2.840.10008.1.2";
    bool bigEndian = ts == "1.2.840.10008.1.2.2";
    Walker dataset(data, !implicitVr, bigEndian, out);
    if (dataset.elements(pos, size, false, 0, true) == kFailed) return out;
    out.ok = true;
    return out;
}

}  // namespace junction::dicom
