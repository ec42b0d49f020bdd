// DICOM JSON (PS3.18 F.2) read into and written from DCMTK datasets (see dataset_json.h).
#include "engine/dicom/dataset_json.h"

#include <Poco/Base64Decoder.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcvr.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <vector>

#include "engine/util/json_text.h"

namespace junction::dicom {

namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;

void appendTagKey(std::string& out, const DcmTagKey& t) {
    static const char hex[] = "0123456789ABCDEF";
    unsigned v = (static_cast<unsigned>(t.getGroup()) << 16) | t.getElement();
    for (int shift = 28; shift >= 0; shift -= 4) out.push_back(hex[(v >> shift) & 0xF]);
}

bool isHex(const std::string& s) {
    if (s.size() != 8) return false;
    for (char c : s)
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    return true;
}

enum class Kind { Text, PersonName, Integer, Decimal, Binary, Tag, Sequence };

Kind kindOf(DcmEVR vr) {
    switch (vr) {
    case EVR_SQ: return Kind::Sequence;
    case EVR_PN: return Kind::PersonName;
    case EVR_US: case EVR_SS: case EVR_UL: case EVR_SL: case EVR_UV: case EVR_SV: case EVR_IS:
        return Kind::Integer;
    case EVR_FL: case EVR_FD: case EVR_DS:
        return Kind::Decimal;
    case EVR_OB: case EVR_OW: case EVR_OF: case EVR_OD: case EVR_OL: case EVR_OV: case EVR_UN:
    case EVR_ox: case EVR_px: case EVR_lt:
        return Kind::Binary;
    case EVR_AT: return Kind::Tag;
    default: return Kind::Text;
    }
}

// A JSON number as a DICOM string (IS/DS/binary numbers take decimal strings).
std::string numberText(const Poco::Dynamic::Var& v, DcmEVR vr, const std::string& key) {
    if (v.isString()) return v.extract<std::string>();
    if (v.isInteger()) {
        if (v.isSigned()) return std::to_string(v.convert<Poco::Int64>());
        return std::to_string(v.convert<Poco::UInt64>());
    }
    if (v.isNumeric()) {
        double d = v.convert<double>();
        if (!std::isfinite(d)) throw JsonError(key + ": number out of range");
        char buf[40];
        // DS holds at most 16 characters: use the longest precision that fits.
        int maxLen = vr == EVR_DS ? 16 : 39;
        for (int prec = 17; prec >= 1; --prec) {
            std::snprintf(buf, sizeof buf, "%.*g", prec, d);
            if (static_cast<int>(std::strlen(buf)) <= maxLen) break;
        }
        return buf;
    }
    if (v.isBoolean()) return v.convert<bool>() ? "1" : "0";
    throw JsonError(key + ": expected a number");
}

std::string personName(const Poco::Dynamic::Var& v, const std::string& key) {
    if (v.isEmpty()) return {};
    if (v.isString()) return v.extract<std::string>();
    if (v.type() != typeid(Object::Ptr)) throw JsonError(key + ": PN value must be an object with \"Alphabetic\"");
    auto o = v.extract<Object::Ptr>();
    auto part = [&](const char* name) {
        if (!o->has(name) || o->isNull(name)) return std::string();
        auto p = o->get(name);
        if (!p.isString()) throw JsonError(key + ": PN " + name + " must be a string");
        return p.extract<std::string>();
    };
    std::string groups[3] = {part("Alphabetic"), part("Ideographic"), part("Phonetic")};
    int last = 2;
    while (last > 0 && groups[last].empty()) --last;
    std::string out = groups[0];
    for (int i = 1; i <= last; ++i) out += "=" + groups[i];
    return out;
}

std::string tagValue(const Poco::Dynamic::Var& v, const std::string& key) {
    if (!v.isString()) throw JsonError(key + ": AT values are strings like \"00100010\"");
    std::string s = v.extract<std::string>();
    if (!isHex(s)) throw JsonError(key + ": bad AT value '" + s + "'");
    return "(" + s.substr(0, 4) + "," + s.substr(4) + ")";
}

void fillItem(DcmItem& item, const Object& obj, const std::string& where);

void putElement(DcmItem& item, const std::string& key, const Poco::Dynamic::Var& attr, const std::string& where) {
    std::string path = where.empty() ? key : where + "." + key;
    if (!isHex(key)) throw JsonError(path + ": attribute keys are 8 hex digits");
    if (attr.type() != typeid(Object::Ptr)) throw JsonError(path + ": attribute must be an object");
    auto a = attr.extract<Object::Ptr>();
    unsigned long g = std::stoul(key.substr(0, 4), nullptr, 16), e = std::stoul(key.substr(4), nullptr, 16);
    DcmTag tag(static_cast<Uint16>(g), static_cast<Uint16>(e));
    if (a->has("vr")) {
        auto vrVar = a->get("vr");
        if (!vrVar.isString()) throw JsonError(path + ": vr must be a string");
        std::string vrName = vrVar.extract<std::string>();
        DcmVR vr(vrName.c_str());
        if (vrName.size() != 2 || !vr.isStandard()) throw JsonError(path + ": unknown VR '" + vrName + "'");
        tag.setVR(vr);
    } else if (tag.getEVR() == EVR_UNKNOWN || tag.getEVR() == EVR_UN) {
        throw JsonError(path + ": no \"vr\" and the tag is not in the dictionary");
    }
    if (e == 0) return;  // group lengths are recomputed on write
    DcmElement* raw = nullptr;
    if (DcmItem::newDicomElementWithVR(raw, tag).bad() || raw == nullptr)
        throw JsonError(path + ": cannot create an element with VR " + std::string(tag.getVRName()));
    std::unique_ptr<DcmElement> elem(raw);
    DcmEVR vr = elem->ident();
    Kind kind = kindOf(tag.getEVR());

    if (a->has("BulkDataURI")) throw JsonError(path + ": BulkDataURI values are not supported");
    if (a->has("InlineBinary")) {
        if (kind != Kind::Binary) throw JsonError(path + ": InlineBinary on a non-binary VR");
        auto b = a->get("InlineBinary");
        if (!b.isString()) throw JsonError(path + ": InlineBinary must be a base64 string");
        std::istringstream in(b.extract<std::string>());
        Poco::Base64Decoder dec(in);
        std::string bytes((std::istreambuf_iterator<char>(dec)), std::istreambuf_iterator<char>());
        if (vr == EVR_OW || vr == EVR_lt) {
            if (bytes.size() % 2) throw JsonError(path + ": OW data has an odd length");
            std::vector<Uint16> words(bytes.size() / 2);
            std::memcpy(words.data(), bytes.data(), bytes.size());
            elem->putUint16Array(words.data(), static_cast<unsigned long>(words.size()));
        } else {
            elem->putUint8Array(reinterpret_cast<const Uint8*>(bytes.data()), static_cast<unsigned long>(bytes.size()));
        }
    } else if (a->has("Value") && !a->isNull("Value")) {
        auto valueVar = a->get("Value");
        if (valueVar.type() != typeid(Array::Ptr)) throw JsonError(path + ": Value must be an array");
        auto values = valueVar.extract<Array::Ptr>();
        if (kind == Kind::Sequence) {
            auto* seq = static_cast<DcmSequenceOfItems*>(elem.get());
            for (std::size_t i = 0; i < values->size(); ++i) {
                auto iv = values->get(static_cast<unsigned>(i));
                auto child = std::make_unique<DcmItem>();
                if (!iv.isEmpty()) {
                    if (iv.type() != typeid(Object::Ptr)) throw JsonError(path + ": sequence items must be objects");
                    fillItem(*child, *iv.extract<Object::Ptr>(), path + "[" + std::to_string(i) + "]");
                }
                seq->insert(child.release());
            }
        } else if (kind == Kind::Binary) {
            throw JsonError(path + ": binary VRs take InlineBinary, not Value");
        } else {
            std::string joined;
            for (std::size_t i = 0; i < values->size(); ++i) {
                auto v = values->get(static_cast<unsigned>(i));
                if (i) joined += '\\';
                if (v.isEmpty()) continue;  // null: an empty value in a multi-valued attribute
                switch (kind) {
                case Kind::PersonName: joined += personName(v, path); break;
                case Kind::Integer:
                case Kind::Decimal: joined += numberText(v, vr, path); break;
                case Kind::Tag: joined += tagValue(v, path); break;
                default:
                    if (v.isString()) joined += v.extract<std::string>();
                    else if (v.isNumeric()) joined += numberText(v, vr, path);
                    else throw JsonError(path + ": expected a string value");
                }
            }
            OFCondition c = elem->putString(joined.c_str(), static_cast<Uint32>(joined.size()));
            if (c.bad()) throw JsonError(path + ": invalid value: " + std::string(c.text()));
        }
    }
    if (item.insert(elem.get(), true /*replace*/).bad()) throw JsonError(path + ": cannot insert the element");
    elem.release();
}

void fillItem(DcmItem& item, const Object& obj, const std::string& where) {
    for (const auto& [key, attr] : obj) putElement(item, key, attr, where);
}

Object::Ptr parseObject(const std::string& json) {
    Poco::JSON::Parser parser;
    Poco::Dynamic::Var root;
    try {
        root = parser.parse(json);
    } catch (const Poco::Exception& e) {
        throw JsonError("not valid JSON: " + e.displayText());
    }
    if (root.type() != typeid(Object::Ptr)) throw JsonError("DICOM JSON must be an object");
    return root.extract<Object::Ptr>();
}

// ---------------------------------------------------------------- writing

// Text straight into `out` (the JSON is written per instance on the C-STORE
// path: no intermediate objects, no streams).

template <typename T>
void appendNumber(std::string& out, T v) {
    if constexpr (std::is_floating_point_v<T>) {
        if (!std::isfinite(v)) {
            out += "null";  // JSON has no NaN or infinity
            return;
        }
    }
    char buf[40];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

std::string_view trim(std::string_view v) {
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\0')) v.remove_suffix(1);
    return v;
}

// An IS or DS value as a JSON number; text that is no number stays a string.
void appendNumberText(std::string& out, std::string_view raw, bool integer) {
    std::string_view t = trim(raw);
    if (t.empty()) {
        out += "null";
        return;
    }
    std::string_view digits = t.front() == '+' ? t.substr(1) : t;
    if (integer) {
        long long v = 0;
        auto r = std::from_chars(digits.data(), digits.data() + digits.size(), v);
        if (r.ec == std::errc() && r.ptr == digits.data() + digits.size()) return appendNumber(out, v);
    } else {
        // from_chars does not take "5." or ".5"; strtod does (and DS allows both).
        std::string z(digits);
        char* end = nullptr;
        double v = std::strtod(z.c_str(), &end);
        if (!z.empty() && end == z.c_str() + z.size() && std::isfinite(v) && z.find_first_of("xXnN") == std::string::npos)
            return appendNumber(out, v);
    }
    util::appendJsonString(out, t);
}

void appendBase64(std::string& out, const Uint8* p, std::size_t n) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.reserve(out.size() + (n + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned(p[i]) << 16) | (unsigned(p[i + 1]) << 8) | p[i + 2];
        out += tbl[v >> 18];
        out += tbl[(v >> 12) & 63];
        out += tbl[(v >> 6) & 63];
        out += tbl[v & 63];
    }
    if (i < n) {
        unsigned v = unsigned(p[i]) << 16;
        if (i + 1 < n) v |= unsigned(p[i + 1]) << 8;
        out += tbl[v >> 18];
        out += tbl[(v >> 12) & 63];
        out += i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out += '=';
    }
}

// Values of a binary-encoded numeric VR (US, SS, UL, SL, FL, FD, SV, UV).
bool appendBinaryNumbers(std::string& out, DcmElement& elem, DcmEVR evr) {
    unsigned long vm = elem.getVM();
    for (unsigned long i = 0; i < vm; ++i) {
        if (i) out += ',';
        OFCondition c;
        switch (evr) {
        case EVR_US: { Uint16 v; c = elem.getUint16(v, i); if (c.good()) appendNumber(out, v); break; }
        case EVR_SS: { Sint16 v; c = elem.getSint16(v, i); if (c.good()) appendNumber(out, v); break; }
        case EVR_UL: { Uint32 v; c = elem.getUint32(v, i); if (c.good()) appendNumber(out, v); break; }
        case EVR_SL: { Sint32 v; c = elem.getSint32(v, i); if (c.good()) appendNumber(out, v); break; }
        case EVR_FL: { Float32 v; c = elem.getFloat32(v, i); if (c.good()) appendNumber(out, v); break; }
        case EVR_FD: { Float64 v; c = elem.getFloat64(v, i); if (c.good()) appendNumber(out, v); break; }
        default: {  // SV, UV: through their text
            OFString text;
            c = elem.getOFString(text, i);
            if (c.good()) appendNumberText(out, std::string_view(text.c_str(), text.length()), true);
        }
        }
        if (c.bad()) return false;
    }
    return true;
}

void appendPersonName(std::string& out, std::string_view v) {
    if (v.empty()) {
        out += "null";
        return;
    }
    static const char* names[3] = {"Alphabetic", "Ideographic", "Phonetic"};
    out += '{';
    bool any = false;
    for (int g = 0; g < 3; ++g) {
        std::size_t p = v.find('=');
        std::string_view part = v.substr(0, p);
        if (!part.empty()) {
            if (any) out += ',';
            any = true;
            out += '"';
            out += names[g];
            out += "\":";
            util::appendJsonString(out, part);
        }
        if (p == std::string_view::npos) break;
        v.remove_prefix(p + 1);
    }
    out += '}';
}

bool singleValued(DcmEVR evr) { return evr == EVR_LT || evr == EVR_ST || evr == EVR_UT || evr == EVR_UR; }

void appendItem(DcmItem& item, std::string& out, bool (*skip)(DcmObject&));

void appendElement(DcmElement& elem, std::string& out, bool (*skip)(DcmObject&)) {
    DcmEVR evr = elem.getVR();
    out += '"';
    appendTagKey(out, elem.getTag());
    out += "\":{\"vr\":\"";
    out += DcmVR(evr).getValidVRName();
    out += '"';
    Kind kind = kindOf(evr);
    if (kind == Kind::Sequence) {
        auto& seq = static_cast<DcmSequenceOfItems&>(elem);
        if (seq.card() > 0) {
            out += ",\"Value\":[";
            for (unsigned long i = 0; i < seq.card(); ++i) {
                if (i) out += ',';
                appendItem(*seq.getItem(i), out, skip);
            }
            out += ']';
        }
    } else if (kind == Kind::Binary) {
        if (elem.getLength() > 0) {
            Uint8* bytes = nullptr;
            if (evr == EVR_OW || evr == EVR_lt) {
                Uint16* words = nullptr;
                elem.getUint16Array(words);
                bytes = reinterpret_cast<Uint8*>(words);
            } else {
                elem.getUint8Array(bytes);
            }
            if (bytes) {
                out += ",\"InlineBinary\":\"";
                appendBase64(out, bytes, elem.getLength());
                out += '"';
            }
        }
    } else if (elem.getLength() > 0 || elem.getVM() > 0) {
        std::size_t mark = out.size();
        out += ",\"Value\":[";
        bool ok = true;
        if (evr == EVR_US || evr == EVR_SS || evr == EVR_UL || evr == EVR_SL || evr == EVR_FL || evr == EVR_FD ||
            evr == EVR_SV || evr == EVR_UV) {
            ok = elem.getVM() > 0 && appendBinaryNumbers(out, elem, evr);
        } else {
            OFString all;
            elem.getOFStringArray(all);
            std::string_view v(all.c_str(), all.length());
            if (v.empty() && elem.getVM() <= 1) {
                ok = false;
            } else {
                bool first = true;
                while (true) {
                    std::size_t bs = singleValued(evr) ? std::string_view::npos : v.find('\\');
                    std::string_view one = v.substr(0, bs);
                    if (!first) out += ',';
                    first = false;
                    switch (kind) {
                    case Kind::PersonName: appendPersonName(out, one); break;
                    case Kind::Integer: appendNumberText(out, one, true); break;
                    case Kind::Decimal: appendNumberText(out, one, false); break;
                    case Kind::Tag: {
                        std::string hex;
                        for (char c : one)
                            if (std::isxdigit(static_cast<unsigned char>(c)))
                                hex += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                        util::appendJsonString(out, hex);
                        break;
                    }
                    default:
                        if (one.empty()) out += "null";
                        else util::appendJsonString(out, one);
                    }
                    if (bs == std::string_view::npos) break;
                    v.remove_prefix(bs + 1);
                }
            }
        }
        if (ok) out += ']';
        else out.resize(mark);  // nothing to say: present and empty
    }
    out += '}';
}

void appendItem(DcmItem& item, std::string& out, bool (*skip)(DcmObject&)) {
    out += '{';
    bool first = true;
    // nextInContainer walks the list; getElement(i) would seek from its head each time.
    for (DcmObject* obj = item.nextInContainer(nullptr); obj; obj = item.nextInContainer(obj)) {
        auto* elem = static_cast<DcmElement*>(obj);
        if (elem->getTag().getElement() == 0) continue;  // group length
        if (skip && skip(*elem)) continue;
        if (!first) out += ',';
        first = false;
        appendElement(*elem, out, skip);
    }
    out += '}';
}

}  // namespace

std::unique_ptr<DcmDataset> datasetFromJson(const std::string& json) {
    auto obj = parseObject(json);
    auto ds = std::make_unique<DcmDataset>();
    fillItem(*ds, *obj, "");
    return ds;
}

void mergeJson(DcmItem& item, const std::string& json) {
    auto obj = parseObject(json);
    fillItem(item, *obj, "");
}

void appendItemJson(DcmItem& item, std::string& out, bool (*skip)(DcmObject&)) { appendItem(item, out, skip); }

std::string datasetToJson(DcmItem& item) {
    std::string out;
    appendItem(item, out, nullptr);
    return out;
}

}  // namespace junction::dicom
