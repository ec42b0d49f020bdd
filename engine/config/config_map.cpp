// Config maps (config_map.h): reading a mapping into its struct (types,
// bounds, choices, paths, every problem at its file:line:column), and the JSON
// Schema and Markdown tables generated from the declarations.
#include "engine/config/config_map.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

namespace fs = std::filesystem;

namespace junction::config {

namespace {

bool finite(double v) { return std::isfinite(v); }

// A bound of a value of `kind` as written: "65535", "100ms", "128KB", "0.5".
std::string boundText(Kind kind, double v) {
    switch (kind) {
        case Kind::Number: return detail::numberText(v);
        case Kind::Duration: return detail::durationText(std::chrono::milliseconds(static_cast<long long>(v)));
        case Kind::Bytes: return detail::bytesText(static_cast<std::uint64_t>(v));
        default: return std::to_string(static_cast<long long>(v));
    }
}

// "between 1 and 65535" (or "from 1 to 65535"), "at least 1s", "at most 10",
// after "0 (never) or " when 0 is allowed too; for messages and the docs alike.
std::string boundsText(const Range& r, Kind kind, bool between) {
    std::string out = r.zero.empty() ? std::string() : "0 (" + r.zero + ") or ";
    std::string min = boundText(kind, r.min), max = boundText(kind, r.max);
    if (finite(r.min) && finite(r.max)) out += between ? "between " + min + " and " + max : "from " + min + " to " + max;
    else if (finite(r.min)) out += "at least " + min;
    else out += "at most " + max;
    return out;
}

bool within(const Range& r, double v) { return (v >= r.min && v <= r.max) || (v == 0 && !r.zero.empty()); }

}  // namespace

namespace detail {

long long readInt(const Node& n, const std::string& what, const Range& r) {
    // Both bounds and no 0 besides: Node's own check, with its message.
    if (finite(r.min) && finite(r.max) && r.zero.empty() && (r.min != 0 || r.max != 0))
        return n.asInt(what, static_cast<long long>(r.min), static_cast<long long>(r.max));
    long long v = n.asInt(what, 0, 0);
    if (!within(r, static_cast<double>(v))) n.fail(what + " must be " + boundsText(r, Kind::Int, true));
    return v;
}

double readNumber(const Node& n, const std::string& what, const Range& r) {
    std::string bounds = r.bounded() ? " " + boundsText(r, Kind::Number, false) : std::string();
    if (n.kind != Node::Kind::Scalar) n.fail(what + " must be a number" + bounds);
    char* end = nullptr;
    double v = std::strtod(n.scalar.c_str(), &end);
    if (n.scalar.empty() || end == n.scalar.c_str() || *end || !std::isfinite(v))
        n.fail(what + " must be a number" + (bounds.empty() ? ", got '" + n.scalar + "'" : bounds));
    if (!within(r, v)) n.fail(what + " must be a number" + bounds);
    return v;
}

std::chrono::milliseconds readDuration(const Node& n, const std::string& what, const Range& r) {
    auto t = n.asDuration(what);
    if (!within(r, static_cast<double>(t.count()))) n.fail(what + " must be " + boundsText(r, Kind::Duration, false));
    return t;
}

std::uint64_t readBytes(const Node& n, const std::string& what, const Range& r) {
    auto b = n.asBytes(what);
    if (!within(r, static_cast<double>(b))) n.fail(what + " must be " + boundsText(r, Kind::Bytes, true));
    return b;
}

std::string readString(const Node& n, const std::string& what, bool path, const std::string& baseDir) {
    std::string s = n.asString(what);
    if (!path || s.empty()) return s;
    fs::path p(s);
    if (p.is_relative()) {
        if (baseDir.empty()) return s;
        p = fs::path(baseDir) / p;
    }
    return p.lexically_normal().string();
}

std::size_t readWord(const Node& n, const std::string& what, const std::vector<std::string>& words) {
    std::string v = n.asString(what);
    auto it = std::find(words.begin(), words.end(), v);
    if (it != words.end()) return static_cast<std::size_t>(it - words.begin());
    std::string list;
    for (const auto& w : words) list += (list.empty() ? "" : ", ") + w;
    n.fail(what + " cannot be '" + v + "'", "one of: " + list);
}

StringMap readStringMap(const Node& n, const std::string& what) {
    if (!n.isMap()) n.fail(what + " must be a mapping of names to text", "e.g. { Accept: application/json }");
    StringMap out;
    for (const auto& [key, value] : n.map) out.emplace_back(key, value.asString(what + "." + key));
    return out;
}

std::string durationText(std::chrono::milliseconds t) {
    if (t.count() == 0) return "0";
    for (auto [unit, ms] : {std::pair{"d", 86400000LL}, {"h", 3600000LL}, {"m", 60000LL}, {"s", 1000LL}})
        if (t.count() % ms == 0) return std::to_string(t.count() / ms) + unit;
    return std::to_string(t.count()) + "ms";
}

std::string bytesText(std::uint64_t b) {
    if (b == 0) return "0";
    for (auto [unit, size] : {std::pair{"GB", 1ULL << 30}, {"MB", 1ULL << 20}, {"KB", 1ULL << 10}})
        if (b % size == 0) return std::to_string(b / size) + unit;
    return std::to_string(b);
}

std::string numberText(double v) {
    std::ostringstream out;
    out << v;
    return out.str();
}

void declarationError(const std::string& name, const std::string& problem) {
    throw std::logic_error("config map: setting '" + name + "': " + problem);
}

}  // namespace detail

const Field* MapBase::find(const std::string& name) const {
    for (const auto& f : fields_)
        if (f.name == name) return &f;
    return nullptr;
}

void MapBase::add(Field field) {
    if (find(field.name)) detail::declarationError(field.name, "declared twice");
    fields_.push_back(std::move(field));
}

const Map<NoSettings>& noSettings() {
    static const Map<NoSettings> map;
    return map;
}

void MapBase::fill(void* object, const Node& node, const ReadContext& rc, const std::function<void()>& finish) const {
    if (!node.isMap()) node.fail(rc.where + " must be a mapping");
    auto declaredAlongside = [&](const std::string& key) {
        return std::any_of(rc.alongside.begin(), rc.alongside.end(), [&](const MapBase* m) { return m->find(key); });
    };
    ConfigProblems problems;
    for (const auto& [key, value] : node.map) problems.attempt([&, &key = key, &value = value] {
        const Field* f = find(key);
        if (!f) {
            if (!rc.unknownKeys || declaredAlongside(key)) return;
            std::string names;
            for (const MapBase* m : rc.alongside)
                for (const auto& other : m->fields()) names += (names.empty() ? "" : ", ") + other.name;
            for (const auto& own : fields_) names += (names.empty() ? "" : ", ") + own.name;
            throw ConfigError(value.keyMark.file, value.keyMark.line, value.keyMark.column,
                              "unknown key '" + key + "' in " + rc.where, "allowed: " + names);
        }
        std::string what = rc.where + "." + key;
        if (f->fill) f->fill(object, value, what, rc);  // else the caller reads it
    });
    for (const auto& f : fields_)
        if (f.required && !node.find(f.name)) problems.attempt([&] {
            node.fail("missing key '" + f.name + "' in " + rc.where, f.help);
        });
    if (problems.empty() && finish) problems.attempt(finish);
    problems.finish();
}

// ---------------------------------------------------------------- generated

namespace {

// The schema's description: the help, the bounds JSON Schema cannot say (of
// durations and sizes) and a default that is no single value.
std::string description(const Field& f) {
    std::vector<std::string> parts;
    if (!f.help.empty()) parts.push_back(f.help);
    if ((f.kind == Kind::Duration || f.kind == Kind::Bytes) && f.range.bounded()) parts.push_back(boundsText(f.range, f.kind, false));
    if (f.defaultJson.empty() && !f.defaultText.empty()) parts.push_back("default: " + f.defaultText);
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
    return out;
}

// What a value of `f` looks like, for people: "integer, from 1 to 65535", "`move` or `delete`".
std::string valueText(const Field& f) {
    std::string bounds = f.range.bounded() ? ", " + boundsText(f.range, f.kind, false) : std::string();
    switch (f.kind) {
        case Kind::String: {
            if (f.words.empty()) return f.path ? "path" : "text";
            std::string out;
            for (std::size_t i = 0; i < f.words.size(); ++i)
                out += (i == 0 ? "" : i + 1 == f.words.size() ? " or " : ", ") + ("`" + f.words[i] + "`");
            return out;
        }
        case Kind::Int: return "integer" + bounds;
        case Kind::Number: return "number" + bounds;
        case Kind::Bool: return "`true` or `false`";
        case Kind::Duration: return "duration" + bounds;
        case Kind::Bytes: return "size" + bounds;
        case Kind::StringList: return "list of text";
        case Kind::StringMap: return "mapping of text";
        case Kind::Map: return "mapping";
        case Kind::List: return "list";
    }
    return {};
}

std::string cell(const std::string& text) {
    std::string out;
    for (char ch : text) {
        if (ch == '|') out += '\\';
        out += ch;
    }
    return out;
}

void markdownRows(const MapBase& map, const std::string& prefix, std::string& out) {
    for (const auto& f : map.fields()) {
        std::string def = f.required ? "required"
                          : f.defaultJson.empty() ? f.defaultText
                                                  : "`" + f.defaultText + "`";
        out += "| `" + prefix + f.name + "` | " + cell(valueText(f)) + " | " + cell(def) + " | " + cell(f.help) + " |\n";
        if (f.nested) markdownRows(*f.nested, prefix + f.name + ".", out);
    }
}

}  // namespace

std::string jsonSchema(const Field& f) {
    std::vector<std::string> parts;
    auto bounds = [&] {
        if (std::isfinite(f.range.min)) parts.push_back("\"minimum\":" + detail::numberText(f.range.zero.empty() ? f.range.min : 0));
        if (std::isfinite(f.range.max)) parts.push_back("\"maximum\":" + detail::numberText(f.range.max));
    };
    switch (f.kind) {
        case Kind::String:
            parts.push_back("\"type\":\"string\"");
            if (!f.words.empty()) {
                std::string list;
                for (const auto& w : f.words) list += (list.empty() ? "" : ",") + util::jsonString(w);
                parts.push_back("\"enum\":[" + list + "]");
            }
            break;
        case Kind::Int:
            parts.push_back("\"type\":\"integer\"");
            bounds();
            break;
        case Kind::Number:
            parts.push_back("\"type\":\"number\"");
            bounds();
            break;
        case Kind::Bool: parts.push_back("\"type\":\"boolean\""); break;
        case Kind::Duration:
            parts.push_back("\"type\":[\"string\",\"number\"],\"pattern\":\"^[0-9.]+(ms|s|m|h|d)?$\"");
            break;
        case Kind::Bytes: parts.push_back("\"type\":[\"string\",\"number\"],\"pattern\":\"^[0-9.]+([KMG]i?B?|B)?$\""); break;
        case Kind::StringList: parts.push_back("\"type\":[\"string\",\"array\"],\"items\":{\"type\":\"string\"}"); break;
        case Kind::StringMap: parts.push_back("\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}"); break;
        case Kind::Map:
            if (f.nested) {
                std::string object = jsonSchema({f.nested.get()});
                parts.push_back(object.substr(1, object.size() - 2));
            } else {
                parts.push_back("\"type\":\"object\"");
            }
            break;
        case Kind::List: parts.push_back("\"type\":\"array\""); break;
    }
    if (!f.defaultJson.empty()) parts.push_back("\"default\":" + f.defaultJson);
    if (std::string d = description(f); !d.empty()) parts.push_back("\"description\":" + util::jsonString(d));
    std::string out = "{";
    for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? "," : "") + parts[i];
    return out + "}";
}

std::string jsonSchema(const std::vector<const MapBase*>& maps,
                       const std::vector<std::pair<std::string, std::string>>& constants) {
    std::string props, required;
    for (const MapBase* m : maps)
        for (const auto& f : m->fields()) {
            std::string s = jsonSchema(f);
            for (const auto& [key, value] : constants)
                if (key == f.name) s.insert(1, "\"const\":" + util::jsonString(value) + ",");
            props += (props.empty() ? "" : ",") + util::jsonString(f.name) + ":" + s;
            if (f.required) required += (required.empty() ? "" : ",") + util::jsonString(f.name);
        }
    return "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{" + props + "}" +
           (required.empty() ? "" : ",\"required\":[" + required + "]") + "}";
}

std::string markdownTable(const std::vector<const MapBase*>& maps) {
    std::string rows;
    for (const MapBase* m : maps) markdownRows(*m, "", rows);
    if (rows.empty()) return {};
    return "| setting | value | default | meaning |\n|---|---|---|---|\n" + rows;
}

}  // namespace junction::config
