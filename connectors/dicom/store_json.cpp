// DICOM JSON for stored instances (see store_json.h).
#include "connectors/dicom/store_json.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcvrat.h>
#include <dcmtk/ofstd/ofstd.h>

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include "engine/dicom/dataset_json.h"
#include "engine/dicom/part10_dcmtk.h"
#include "connectors/dicom/store_dcmtk.h"

namespace junction::dicom {

namespace {

using Poco::Dynamic::Var;
using Poco::JSON::Array;
using Poco::JSON::Object;

bool isBinaryVr(DcmEVR vr) {
    switch (vr) {
    case EVR_OB: case EVR_OW: case EVR_OD: case EVR_OF: case EVR_OL: case EVR_OV: case EVR_UN:
    case EVR_ox: case EVR_px: case EVR_pixelSQ:
        return true;
    default:
        return false;
    }
}

bool isPixelTag(const DcmTagKey& t) {
    return t == DCM_PixelData || t == DCM_FloatPixelData || t == DCM_DoubleFloatPixelData;
}

// Elements the JSON leaves out (and an edit never removes).
bool omitted(DcmObject* obj) {
    DcmTagKey key = obj->getTag();
    // Pixel data and whatever follows it (trailing padding ...) are never in the JSON.
    if (isPixelTag(key) || !(key < DCM_PixelData)) return true;
    if (key.getGroup() == 0x0002) return true;
    if (obj->ident() == EVR_SQ) return false;
    return isBinaryVr(obj->ident()) && obj->getLength() > kMaxInlineBinaryBytes;
}

std::string tagKey(const DcmTagKey& t) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04X%04X", t.getGroup(), t.getElement());
    return buf;
}


// ------------------------------------------------------------------ reading JSON back

std::string numberText(const Var& v, bool integer) {
    if (v.isString()) return v.convert<std::string>();
    if (integer || v.isInteger()) {
        if (v.isInteger()) return std::to_string(v.convert<long long>());
        double d = v.convert<double>();
        if (std::floor(d) == d && std::fabs(d) < 9e15) return std::to_string(static_cast<long long>(d));
        return std::to_string(static_cast<long long>(std::llround(d)));
    }
    double d = v.convert<double>();
    char buf[32];
    for (int precision = 15; precision >= 6; --precision) {
        std::snprintf(buf, sizeof buf, "%.*g", precision, d);
        if (std::strlen(buf) <= 16) break;
    }
    return buf;
}

std::string personName(const Var& v) {
    if (v.isString()) return v.convert<std::string>();
    if (v.type() != typeid(Object::Ptr)) return {};
    auto o = v.extract<Object::Ptr>();
    std::string parts[3];
    const char* keys[3] = {"Alphabetic", "Ideographic", "Phonetic"};
    int last = -1;
    for (int i = 0; i < 3; ++i)
        if (o->has(keys[i]) && !o->get(keys[i]).isEmpty()) {
            parts[i] = o->get(keys[i]).convert<std::string>();
            last = i;
        }
    std::string out;
    for (int i = 0; i <= last; ++i) out += (i ? "=" : "") + parts[i];
    return out;
}

Array::Ptr valueArray(const Object::Ptr& e) {
    if (!e->has("Value")) return nullptr;
    Var v = e->get("Value");
    if (v.type() == typeid(Array::Ptr)) return v.extract<Array::Ptr>();
    return nullptr;  // null, or {} from a JSON round trip of an empty list
}

bool parseTag(const std::string& key, DcmTagKey& out) {
    if (key.size() != 8) return false;
    unsigned g = 0, e = 0;
    for (char c : key)
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    std::sscanf(key.c_str(), "%4x%4x", &g, &e);
    out = DcmTagKey(static_cast<Uint16>(g), static_cast<Uint16>(e));
    return true;
}

int applyToItem(DcmItem& item, const Object::Ptr& json, std::string& error);

// A new element (or sequence) for `key` from its JSON; nullptr with `error`.
DcmElement* elementFromJson(const DcmTagKey& key, const Object::Ptr& e, std::string& error) {
    std::string vrName = e->has("vr") ? e->get("vr").convert<std::string>() : std::string();
    DcmVR vr(vrName.c_str());
    if (vrName.size() != 2 || !vr.isStandard()) {
        error = tagKey(key) + ": unknown VR '" + vrName + "'";
        return nullptr;
    }
    DcmTag tag(key, vr);
    if (vr.getEVR() == EVR_SQ) {
        auto* seq = new DcmSequenceOfItems(tag);
        if (auto values = valueArray(e)) {
            for (std::size_t i = 0; i < values->size(); ++i) {
                auto* it = new DcmItem();
                seq->insert(it);
                Var v = values->get(static_cast<unsigned>(i));
                if (v.type() == typeid(Object::Ptr)) {
                    if (applyToItem(*it, v.extract<Object::Ptr>(), error) < 0) {
                        delete seq;
                        return nullptr;
                    }
                }
            }
        }
        return seq;
    }
    DcmElement* elem = nullptr;
    if (DcmItem::newDicomElement(elem, tag).bad() || !elem) {
        error = tagKey(key) + ": cannot create an element of VR " + vrName;
        return nullptr;
    }
    OFCondition c = EC_Normal;
    if (e->has("InlineBinary")) {
        std::string b64 = e->get("InlineBinary").convert<std::string>();
        Uint8* data = nullptr;
        size_t n = OFStandard::decodeBase64(OFString(b64.c_str()), data);
        DcmEVR evr = vr.getEVR();
        if (evr == EVR_OW) c = elem->putUint16Array(reinterpret_cast<Uint16*>(data), static_cast<unsigned long>(n / 2));
        else if (evr == EVR_OF) c = elem->putFloat32Array(reinterpret_cast<Float32*>(data), static_cast<unsigned long>(n / 4));
        else if (evr == EVR_OD) c = elem->putFloat64Array(reinterpret_cast<Float64*>(data), static_cast<unsigned long>(n / 8));
        else if (evr == EVR_OL) c = elem->putUint32Array(reinterpret_cast<Uint32*>(data), static_cast<unsigned long>(n / 4));
        else c = elem->putUint8Array(data, static_cast<unsigned long>(n));
        delete[] data;
    } else if (auto values = valueArray(e)) {
        DcmEVR evr = vr.getEVR();
        bool integer = evr == EVR_IS || evr == EVR_SS || evr == EVR_US || evr == EVR_SL || evr == EVR_UL ||
                       evr == EVR_SV || evr == EVR_UV;
        bool numeric = integer || evr == EVR_DS || evr == EVR_FL || evr == EVR_FD;
        std::string joined;
        for (std::size_t i = 0; i < values->size(); ++i) {
            Var v = values->get(static_cast<unsigned>(i));
            std::string s;
            if (v.isEmpty()) s.clear();
            else if (evr == EVR_PN) s = personName(v);
            else if (evr == EVR_AT) {
                std::string t = v.convert<std::string>();
                s = t.size() == 8 ? "(" + t.substr(0, 4) + "," + t.substr(4) + ")" : t;
            } else if (numeric && (v.isNumeric() || v.isString())) s = numberText(v, integer);
            else s = v.convert<std::string>();
            if (i) joined += "\\";
            joined += s;
        }
        c = elem->putString(joined.c_str());
    }
    if (c.bad()) {
        error = tagKey(key) + ": " + c.text();
        delete elem;
        return nullptr;
    }
    return elem;
}

// Compares two JSON values by meaning: numbers as numbers, a missing or null
// Value the same as an empty one.
bool same(const Var& a, const Var& b);

bool sameObject(const Object::Ptr& a, const Object::Ptr& b) {
    std::set<std::string> keys;
    for (const auto& k : a->getNames()) keys.insert(k);
    for (const auto& k : b->getNames()) keys.insert(k);
    for (const auto& k : keys) {
        Var va = a->has(k) ? a->get(k) : Var();
        Var vb = b->has(k) ? b->get(k) : Var();
        if (!same(va, vb)) return false;
    }
    return true;
}

bool emptyish(const Var& v) {
    if (v.isEmpty()) return true;
    if (v.type() == typeid(Array::Ptr)) return v.extract<Array::Ptr>()->size() == 0;
    if (v.type() == typeid(Object::Ptr)) return v.extract<Object::Ptr>()->size() == 0;
    if (v.isString()) return v.convert<std::string>().empty();
    return false;
}

bool same(const Var& a, const Var& b) {
    if (emptyish(a) || emptyish(b)) return emptyish(a) && emptyish(b);
    if (a.isNumeric() && b.isNumeric()) {
        double x = a.convert<double>(), y = b.convert<double>();
        return x == y || std::fabs(x - y) <= 1e-12 * std::max(std::fabs(x), std::fabs(y));
    }
    if (a.type() == typeid(Object::Ptr) && b.type() == typeid(Object::Ptr))
        return sameObject(a.extract<Object::Ptr>(), b.extract<Object::Ptr>());
    if (a.type() == typeid(Array::Ptr) && b.type() == typeid(Array::Ptr)) {
        auto x = a.extract<Array::Ptr>(), y = b.extract<Array::Ptr>();
        if (x->size() != y->size()) return false;
        for (std::size_t i = 0; i < x->size(); ++i)
            if (!same(x->get(static_cast<unsigned>(i)), y->get(static_cast<unsigned>(i)))) return false;
        return true;
    }
    if (a.isString() && b.isString()) return a.convert<std::string>() == b.convert<std::string>();
    if (a.isBoolean() || b.isBoolean()) return false;
    try {
        return a.convert<std::string>() == b.convert<std::string>();
    } catch (...) {
        return false;
    }
}

int applyToItem(DcmItem& item, const Object::Ptr& json, std::string& error) {
    std::string currentText;
    if (!detail::itemToJson(item, currentText, error)) return -1;
    Object::Ptr current = Poco::JSON::Parser().parse(currentText).extract<Object::Ptr>();
    int changed = 0;
    // Changed and new elements.
    for (const auto& name : json->getNames()) {
        DcmTagKey key;
        if (!parseTag(name, key)) continue;  // "file", "CallingAE" ...
        if (key.getGroup() == 0x0002 || isPixelTag(key)) continue;
        Var v = json->get(name);
        if (v.type() != typeid(Object::Ptr)) {
            error = name + ": not a DICOM JSON element";
            return -1;
        }
        auto e = v.extract<Object::Ptr>();
        if (current->has(name) && same(current->get(name), Var(e))) continue;
        DcmElement* elem = elementFromJson(key, e, error);
        if (!elem) return -1;
        OFCondition c = item.insert(elem, OFTrue);
        if (c.bad()) {
            delete elem;
            error = name + ": " + c.text();
            return -1;
        }
        ++changed;
    }
    // Removed elements (those the JSON would have carried).
    std::vector<DcmTagKey> remove;
    for (unsigned long i = 0; i < item.card(); ++i) {
        DcmObject* obj = item.getElement(i);
        if (omitted(obj)) continue;
        if (!json->has(tagKey(obj->getTag()))) remove.push_back(obj->getTag());
    }
    for (const auto& k : remove) {
        item.findAndDeleteElement(k);
        ++changed;
    }
    return changed;
}

}  // namespace

