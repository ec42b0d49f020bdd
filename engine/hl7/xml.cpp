// HL7 v2.xml encoding and decoding (see xml.h for the rules).
//
// Encoding is a small hand-written XML writer (no Xerces needed); decoding
// parses with a Xerces-C DOM parser configured not to load DTDs or resolve
// external entities, walks the DOM and builds the pipe text, which is then
// parsed by Message::parse (so the result is validated like any other input).
#include "engine/hl7/xml.h"

#include "engine/hl7/xerces_support.h"

#include <xercesc/dom/DOM.hpp>
#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/parsers/XercesDOMParser.hpp>
#include <xercesc/sax/ErrorHandler.hpp>
#include <xercesc/sax/SAXParseException.hpp>
#include <xercesc/util/OutOfMemoryException.hpp>
#include <xercesc/util/PlatformUtils.hpp>
#include <xercesc/util/SecurityManager.hpp>
#include <xercesc/util/XMLEntityResolver.hpp>
#include <xercesc/util/XMLException.hpp>
#include <xercesc/util/XMLResourceIdentifier.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace junction::hl7 {

namespace {

namespace xc = XERCES_CPP_NAMESPACE;
using xerces::appendUtf8;
using xerces::toUtf8;
static_assert(sizeof(XMLCh) == sizeof(char16_t), "Xerces XMLCh is expected to be UTF-16");

// ============================================================== data types
//
// HL7 v2.5.1 data types of the fields of common segments ("" = unknown / not
// listed, e.g. OBX-5 whose type is given by OBX-2) and the component types of
// composite data types. Only names are derived from these tables; decoding
// does not need them.

struct TableEntry {
    std::string_view name;
    std::string_view types;  // space separated, field/component 1 first; "-" = unknown
};

constexpr TableEntry kSegmentTable[] = {
    {"MSH", "ST ST HD HD HD HD TS ST MSG ST PT VID NM ST ID ID ID ID CE ID EI"},
    {"EVN", "ID TS TS IS XCN TS HD"},
    {"PID", "SI CX CX CX XPN XPN TS IS XPN CE XAD IS XTN XTN CE CE CE CX ST DLN CX CE ST ID NM CE CE "
            "CE TS ID ID IS TS HD CE CE ST CE CWE"},
    {"PD1", "IS IS XON XCN IS IS IS IS ID CX CE ID DT XON CE IS DT DT IS IS IS"},
    {"NK1", "SI XPN CE XAD XTN XTN CE DT DT ST JCC CX XON CE IS TS IS IS CE CE IS CE ID IS CE XPN CE "
            "CE CE XPN XTN XAD CX IS CE IS ST ST IS"},
    {"PV1", "SI IS PL IS CX PL XCN XCN XCN IS PL IS IS IS IS IS XCN IS CX FC IS IS IS IS DT NM NM "
            "IS IS DT IS NM NM IS DT IS DLD CE IS IS IS PL PL TS TS NM NM NM NM CX IS XCN"},
    {"PV2", "PL CE CE CE ST ST IS TS TS NM NM ST XCN DT ID IS DT IS ID NM IS ID XON IS IS DT IS DT DT "
            "CE IS ID TS ID ID ID ID CE CE CE CE CE IS IS CE DT TS TS IS"},
    {"MRG", "CX CX CX CX CX CX XPN"},
    {"ORC", "ID EI EI EI ID ID TQ EIP TS XCN XCN XCN PL XTN TS CE CE CE XCN CE XON XAD XTN XAD "
            "CWE CWE TS CWE CWE CNE CWE"},
    {"OBR", "SI EI EI CE ID TS TS TS CQ XCN ID CE ST TS SPS XCN XTN ST ST ST ST TS MOC ID ID PRL "
            "TQ XCN EIP ID CE NDL NDL NDL NDL TS NM CE CE CE ID ID CE CE CE CE CE CWE IS CWE"},
    {"OBX", "SI ID CE ST - CE ST IS NM ID ID TS ST TS CE XCN CE EI TS CWE - - XON XAD XCN"},
    {"NTE", "SI ID FT CE"},
    {"MSA", "ID ST ST NM ID CE"},
    {"ERR", "ELD ERL CWE ID CWE ST TX TX IS CWE CWE XTN"},
    {"IPC", "EI EI EI EI CE CE EI CE ST"},
    {"TQ1", "SI CQ RPT TM CQ CQ TS TS CWE TX TX ID CQ NM"},
    {"AL1", "SI CE CE CE ST DT"},
    {"DG1", "SI ID CE ST TS IS CE CE ID IS CE NM CP ST ID XCN IS ID TS EI ID"},
    {"IN1", "SI CE CX XON XAD XPN XTN ST XON CX XON DT DT AUI IS XPN CE TS XAD IS IS ST ID DT ID "
            "DT IS ST TS XCN IS IS NM NM IS ST CP CP NM CP CP CE IS XAD ST IS IS IS CX IS DT ST IS"},
    {"SFT", "XON ST ST ST TX TS"},
    {"QAK", "ST ID CE NM NM NM"},
    {"SPM", "SI EIP EIP CWE CWE CWE CWE CWE CWE CWE CWE CQ NM ST CWE CWE DR TS TS ID CWE CWE CWE CWE "
            "CQ NM CWE CWE CWE"},
};

constexpr TableEntry kCompositeTable[] = {
    {"AUI", "ST DT ST"},
    {"CE", "ST ST ID ST ST ID"},
    {"CF", "ST FT ID ST FT ID"},
    {"CNE", "ST ST ID ST ST ID ST ST ST"},
    {"CNN", "ST ST ST ST ST ST IS IS IS ST ID"},
    {"CP", "MO ID NM NM CE ID"},
    {"CQ", "NM CE"},
    {"CWE", "ST ST ID ST ST ID ST ST ST"},
    {"CX", "ST ST ID HD ID HD DT DT CWE CWE"},
    {"DLD", "IS TS"},
    {"DLN", "ST IS DT"},
    {"DR", "TS TS"},
    {"ED", "HD ID ID ID TX"},
    {"EI", "ST IS ST ID"},
    {"EIP", "EI EI"},
    {"ELD", "ST NM NM CE"},
    {"ERL", "ST NM NM NM NM NM"},
    {"FC", "IS TS"},
    {"FN", "ST ST ST ST ST"},
    {"HD", "IS ST ID"},
    {"JCC", "IS IS TX"},
    {"MO", "NM ID"},
    {"MOC", "MO CE"},
    {"MSG", "ID ID ID"},
    {"NDL", "CNN TS TS IS IS IS HD IS IS IS IS"},
    {"OSD", "ID ST IS ST IS ST NM ST ID ST ID"},
    {"PL", "IS IS IS HD IS IS IS IS ST EI HD"},
    {"PRL", "CE ST TX"},
    {"PT", "ID ID"},
    {"RI", "IS ST"},
    {"RP", "ST HD ID ID"},
    {"RPT", "CWE ID NM NM NM IS ID ID NM IS GTS"},
    {"SAD", "ST ST ST"},
    {"SN", "ST NM ST NM"},
    {"SPS", "CWE CWE TX CWE CWE CWE CWE"},
    {"TQ", "CQ RI ST TS TS ST ST TX ID OSD CE NM"},
    {"TS", "DTM ID"},
    {"VID", "ID CE CE"},
    {"XAD", "SAD ST ST ST ST ID ID ST IS IS ID DR TS TS"},
    {"XCN", "ST FN ST ST ST ST IS IS HD ID ST ID ID HD ID CE DR ID TS TS ST CWE CWE"},
    {"XON", "ST IS NM NM ID HD ID HD ID ST"},
    {"XPN", "FN ST ST ST ST IS ID ID CE DR ID TS TS ST"},
    {"XTN", "ST ID ID ST NM NM NM NM ST ST ST ST"},
};

using TypeMap = std::unordered_map<std::string_view, std::vector<std::string_view>>;

template <std::size_t N>
TypeMap buildTypeMap(const TableEntry (&table)[N]) {
    TypeMap map;
    for (const auto& e : table) {
        std::vector<std::string_view> types;
        std::string_view s = e.types;
        while (!s.empty()) {
            std::size_t sp = s.find(' ');
            std::string_view t = s.substr(0, sp);
            types.push_back(t == "-" ? std::string_view{} : t);
            if (sp == std::string_view::npos) break;
            s.remove_prefix(sp + 1);
        }
        map.emplace(e.name, std::move(types));
    }
    return map;
}

const TypeMap& segmentTypes() {
    static const TypeMap map = buildTypeMap(kSegmentTable);
    return map;
}

const TypeMap& compositeTypes() {
    static const TypeMap map = buildTypeMap(kCompositeTable);
    return map;
}

bool isComposite(std::string_view type) {
    return !type.empty() && compositeTypes().count(type) != 0;
}

// Type of component `index` (1-based) of a composite type; "" if unknown.
std::string_view componentType(std::string_view composite, std::size_t index) {
    auto it = compositeTypes().find(composite);
    if (it == compositeTypes().end() || index == 0 || index > it->second.size()) return {};
    return it->second[index - 1];
}

// ============================================================== helpers

bool isSegmentId(std::string_view s) {
    auto upperAlnum = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
    return s.size() == 3 && s[0] >= 'A' && s[0] <= 'Z' && upperAlnum(s[1]) && upperAlnum(s[2]);
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    if (!sep) {
        out.push_back(s);
        return out;
    }
    std::size_t start = 0;
    while (true) {
        std::size_t p = s.find(sep, start);
        if (p == std::string_view::npos) {
            out.push_back(s.substr(start));
            return out;
        }
        out.push_back(s.substr(start, p - start));
        start = p + 1;
    }
}

const char kHex[] = "0123456789ABCDEF";

bool xmlChar(char32_t cp) {  // XML 1.0 Char production
    return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
           (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

// The character set of the message text: UTF-8 (also for ASCII and when MSH-18
// is empty or unknown) or ISO 8859-1 (MSH-18 "8859/1").
enum class Charset { Utf8, Latin1 };

// Decodes one character of `s` at `i` as the charset says. Returns the number
// of bytes used, or 0 if the bytes at `i` are not a valid character.
std::size_t decodeChar(std::string_view s, std::size_t i, Charset cs, char32_t& cp) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (cs == Charset::Latin1 || c < 0x80) {
        cp = c;
        return 1;
    }
    std::size_t len;
    char32_t min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (i + len > s.size()) return 0;
    for (std::size_t k = 1; k < len; ++k) {
        unsigned char cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

// ============================================================== encoding

class Encoder {
public:
    Encoder(const Message& msg, bool pretty) : msg_(msg), d_(msg.delimiters()), pretty_(pretty) {
        std::string_view msh18 = msg.segmentCount() && msg.segmentName(0) == "MSH" ? msg.rawField(0, 18) : "";
        msh18 = split(split(msh18, d_.repetition)[0], d_.component)[0];
        if (msh18 == "8859/1") cs_ = Charset::Latin1;
    }

    std::string run() {
        out_ = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
        newline(0);
        std::string root = structureName();
        out_ += '<';
        out_ += root;
        out_ += " xmlns=\"";
        out_ += kV2XmlNamespace;
        out_ += "\">";
        for (std::size_t s = 0; s < msg_.segmentCount(); ++s) segment(s);
        newline(0);
        out_ += "</" + root + ">";
        if (pretty_) out_ += '\n';
        return std::move(out_);
    }

private:
    const Message& msg_;
    Delimiters d_;
    bool pretty_;
    Charset cs_ = Charset::Utf8;
    std::string out_;

    void newline(int depth) {
        if (!pretty_) return;
        out_ += '\n';
        out_.append(static_cast<std::size_t>(depth) * 2, ' ');
    }
    void open(std::string_view name, int depth) {
        newline(depth);
        out_ += '<';
        out_ += name;
        out_ += '>';
    }
    void close(std::string_view name, int depth) {
        newline(depth);
        closeInline(name);
    }
    void closeInline(std::string_view name) {
        out_ += "</";
        out_ += name;
        out_ += '>';
    }
    void empty(std::string_view name, int depth) {
        newline(depth);
        out_ += '<';
        out_ += name;
        out_ += "/>";
    }

    // Root element name: MSH-9.3, else MSH-9.1_MSH-9.2 (ACK for acknowledgements).
    std::string structureName() const {
        auto valid = [](const std::string& n) {
            if (n.empty() || !((n[0] >= 'A' && n[0] <= 'Z') || (n[0] >= 'a' && n[0] <= 'z'))) return false;
            for (char c : n)
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
                    return false;
            return true;
        };
        if (msg_.segmentCount() == 0 || msg_.segmentName(0) != "MSH") return "HL7";
        auto comps = split(split(msg_.rawField(0, 9), d_.repetition)[0], d_.component);
        auto comp = [&](std::size_t i) {
            return i < comps.size() ? unescapeValue(split(comps[i], d_.subcomponent)[0], d_) : std::string{};
        };
        std::string structure = comp(2);
        if (valid(structure)) return structure;
        std::string type = comp(0), event = comp(1);
        std::string name = (type == "ACK" || event.empty()) ? type : type + "_" + event;
        return valid(name) ? name : "HL7";
    }

    void segment(std::size_t s) {
        std::string_view name = msg_.segmentName(s);
        std::size_t n = msg_.fieldCount(s);
        if (n == 0) {
            empty(name, 1);
            return;
        }
        open(name, 1);
        const bool msh = name == "MSH";
        const auto& tables = segmentTypes();
        auto typesIt = tables.find(name);
        std::string fieldName;
        for (std::size_t f = 1; f <= n; ++f) {
            fieldName.assign(name);
            fieldName += '.';
            fieldName += std::to_string(f);
            std::string_view raw = msg_.rawField(s, f);
            if (msh && f <= 2) {  // field separator and encoding characters, as plain text
                open(fieldName, 2);
                plainText(raw);
                closeInline(fieldName);
                continue;
            }
            if (raw.empty()) {
                if (f == n) empty(fieldName, 2);  // keeps the trailing field separators
                continue;
            }
            std::string_view type;
            if (typesIt != tables.end() && f <= typesIt->second.size()) type = typesIt->second[f - 1];
            if (name == "OBX" && f == 5) type = obxValueType(s);
            for (std::string_view rep : split(raw, d_.repetition)) repetition(fieldName, rep, type);
        }
        close(name, 1);
    }

    std::string_view obxValueType(std::size_t s) const {
        auto it = compositeTypes().find(msg_.rawField(s, 2));
        return it == compositeTypes().end() ? std::string_view{} : it->first;
    }

    void repetition(const std::string& name, std::string_view rep, std::string_view type) {
        if (rep.empty()) {
            empty(name, 2);
            return;
        }
        bool structured = rep.find(d_.component) != std::string_view::npos ||
                          (d_.subcomponent && rep.find(d_.subcomponent) != std::string_view::npos);
        // An explicit null ("") nulls the whole field: written as text even for a composite type.
        if (!structured && (!isComposite(type) || rep == "\"\"")) {
            open(name, 2);
            leaf(rep);
            closeInline(name);
            return;
        }
        open(name, 2);
        auto comps = split(rep, d_.component);
        const bool known = isComposite(type);
        for (std::size_t c = 1; c <= comps.size(); ++c) {
            if (comps[c - 1].empty() && c != comps.size()) continue;
            std::string compName = (known ? std::string(type) : name) + "." + std::to_string(c);
            component(compName, comps[c - 1], known ? componentType(type, c) : std::string_view{});
        }
        close(name, 2);
    }

    void component(const std::string& name, std::string_view comp, std::string_view type) {
        if (comp.empty()) {
            empty(name, 3);
            return;
        }
        bool structured = d_.subcomponent && comp.find(d_.subcomponent) != std::string_view::npos;
        if (!structured && (!isComposite(type) || comp == "\"\"")) {
            open(name, 3);
            leaf(comp);
            closeInline(name);
            return;
        }
        open(name, 3);
        auto subs = split(comp, d_.subcomponent);
        const bool known = isComposite(type);
        for (std::size_t k = 1; k <= subs.size(); ++k) {
            if (subs[k - 1].empty() && k != subs.size()) continue;
            std::string subName = (known ? std::string(type) : name) + "." + std::to_string(k);
            if (subs[k - 1].empty()) {
                empty(subName, 4);
                continue;
            }
            open(subName, 4);
            leaf(subs[k - 1]);
            closeInline(subName);
        }
        close(name, 3);
    }

    // Raw bytes that XML cannot carry: <escape B="hex"/>.
    void rawBytes(std::string_view bytes) {
        out_ += "<escape B=\"";
        for (char ch : bytes) {
            unsigned char c = static_cast<unsigned char>(ch);
            out_ += kHex[c >> 4];
            out_ += kHex[c & 15];
        }
        out_ += "\"/>";
    }

    // Text content (no HL7 escape processing). Bytes XML cannot hold become
    // <escape B="..."/> elements.
    void plainText(std::string_view s) {
        std::size_t i = 0;
        while (i < s.size()) {
            char32_t cp;
            std::size_t len = decodeChar(s, i, cs_, cp);
            if (len == 0 || !xmlChar(cp)) {
                std::size_t j = i + (len ? len : 1);
                while (j < s.size()) {  // merge a run of such bytes
                    std::size_t l2 = decodeChar(s, j, cs_, cp);
                    if (l2 != 0 && xmlChar(cp)) break;
                    j += l2 ? l2 : 1;
                }
                rawBytes(s.substr(i, j - i));
                i = j;
                continue;
            }
            switch (cp) {
                case '<': out_ += "&lt;"; break;
                case '>': out_ += "&gt;"; break;
                case '&': out_ += "&amp;"; break;
                case '\t': out_ += "&#9;"; break;
                case '\n': out_ += "&#10;"; break;
                case '\r': out_ += "&#13;"; break;
                default:
                    if (cs_ == Charset::Latin1) appendUtf8(out_, cp);
                    else out_.append(s.substr(i, len));
            }
            i += len;
        }
    }

    // An escape code that can be written as a V attribute (valid text, no
    // control characters).
    bool cleanCode(std::string_view code) const {
        for (std::size_t i = 0; i < code.size();) {
            char32_t cp;
            std::size_t len = decodeChar(code, i, cs_, cp);
            if (len == 0 || !xmlChar(cp) || cp < 0x20) return false;
            i += len;
        }
        return true;
    }

    void attributeValue(std::string_view code) {
        for (std::size_t i = 0; i < code.size();) {
            char32_t cp;
            std::size_t len = decodeChar(code, i, cs_, cp);
            switch (cp) {
                case '<': out_ += "&lt;"; break;
                case '&': out_ += "&amp;"; break;
                case '"': out_ += "&quot;"; break;
                default:
                    if (cs_ == Charset::Latin1) appendUtf8(out_, cp);
                    else out_.append(code.substr(i, len));
            }
            i += len;
        }
    }

    // A leaf value (raw, escaped HL7 text without delimiters of its level).
    void leaf(std::string_view raw) {
        const char esc = d_.escape;
        std::string text;  // pending unescaped bytes
        auto flush = [&] {
            plainText(text);
            text.clear();
        };
        std::size_t i = 0;
        while (i < raw.size()) {
            char c = raw[i];
            if (!esc || c != esc) {
                text += c;
                ++i;
                continue;
            }
            std::size_t end = raw.find(esc, i + 1);
            std::string_view code =
                end == std::string_view::npos ? std::string_view{} : raw.substr(i + 1, end - i - 1);
            if (end != std::string_view::npos && code.size() == 1) {
                char lit = 0;
                switch (code[0]) {
                    case 'F': lit = d_.field; break;
                    case 'S': lit = d_.component; break;
                    case 'T': lit = d_.subcomponent; break;
                    case 'R': lit = d_.repetition; break;
                    case 'E': lit = d_.escape; break;
                    default: break;
                }
                if (lit) {
                    text += lit;
                    i = end + 1;
                    continue;
                }
            }
            flush();
            if (end == std::string_view::npos || !cleanCode(code)) {
                out_ += "<escape/>";  // a lone escape character
                ++i;
                continue;
            }
            out_ += "<escape V=\"";
            attributeValue(code);
            out_ += "\"/>";
            i = end + 1;
        }
        flush();
    }
};

// ============================================================== decoding

struct DecodeError {
    std::string message;
};

std::string localName(const xc::DOMNode* n) {
    const XMLCh* ln = n->getLocalName();
    return toUtf8(ln ? ln : n->getNodeName());
}

bool isWhitespace(const XMLCh* s) {
    for (; s && *s; ++s)
        if (*s != u' ' && *s != u'\t' && *s != u'\n' && *s != u'\r') return false;
    return true;
}

bool isText(const xc::DOMNode* n) {
    auto t = n->getNodeType();
    return t == xc::DOMNode::TEXT_NODE || t == xc::DOMNode::CDATA_SECTION_NODE;
}

class Decoder {
public:
    std::string run(const xc::DOMElement* root) {
        std::vector<const xc::DOMElement*> segments;
        collectSegments(root, segments, 0);
        if (segments.empty()) throw DecodeError{"no MSH segment in the document"};
        if (localName(segments[0]) != "MSH")
            throw DecodeError{"the first segment is <" + localName(segments[0]) + ">, expected <MSH>"};
        header(segments[0]);
        std::string text;
        for (const auto* seg : segments) {
            segment(seg, text);
            text += '\r';
        }
        return text;
    }

private:
    Delimiters d_;
    Charset cs_ = Charset::Utf8;
    std::string where_;  // element being decoded, for error messages

    [[noreturn]] void fail(const std::string& why) const {
        throw DecodeError{where_.empty() ? why : "in <" + where_ + ">: " + why};
    }

    void collectSegments(const xc::DOMElement* parent, std::vector<const xc::DOMElement*>& out, int depth) {
        if (depth > 32) throw DecodeError{"groups are nested too deeply"};
        for (const xc::DOMNode* n = parent->getFirstChild(); n; n = n->getNextSibling()) {
            if (isText(n)) {
                if (!isWhitespace(n->getNodeValue()))
                    throw DecodeError{"unexpected text in <" + localName(parent) + ">"};
                continue;
            }
            if (n->getNodeType() != xc::DOMNode::ELEMENT_NODE) continue;
            const auto* e = static_cast<const xc::DOMElement*>(n);
            if (isSegmentId(localName(e))) out.push_back(e);
            else collectSegments(e, out, depth + 1);
        }
    }

    // The number after the last dot of an element name.
    std::size_t indexOf(const xc::DOMElement* e, std::size_t max) const {
        std::string name = localName(e);
        std::size_t dot = name.rfind('.');
        if (dot == std::string::npos || dot + 1 == name.size())
            fail("element <" + name + "> has no index (expected a name like PID.5 or XPN.1)");
        std::size_t v = 0;
        for (std::size_t i = dot + 1; i < name.size(); ++i) {
            char c = name[i];
            if (c < '0' || c > '9') fail("element <" + name + "> has no numeric index");
            v = v * 10 + static_cast<std::size_t>(c - '0');
            if (v > max) fail("index of <" + name + "> is larger than " + std::to_string(max));
        }
        if (v == 0) fail("index of <" + name + "> is 0");
        return v;
    }

    std::vector<const xc::DOMElement*> childElements(const xc::DOMElement* e, bool allowText) const {
        std::vector<const xc::DOMElement*> out;
        for (const xc::DOMNode* n = e->getFirstChild(); n; n = n->getNextSibling()) {
            if (isText(n)) {
                if (!allowText && !isWhitespace(n->getNodeValue()))
                    fail("unexpected text in <" + localName(e) + ">");
            } else if (n->getNodeType() == xc::DOMNode::ELEMENT_NODE) {
                out.push_back(static_cast<const xc::DOMElement*>(n));
            }
        }
        return out;
    }

    // True if the element holds components/subcomponents (child elements
    // other than <escape>).
    static bool structured(const xc::DOMElement* e) {
        for (const xc::DOMNode* n = e->getFirstChild(); n; n = n->getNextSibling())
            if (n->getNodeType() == xc::DOMNode::ELEMENT_NODE && localName(n) != "escape") return true;
        return false;
    }

    // Text to message bytes in the message's character set.
    std::string bytes(const XMLCh* s) const {
        if (!s) return {};
        std::size_t n = xc::XMLString::stringLen(s);
        if (cs_ == Charset::Utf8) return toUtf8(s, n);
        std::string out;
        out.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            if (s[i] > 0xFF) {
                char buf[64];
                std::snprintf(buf, sizeof buf, "character U+%04X cannot be encoded in ISO 8859-1 (MSH-18)",
                              static_cast<unsigned>(s[i]));
                fail(buf);
            }
            out += static_cast<char>(s[i]);
        }
        return out;
    }

    static bool hasAttr(const xc::DOMElement* e, const XMLCh* name) { return e->getAttributeNode(name) != nullptr; }

    std::string hexBytes(const xc::DOMElement* e) const {
        std::string hex = toUtf8(e->getAttribute(u"B"));
        if (hex.size() % 2) fail("<escape B=\"" + hex + "\"> needs an even number of hex digits");
        std::string out;
        for (std::size_t i = 0; i < hex.size(); i += 2) {
            auto val = [&](char c) -> int {
                if (c >= '0' && c <= '9') return c - '0';
                if (c >= 'A' && c <= 'F') return c - 'A' + 10;
                if (c >= 'a' && c <= 'f') return c - 'a' + 10;
                fail("<escape B=\"" + hex + "\"> is not hexadecimal");
            };
            out += static_cast<char>(val(hex[i]) * 16 + val(hex[i + 1]));
        }
        return out;
    }

    bool special(char c) const {
        return c == '\r' || c == '\n' || d_.isDelimiter(c);
    }

    // Text and <escape> elements of a leaf, encoded as raw HL7 text.
    std::string leaf(const xc::DOMElement* e) const {
        std::string out;
        for (const xc::DOMNode* n = e->getFirstChild(); n; n = n->getNextSibling()) {
            if (isText(n)) {
                for (char c : bytes(n->getNodeValue())) {
                    if (!special(c)) {
                        out += c;
                        continue;
                    }
                    if (!d_.escape) fail("a value holds a delimiter but MSH-2 defines no escape character");
                    const char* code = c == d_.field          ? "F"
                                       : c == d_.component    ? "S"
                                       : c == d_.subcomponent ? "T"
                                       : c == d_.repetition   ? "R"
                                       : c == d_.escape       ? "E"
                                       : c == '\n'            ? ".br"
                                                              : "X0D";
                    out += d_.escape;
                    out += code;
                    out += d_.escape;
                }
                continue;
            }
            if (n->getNodeType() != xc::DOMNode::ELEMENT_NODE) continue;  // comments, PIs
            const auto* x = static_cast<const xc::DOMElement*>(n);
            if (localName(x) != "escape") fail("unexpected element <" + localName(x) + "> in a value");
            if (!d_.escape) fail("<escape> but MSH-2 defines no escape character");
            if (hasAttr(x, u"B")) {
                std::string raw = hexBytes(x);
                for (char c : raw)
                    if (special(c)) fail("<escape B> holds a delimiter or line break");
                out += raw;
            } else if (hasAttr(x, u"V")) {
                std::string code = bytes(x->getAttribute(u"V"));
                for (char c : code)
                    if (special(c)) fail("<escape V=\"" + code + "\"> holds a delimiter or line break");
                out += d_.escape;
                out += code;
                out += d_.escape;
            } else {
                out += d_.escape;  // a lone escape character
            }
        }
        return out;
    }

    // MSH-1 / MSH-2: text and <escape B>, no HL7 escaping.
    std::string plain(const xc::DOMElement* e) const {
        std::string out;
        for (const xc::DOMNode* n = e->getFirstChild(); n; n = n->getNextSibling()) {
            if (isText(n)) {
                out += bytes(n->getNodeValue());
            } else if (n->getNodeType() == xc::DOMNode::ELEMENT_NODE) {
                const auto* x = static_cast<const xc::DOMElement*>(n);
                if (localName(x) != "escape" || !hasAttr(x, u"B"))
                    fail("unexpected element <" + localName(x) + ">");
                out += hexBytes(x);
            }
        }
        return out;
    }

    const xc::DOMElement* mshField(const xc::DOMElement* msh, std::size_t index) {
        for (const auto* e : childElements(msh, true)) {
            std::string name = localName(e);
            std::size_t dot = name.rfind('.');
            if (dot != std::string::npos && name.substr(dot + 1) == std::to_string(index)) return e;
        }
        return nullptr;
    }

    void header(const xc::DOMElement* msh) {
        where_ = "MSH";
        if (const auto* f18 = mshField(msh, 18)) {
            std::string cs = toUtf8(f18->getTextContent());
            std::size_t b = cs.find_first_not_of(" \t\r\n");
            if (b != std::string::npos && cs.compare(b, 6, "8859/1") == 0 &&
                (cs.size() == b + 6 || cs.find_first_not_of("0123456789", b + 6) == b + 6))
                cs_ = Charset::Latin1;
        }
        if (const auto* f1 = mshField(msh, 1)) {
            where_ = "MSH.1";
            std::string fs = plain(f1);
            if (fs.size() != 1) fail("MSH.1 must hold exactly one character (the field separator)");
            d_.field = fs[0];
        }
        if (const auto* f2 = mshField(msh, 2)) {
            where_ = "MSH.2";
            std::string enc = plain(f2);
            if (enc.empty() || enc.size() > 5) fail("MSH.2 must hold 1 to 5 encoding characters");
            d_.component = enc[0];
            d_.repetition = enc.size() > 1 ? enc[1] : 0;
            d_.escape = enc.size() > 2 ? enc[2] : 0;
            d_.subcomponent = enc.size() > 3 ? enc[3] : 0;
            d_.truncation = enc.size() > 4 ? enc[4] : 0;
            for (std::size_t i = 0; i < enc.size(); ++i)
                if (enc[i] == d_.field || enc.find(enc[i]) != i)
                    fail("MSH.2 uses a character twice or repeats the field separator");
        }
        where_.clear();
    }

    void segment(const xc::DOMElement* seg, std::string& text) {
        const std::string name = localName(seg);
        where_ = name;
        const bool msh = name == "MSH";
        std::map<std::size_t, std::vector<std::string>> fields;  // index -> repetitions
        for (const auto* f : childElements(seg, false)) {
            where_ = name;
            std::size_t index = indexOf(f, 9999);
            where_ = localName(f);
            if (msh && index <= 2) continue;  // delimiters, read by header()
            fields[index].push_back(repetition(f));
        }
        where_ = name;
        text += name;
        std::size_t next = 1;
        if (msh) {
            text += d_.field;
            text += d_.encodingCharacters();
            next = 3;
        }
        for (const auto& [index, reps] : fields) {
            if (index < next) continue;
            for (; next <= index; ++next) text += d_.field;
            if (reps.size() > 1 && !d_.repetition)
                fail("field " + std::to_string(index) + " repeats but MSH-2 defines no repetition separator");
            for (std::size_t r = 0; r < reps.size(); ++r) {
                if (r) text += d_.repetition;
                text += reps[r];
            }
        }
        where_.clear();
    }

    // Join the values of indexed children with `sep`.
    std::string joinChildren(const xc::DOMElement* e, char sep, int level) {
        std::map<std::size_t, std::string> parts;
        for (const auto* c : childElements(e, false)) {
            std::size_t index = indexOf(c, 9999);
            if (parts.count(index)) fail("<" + localName(c) + "> appears twice");
            std::string saved = where_;
            where_ = localName(c);
            if (level == 1) {  // a component: subcomponents below
                parts[index] = structured(c) ? joinChildren(c, d_.subcomponent, 2) : leaf(c);
            } else {
                if (structured(c)) fail("values are nested deeper than subcomponents");
                parts[index] = leaf(c);
            }
            where_ = saved;
        }
        if (parts.empty()) return {};
        if (!sep && parts.rbegin()->first > 1)
            fail(level == 1 ? "components need a component separator"
                            : "subcomponents but MSH-2 defines no subcomponent separator");
        std::string out;
        std::size_t next = 1;
        for (const auto& [index, value] : parts) {
            for (; next < index; ++next) out += sep;
            out += value;
            next = index;
        }
        return out;
    }

    std::string repetition(const xc::DOMElement* f) {
        return structured(f) ? joinChildren(f, d_.component, 1) : leaf(f);
    }
};


// Byte offset of a 1-based line/column (column counted in characters).
std::size_t byteOffset(std::string_view text, XMLFileLoc line, XMLFileLoc column) {
    std::size_t i = 0;
    for (XMLFileLoc l = 1; l < line && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++l;
        } else if (text[i] == '\r') {
            if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
            ++l;
        }
    }
    for (XMLFileLoc c = 1; c < column && i < text.size(); ++c) {
        ++i;
        while (i < text.size() && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) ++i;
    }
    return std::min(i, text.size());
}

constexpr std::size_t kMaxXmlBytes = 256u * 1024u * 1024u;

}  // namespace

std::string toXml(const Message& msg, bool pretty) { return Encoder(msg, pretty).run(); }

ParseResult fromXml(std::string_view xml) {
    ParseResult result;
    auto fail = [&](std::string msg, std::size_t offset = 0) {
        result.error = ParseError{"HL7 v2.xml: " + std::move(msg), offset};
        return std::move(result);
    };
    std::string err;
    if (!xerces::init(err)) return fail(err);
    if (xml.size() > kMaxXmlBytes)
        return fail("document of " + std::to_string(xml.size()) + " bytes exceeds the limit", kMaxXmlBytes);
    if (xml.find_first_not_of(" \t\r\n") == std::string_view::npos) return fail("empty document");

    std::string text;
    try {
        xerces::SecureParser secure(true);
        auto& parser = secure.parser;
        auto& errors = secure.errors;

        xc::MemBufInputSource source(reinterpret_cast<const XMLByte*>(xml.data()), xml.size(), "hl7-v2xml",
                                     false);
        try {
            parser.parse(source);
        } catch (const xc::XMLException& e) {
            if (!errors.failed) return fail("XML error: " + toUtf8(e.getMessage()));
        } catch (const xc::SAXException& e) {
            if (!errors.failed) return fail("XML error: " + toUtf8(e.getMessage()));
        } catch (const xc::DOMException& e) {
            if (!errors.failed) return fail("XML error: " + toUtf8(e.getMessage()));
        }
        if (errors.failed) {
            return fail("XML error at line " + std::to_string(errors.line) + ", column " +
                            std::to_string(errors.column) + ": " + errors.message,
                        byteOffset(xml, errors.line, errors.column));
        }
        const xc::DOMDocument* doc = parser.getDocument();
        if (!doc || !doc->getDocumentElement()) return fail("no document element");
        if (doc->getDoctype()) return fail("a DOCTYPE is not allowed");
        const xc::DOMElement* root = doc->getDocumentElement();
        std::string ns = toUtf8(root->getNamespaceURI());
        std::string rootName = localName(root);
        if (ns != kV2XmlNamespace) {
            // Without the namespace, accept only a message structure name (ORM_O01, ACK).
            bool structure = ns.empty() && rootName.size() >= 3 && isSegmentId(rootName.substr(0, 3)) &&
                             (rootName.size() == 3 || rootName[3] == '_');
            if (!structure)
                return fail("the root element <" + rootName + "> " +
                            (ns.empty() ? std::string("is not an HL7 message structure")
                                        : "is in namespace '" + ns + "', expected '" +
                                              std::string(kV2XmlNamespace) + "'"));
        }
        text = Decoder().run(root);
    } catch (const DecodeError& e) {
        return fail(e.message);
    } catch (const xc::OutOfMemoryException&) {
        return fail("out of memory");
    } catch (const xc::XMLException& e) {
        return fail("XML error: " + toUtf8(e.getMessage()));
    } catch (const xc::DOMException& e) {
        return fail("XML error: " + toUtf8(e.getMessage()));
    } catch (const std::exception& e) {
        return fail(e.what());
    } catch (...) {
        return fail("unexpected error");
    }

    ParseResult parsed = Message::parse(text, ParseOptions{0});
    if (!parsed) return fail("the decoded message is not valid HL7: " + parsed.error.message);
    return parsed;
}

}  // namespace junction::hl7
