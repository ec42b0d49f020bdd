// Keyword tables ↔ DICOM JSON (PS3.18 F.2), with DCMTK's data dictionary for
// tags and VRs. JSON is read with Poco and written here (attributes in tag order).
#include "engine/dicom/keyword_json.h"
#include "engine/dicom/dicom_text.h"
#include "engine/util/json_text.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcdicent.h>
#include <dcmtk/dcmdata/dctag.h>
#include <dcmtk/dcmdata/dcvr.h>

#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <sstream>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_map>

namespace junction::dicom {

namespace {

using Poco::Dynamic::Var;
using Poco::JSON::Array;
using Poco::JSON::Object;

// ------------------------------------------------------------ dictionary

struct TagInfo {
    std::uint32_t tag = 0;
    std::string vr;
};

std::string hexTag(std::uint32_t tag) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08X", tag);
    return buf;
}

bool parseHexTag(const std::string& s, std::uint32_t& out) {
    if (s.size() != 8) return false;
    std::uint32_t v = 0;
    for (char c : s) {
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return false;
        v = v * 16 + static_cast<std::uint32_t>(d);
    }
    out = v;
    return true;
}

void requireDictionary() {
    if (!dcmDataDict.isDictionaryLoaded())
        throw std::runtime_error("the DICOM data dictionary is not loaded (check DCMDICTPATH)");
}

std::string vrName(const DcmVR& vr) {
    std::string name = vr.getValidVRName();
    return name;
}

// VR of a tag from the dictionary ("UN" when unknown).
std::string vrOfTag(std::uint32_t tag) {
    requireDictionary();
    std::string vr = "UN";
    const DcmDataDictionary& dict = dcmDataDict.rdlock();
    const DcmDictEntry* e = dict.findEntry(DcmTagKey(static_cast<Uint16>(tag >> 16), static_cast<Uint16>(tag & 0xFFFF)), nullptr);
    if (e) vr = vrName(e->getVR());
    dcmDataDict.rdunlock();
    return vr;
}

// Keyword of a tag ("" when the dictionary does not know it).
std::string keywordOfTag(std::uint32_t tag) {
    requireDictionary();
    std::string name;
    const DcmDataDictionary& dict = dcmDataDict.rdlock();
    const DcmDictEntry* e = dict.findEntry(DcmTagKey(static_cast<Uint16>(tag >> 16), static_cast<Uint16>(tag & 0xFFFF)), nullptr);
    if (e && e->getTagName()) name = e->getTagName();
    dcmDataDict.rdunlock();
    return name;
}

// Keyword → tag and VR (cached: the dictionary's name lookup is a linear search).
std::optional<TagInfo> lookup(const std::string& key) {
    TagInfo info;
    if (parseHexTag(key, info.tag)) {
        info.vr = vrOfTag(info.tag);
        return info;
    }
    static std::mutex mu;
    static std::unordered_map<std::string, std::optional<TagInfo>> cache;
    {
        std::lock_guard<std::mutex> lock(mu);
        auto it = cache.find(key);
        if (it != cache.end()) return it->second;
    }
    requireDictionary();
    std::optional<TagInfo> found;
    bool valid = !key.empty() && std::isalpha(static_cast<unsigned char>(key[0]));
    for (char c : key)
        if (!std::isalnum(static_cast<unsigned char>(c))) valid = false;
    DcmTag tag;
    // Private dictionary entries share names with standard ones: standard only.
    if (valid && DcmTag::findTagFromName(key.c_str(), tag).good() && !tag.isPrivate()) {
        TagInfo t;
        t.tag = (static_cast<std::uint32_t>(tag.getGroup()) << 16) | tag.getElement();
        t.vr = vrName(tag.getVR());
        found = t;
    }
    std::lock_guard<std::mutex> lock(mu);
    if (cache.size() < 10000) cache.emplace(key, found);
    return found;
}

// ------------------------------------------------------------ model

struct Element;
using Dataset = std::map<std::uint32_t, Element>;
struct Value {
    std::string text;
    bool raw = false;  // text is a JSON literal (number, null, PN object)
};
struct Element {
    std::string vr;
    std::vector<Value> values;
    std::vector<Dataset> items;  // SQ
};

bool isIntegerVr(const std::string& vr) {
    return vr == "IS" || vr == "SS" || vr == "US" || vr == "SL" || vr == "UL" || vr == "SV" || vr == "UV";
}
bool isFloatVr(const std::string& vr) { return vr == "DS" || vr == "FL" || vr == "FD"; }
bool isNumberVr(const std::string& vr) { return isIntegerVr(vr) || isFloatVr(vr); }
bool isBinaryVr(const std::string& vr) {
    return vr == "OB" || vr == "OD" || vr == "OF" || vr == "OL" || vr == "OV" || vr == "OW" || vr == "UN";
}
bool isSingleTextVr(const std::string& vr) { return vr == "LT" || vr == "ST" || vr == "UT" || vr == "UR"; }

std::string formatDouble(double d) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, d);
    return std::string(buf, r.ptr);
}

