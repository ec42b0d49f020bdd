#include "connectors/dicom/dataset_json.h"

#include <Poco/Base64Decoder.h>
#include <Poco/Base64Encoder.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcvr.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <vector>

namespace junction::dicom {

namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;

std::string tagKey(const DcmTagKey& t) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%04X%04X", t.getGroup(), t.getElement());
    return buf;
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

std::vector<std::string> splitBackslash(const std::string& s) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (true) {
        std::size_t p = s.find('\\', start);
        out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
        if (p == std::string::npos) break;
        start = p + 1;
    }
    return out;
}

std::string trimmed(const std::string& s) {
    std::size_t b = s.find_first_not_of(' ');
    if (b == std::string::npos) return {};
    std::size_t e = s.find_last_not_of(' ');
    return s.substr(b, e - b + 1);
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

Poco::Dynamic::Var number(const std::string& s, bool integer) {
    std::string t = trimmed(s);
    if (t.empty()) return Poco::Dynamic::Var();
    try {
        std::size_t used = 0;
        if (integer) {
            long long v = std::stoll(t, &used);
            if (used == t.size()) return Poco::Dynamic::Var(static_cast<Poco::Int64>(v));
        } else {
            double v = std::stod(t, &used);
            if (used == t.size() && std::isfinite(v)) return Poco::Dynamic::Var(v);
        }
    } catch (const std::exception&) {
    }
    return Poco::Dynamic::Var(t);  // not a number: keep the text rather than lose it
}

Object::Ptr itemToObject(DcmItem& item);

void addElement(Object& out, DcmElement& elem) {
    DcmTag tag = elem.getTag();
    if (tag.getElement() == 0) return;  // group length
    Object::Ptr a = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    DcmEVR evr = elem.getVR();
    DcmVR vr(evr);
    const char* vrName = vr.getValidVRName();
    a->set("vr", std::string(vrName));
    Kind kind = kindOf(evr);
    if (kind == Kind::Sequence) {
        auto& seq = static_cast<DcmSequenceOfItems&>(elem);
        if (seq.card() > 0) {
            Array::Ptr items = new Array;
            for (unsigned long i = 0; i < seq.card(); ++i) items->add(itemToObject(*seq.getItem(i)));
            a->set("Value", items);
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
                std::ostringstream os;
                Poco::Base64Encoder enc(os);
                enc.rdbuf()->setLineLength(0);
                enc.write(reinterpret_cast<const char*>(bytes), elem.getLength());
                enc.close();
                a->set("InlineBinary", os.str());
            }
        }
    } else if (elem.getLength() > 0 || elem.getVM() > 0) {
        OFString all;
        elem.getOFStringArray(all);
        if (!all.empty() || elem.getVM() > 1) {
            Array::Ptr values = new Array;
            for (const std::string& v : splitBackslash(all.c_str())) {
                switch (kind) {
                case Kind::PersonName: {
                    if (v.empty()) {
                        values->add(Poco::Dynamic::Var());
                        break;
                    }
                    Object::Ptr pn = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
                    static const char* names[3] = {"Alphabetic", "Ideographic", "Phonetic"};
                    std::size_t start = 0;
                    for (int g = 0; g < 3; ++g) {
                        std::size_t p = v.find('=', start);
                        std::string part = v.substr(start, p == std::string::npos ? std::string::npos : p - start);
                        if (!part.empty()) pn->set(names[g], part);
                        if (p == std::string::npos) break;
                        start = p + 1;
                    }
                    values->add(pn);
                    break;
                }
                case Kind::Integer: values->add(number(v, evr != EVR_FL && evr != EVR_FD)); break;
                case Kind::Decimal: values->add(number(v, false)); break;
                case Kind::Tag: {
                    std::string hex;
                    for (char c : v)
                        if (std::isxdigit(static_cast<unsigned char>(c))) hex += static_cast<char>(std::toupper(c));
                    values->add(hex);
                    break;
                }
                default:
                    values->add(v.empty() ? Poco::Dynamic::Var() : Poco::Dynamic::Var(v));
                }
            }
            a->set("Value", values);
        }
    }
    out.set(tagKey(tag), a);
}

Object::Ptr itemToObject(DcmItem& item) {
    Object::Ptr o = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    for (unsigned long i = 0; i < item.card(); ++i) addElement(*o, *item.getElement(i));
    return o;
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

std::string datasetToJson(DcmItem& item) {
    std::ostringstream os;
    Poco::JSON::Stringifier::stringify(itemToObject(item), os, 0, -1);
    return os.str();
}

}  // namespace junction::dicom