namespace detail {

bool itemToJson(DcmItem& item, std::string& out, std::string& /*error*/) {
    out.clear();
    appendItemJson(item, out, [](DcmObject& obj) { return omitted(&obj); });
    return true;
}

int applyJson(DcmItem& item, const std::string& json, std::string& error) {
    try {
        Var parsed = Poco::JSON::Parser().parse(json);
        if (parsed.type() != typeid(Object::Ptr)) {
            error = "the message is not a JSON object";
            return -1;
        }
        return applyToItem(item, parsed.extract<Object::Ptr>(), error);
    } catch (const Poco::Exception& e) {
        error = "message JSON: " + e.displayText();
        return -1;
    } catch (const std::exception& e) {
        error = std::string("message JSON: ") + e.what();
        return -1;
    }
}

}  // namespace detail

JsonResult datasetJsonFromFile(const std::string& path) {
    JsonResult r;
    DcmFileFormat file;
    OFCondition c = file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, 4096, ERM_autoDetect);  // large values stay on disk
    if (c.bad()) {
        r.error = "cannot read " + path + ": " + c.text();
        return r;
    }
    r.ok = detail::itemToJson(*file.getDataset(), r.json, r.error);
    return r;
}

namespace {

// Loads `path` into `file` and applies the message's tag changes to it
// (r.changed of them); false with r.error when either fails.
bool loadEdited(DcmFileFormat& file, const std::string& path, const std::string& messageJson, EditResult& r) {
    OFCondition c = file.loadFile(path.c_str());
    if (c.bad()) {
        r.error = "cannot read " + path + ": " + c.text();
        return false;
    }
    int n = detail::applyJson(*file.getDataset(), messageJson, r.error);
    if (n < 0) return false;
    r.changed = n;
    return true;
}

bool readWhole(const std::string& path, std::string& bytes, std::string& error) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        error = "cannot read " + path + ": " + std::strerror(errno);
        return false;
    }
    bytes.clear();
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
    bool ok = !std::ferror(f);
    std::fclose(f);
    if (!ok) error = "cannot read " + path;
    return ok;
}

}  // namespace