[[noreturn]] void bad(const std::string& path, const std::string& what) {
    throw std::invalid_argument(path + ": " + what);
}

// A number (given as text) for a numeric VR, as a JSON literal.
Value numberValue(const std::string& path, const std::string& vr, const std::string& text) {
    std::string t = trimSpaces(text);
    if (t.empty()) return {"null", true};
    if (isIntegerVr(vr)) {
        if (!t.empty() && t[0] == '+') t.erase(0, 1);
        errno = 0;
        char* end = nullptr;
        if (!t.empty() && t[0] == '-') {
            long long v = std::strtoll(t.c_str(), &end, 10);
            if (errno || *end || end == t.c_str()) bad(path, "'" + text + "' is not an integer (" + vr + ")");
            if ((vr == "US" || vr == "UL" || vr == "UV")) bad(path, "'" + text + "' is negative (" + vr + " is unsigned)");
            return {std::to_string(v), true};
        }
        unsigned long long v = std::strtoull(t.c_str(), &end, 10);
        if (errno || *end || end == t.c_str()) bad(path, "'" + text + "' is not an integer (" + vr + ")");
        return {std::to_string(v), true};
    }
    errno = 0;
    char* end = nullptr;
    double d = std::strtod(t.c_str(), &end);
    if (errno || *end || end == t.c_str() || !std::isfinite(d))
        bad(path, "'" + text + "' is not a number (" + vr + ")");
    return {formatDouble(d), true};
}

std::string varText(const Var& v) {
    if (v.isInteger()) {
        if (v.isSigned()) return std::to_string(v.convert<Poco::Int64>());
        return std::to_string(v.convert<Poco::UInt64>());
    }
    if (v.isNumeric()) return formatDouble(v.convert<double>());
    return v.convert<std::string>();
}

Object::Ptr asObject(const Var& v) {
    if (v.type() == typeid(Object::Ptr)) return v.extract<Object::Ptr>();
    return nullptr;
}
Array::Ptr asArray(const Var& v) {
    if (v.type() == typeid(Array::Ptr)) return v.extract<Array::Ptr>();
    return nullptr;
}

void readDataset(const Object::Ptr& obj, Dataset& out, const std::string& prefix, const std::set<std::string>* skip);

void addScalar(const std::string& path, Element& el, const Var& v) {
    if (v.isEmpty()) {
        el.values.push_back({"null", true});
        return;
    }
    if (auto o = asObject(v)) {
        if (el.vr != "PN") bad(path, "a table is not a value for VR " + el.vr);
        for (const auto& [k, val] : *o) {
            if (k != "Alphabetic" && k != "Ideographic" && k != "Phonetic")
                bad(path, "a person name table takes Alphabetic, Ideographic and Phonetic, not '" + k + "'");
            if (!val.isString()) bad(path, "person name " + k + " must be a string");
        }
        std::ostringstream os;
        o->stringify(os);
        el.values.push_back({os.str(), true});
        return;
    }
    if (asArray(v)) bad(path, "nested arrays are not values");
    if (v.isBoolean()) bad(path, "true/false is not a DICOM value");
    std::string text = varText(v);
    if (v.isString() && !isSingleTextVr(el.vr) && !isBinaryVr(el.vr) && text.find('\\') != std::string::npos) {
        std::size_t start = 0;
        while (start <= text.size()) {
            std::size_t end = text.find('\\', start);
            if (end == std::string::npos) end = text.size();
            std::string piece = text.substr(start, end - start);
            if (isNumberVr(el.vr)) el.values.push_back(numberValue(path, el.vr, piece));
            else if (piece.empty()) el.values.push_back({"null", true});
            else el.values.push_back({piece, false});
            start = end + 1;
        }
        return;
    }
    if (isNumberVr(el.vr)) el.values.push_back(numberValue(path, el.vr, text));
    else el.values.push_back({text, false});
}

Element readElement(const std::string& path, const TagInfo& info, const Var& v) {
    Element el;
    el.vr = info.vr;
    if (el.vr == "SQ") {
        if (v.isEmpty() || (v.isString() && v.convert<std::string>().empty())) return el;
        if (auto o = asObject(v)) {
            if (o->size() == 0) return el;  // {} (an empty Lua table): no items
            el.items.emplace_back();
            readDataset(o, el.items.back(), path + ".", nullptr);
            return el;
        }
        auto a = asArray(v);
        if (!a) bad(path, "a sequence takes an array of tables");
        for (std::size_t i = 0; i < a->size(); ++i) {
            auto o = asObject(a->get(static_cast<unsigned>(i)));
            if (!o) bad(path + "[" + std::to_string(i + 1) + "]", "a sequence item must be a table");
            el.items.emplace_back();
            readDataset(o, el.items.back(), path + "[" + std::to_string(i + 1) + "].", nullptr);
        }
        return el;
    }
    if (v.isEmpty() || (v.isString() && v.convert<std::string>().empty())) return el;  // present, no value
    if (auto a = asArray(v)) {
        for (std::size_t i = 0; i < a->size(); ++i)
            addScalar(path + "[" + std::to_string(i + 1) + "]", el, a->get(static_cast<unsigned>(i)));
        return el;
    }
    addScalar(path, el, v);
    return el;
}

void readDataset(const Object::Ptr& obj, Dataset& out, const std::string& prefix, const std::set<std::string>* skip) {
    for (const auto& [key, value] : *obj) {
        if (skip && skip->count(key)) continue;
        std::string path = prefix + key;
        auto info = lookup(key);
        if (!info) bad(path, "unknown DICOM keyword '" + key + "'");
        if (info->vr == "na" || info->vr == "UNKNOWN" || info->vr.empty())
            bad(path, "'" + key + "' is not an attribute");
        out[info->tag] = readElement(path, *info, value);
    }
}

Var parseJson(const std::string& text, const char* what) {
    try {
        Poco::JSON::Parser parser;
        return parser.parse(text);
    } catch (const Poco::Exception& e) {
        throw std::invalid_argument(std::string(what) + " is not valid JSON: " + e.displayText());
    }
}

Dataset readKeywords(const std::string& keywordJson, const std::vector<std::string>& skip) {
    Var root = parseJson(keywordJson, "the keyword table");
    auto obj = asObject(root);
    if (!obj) throw std::invalid_argument("a keyword table must be a JSON object");
    std::set<std::string> skipSet(skip.begin(), skip.end());
    Dataset ds;
    readDataset(obj, ds, "", &skipSet);
    return ds;
}

// ------------------------------------------------------------ writing

void writeString(std::string& out, const std::string& s) { util::appendJsonString(out, s); }

void writeDataset(std::string& out, const Dataset& ds) {
    out += '{';
    bool first = true;
    for (const auto& [tag, el] : ds) {
        if (!first) out += ',';
        first = false;
        writeString(out, hexTag(tag));
        out += ":{\"vr\":";
        writeString(out, el.vr);
        if (el.vr == "SQ") {
            if (!el.items.empty()) {
                out += ",\"Value\":[";
                for (std::size_t i = 0; i < el.items.size(); ++i) {
                    if (i) out += ',';
                    writeDataset(out, el.items[i]);
                }
                out += ']';
            }
        } else if (isBinaryVr(el.vr)) {
            if (!el.values.empty() && !el.values[0].raw) {
                out += ",\"InlineBinary\":";
                writeString(out, el.values[0].text);
            }
        } else if (!el.values.empty()) {
            out += ",\"Value\":[";
            for (std::size_t i = 0; i < el.values.size(); ++i) {
                if (i) out += ',';
                const Value& v = el.values[i];
                if (v.raw) {
                    out += v.text;
                } else if (el.vr == "PN") {
                    out += "{\"Alphabetic\":";
                    writeString(out, v.text);
                    out += '}';
                } else {
                    writeString(out, v.text);
                }
            }
            out += ']';
        }
        out += '}';
    }
    out += '}';
}

std::string firstText(const Dataset& ds, std::uint32_t tag) {
    auto it = ds.find(tag);
    if (it == ds.end()) return {};
    for (const auto& v : it->second.values)
        if (!v.raw) return v.text;
    return {};
}

// ------------------------------------------------------------ reverse

void writeNumber(std::string& out, const Var& v) { out += varText(v); }

void writeKeywords(std::string& out, const Object::Ptr& obj, const std::string& prefix);