EditResult applyJsonToFile(const std::string& inPath, const std::string& messageJson, const std::string& outPath) {
    EditResult r;
    DcmFileFormat file;
    if (!loadEdited(file, inPath, messageJson, r)) return r;
    OFCondition c = file.saveFile(outPath.c_str(), file.getDataset()->getOriginalXfer());
    if (c.bad()) {
        r.error = "cannot write " + outPath + ": " + c.text();
        return r;
    }
    r.ok = true;
    return r;
}

EditResult part10Bytes(const std::string& path, const std::string& messageJson, std::string& bytes) {
    EditResult r;
    if (!messageJson.empty()) {
        DcmFileFormat file;
        if (!loadEdited(file, path, messageJson, r)) return r;
        if (r.changed > 0) {
            try {
                bytes = writePart10(file, file.getDataset()->getOriginalXfer());
            } catch (const std::runtime_error& e) {
                r.error = "cannot write " + path + " with the message's tags: " + e.what();
                return r;
            }
            r.ok = true;
            return r;
        }
    }
    r.ok = readWhole(path, bytes, r.error);
    return r;
}

}  // namespace junction::dicom

namespace junction::dicom {

bool messageFiles(const std::string& messageJson, std::vector<std::string>& files, bool& single, std::string& error) {
    using Poco::JSON::Array;
    using Poco::JSON::Object;
    files.clear();
    try {
        Poco::Dynamic::Var v = Poco::JSON::Parser().parse(messageJson);
        if (v.type() != typeid(Object::Ptr)) {
            error = "the message is not a JSON object";
            return false;
        }
        auto o = v.extract<Object::Ptr>();
        if (o->has("file") && o->get("file").isString()) {
            files.push_back(o->get("file").convert<std::string>());
            single = true;
            return true;
        }
        if (o->has("files") && o->get("files").type() == typeid(Array::Ptr)) {
            auto a = o->get("files").extract<Array::Ptr>();
            for (std::size_t i = 0; i < a->size(); ++i) files.push_back(a->get(static_cast<unsigned>(i)).convert<std::string>());
            single = false;
            if (!files.empty()) return true;
        }
        error = "the message names no DICOM file (\"file\" or \"files\")";
        return false;
    } catch (const Poco::Exception& e) {
        error = "the message is not JSON: " + e.displayText();
        return false;
    }
}

}  // namespace junction::dicom