void writeKeywordValue(std::string& out, const std::string& path, const Object::Ptr& el) {
    std::string vr = el->has("vr") ? el->getValue<std::string>("vr") : "UN";
    Var value = el->get("Value");
    auto values = asArray(value);
    if (vr == "SQ") {
        out += '[';
        if (values)
            for (std::size_t i = 0; i < values->size(); ++i) {
                if (i) out += ',';
                auto item = asObject(values->get(static_cast<unsigned>(i)));
                if (!item) bad(path, "a sequence item must be an object");
                writeKeywords(out, item, path + "[" + std::to_string(i + 1) + "].");
            }
        out += ']';
        return;
    }
    if (!values) {
        Var inline_ = el->get("InlineBinary");
        if (inline_.isString()) writeString(out, inline_.convert<std::string>());
        else writeString(out, "");
        return;
    }
    if (isNumberVr(vr)) {
        if (values->size() == 1 && values->get(0).isNumeric()) {
            writeNumber(out, values->get(0));
            return;
        }
        out += '[';
        for (std::size_t i = 0; i < values->size(); ++i) {
            if (i) out += ',';
            Var v = values->get(static_cast<unsigned>(i));
            if (v.isEmpty()) out += "null";
            else if (v.isNumeric()) writeNumber(out, v);
            else if (v.isString()) writeString(out, v.convert<std::string>());
            else bad(path, "a " + vr + " value must be a number");
        }
        out += ']';
        return;
    }
    // Strings (and PN): one string, values joined by backslashes; a PN with more
    // than an Alphabetic group stays an object.
    std::string joined;
    for (std::size_t i = 0; i < values->size(); ++i) {
        Var v = values->get(static_cast<unsigned>(i));
        if (i) joined += '\\';
        if (v.isEmpty()) continue;
        if (auto pn = asObject(v)) {
            bool onlyAlphabetic = pn->size() == 1 && pn->has("Alphabetic");
            if (!onlyAlphabetic && values->size() == 1) {
                std::ostringstream os;
                pn->stringify(os);
                out += os.str();
                return;
            }
            if (pn->has("Alphabetic")) joined += pn->getValue<std::string>("Alphabetic");
            continue;
        }
        if (asArray(v)) bad(path, "nested arrays are not values");
        joined += varText(v);
    }
    writeString(out, joined);
}

void writeKeywords(std::string& out, const Object::Ptr& obj, const std::string& prefix) {
    out += '{';
    bool first = true;
    for (const auto& [key, value] : *obj) {
        std::uint32_t tag;
        if (!parseHexTag(key, tag)) bad(prefix + key, "DICOM JSON attributes are keyed by 8 hex digits");
        auto el = asObject(value);
        if (!el) bad(prefix + key, "a DICOM JSON attribute must be an object with \"vr\"");
        std::string name = keywordOfTag(tag);
        if (name.empty()) name = hexTag(tag);
        if (!first) out += ',';
        first = false;
        writeString(out, name);
        out += ':';
        writeKeywordValue(out, prefix + name, el);
    }
    out += '}';
}

}  // namespace

std::string keywordsToDicomJson(const std::string& keywordJson, const std::vector<std::string>& skip) {
    Dataset ds = readKeywords(keywordJson, skip);
    std::string out;
    writeDataset(out, ds);
    return out;
}

std::string dicomJsonToKeywords(const std::string& dicomJson) {
    Var root = parseJson(dicomJson, "the DICOM JSON dataset");
    auto obj = asObject(root);
    if (!obj) throw std::invalid_argument("a DICOM JSON dataset must be a JSON object");
    std::string out;
    writeKeywords(out, obj, "");
    return out;
}

store::WorklistItem worklistItemFromKeywords(const std::string& keywordJson, const std::vector<std::string>& skip) {
    Dataset ds = readKeywords(keywordJson, skip);
    store::WorklistItem item;
    item.patientId = firstText(ds, 0x00100020);
    item.patientName = firstText(ds, 0x00100010);
    item.accessionNumber = firstText(ds, 0x00080050);
    item.requestedProcedureId = firstText(ds, 0x00401001);
    item.studyInstanceUid = firstText(ds, 0x0020000D);
    auto sps = ds.find(0x00400100);
    if (sps != ds.end() && !sps->second.items.empty()) {
        const Dataset& step = sps->second.items.front();
        item.modality = firstText(step, 0x00080060);
        item.stationAeTitle = firstText(step, 0x00400001);
        item.spsStartDate = firstText(step, 0x00400002);
        item.spsStartTime = firstText(step, 0x00400003);
        for (std::size_t i = 1; i < sps->second.items.size(); ++i) {
            const Dataset& more = sps->second.items[i];
            item.moreSteps.push_back({firstText(more, 0x00080060), firstText(more, 0x00400001),
                                      firstText(more, 0x00400002), firstText(more, 0x00400003)});
        }
    }
    writeDataset(item.dataset, ds);
    return item;
}

std::string tagOfKeyword(const std::string& keyword) {
    auto info = lookup(keyword);
    if (!info) return {};
    char buf[16];
    std::snprintf(buf, sizeof buf, "(%04X,%04X)", info->tag >> 16, info->tag & 0xFFFF);
    return buf;
}

}  // namespace junction::dicom
