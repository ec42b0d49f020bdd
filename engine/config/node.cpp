// The configuration tree (node.h): YAML converted into Nodes that keep the
// file and line of every value, and the typed reads (strings, integers,
// booleans, durations, sizes) that report errors there.
#include "engine/config/node.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>

namespace junction::config {

namespace {

Node convert(const YAML::Node& y, const std::string& file) {
    Node n;
    auto m = y.Mark();
    n.mark = Mark{file, m.line + 1, m.column + 1};
    switch (y.Type()) {
        case YAML::NodeType::Scalar:
            n.kind = Node::Kind::Scalar;
            n.scalar = y.Scalar();
            break;
        case YAML::NodeType::Sequence:
            n.kind = Node::Kind::List;
            for (const auto& item : y) n.list.push_back(convert(item, file));
            break;
        case YAML::NodeType::Map:
            n.kind = Node::Kind::Map;
            for (const auto& kv : y) {
                auto km = kv.first.Mark();
                std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
                for (const auto& existing : n.map)
                    if (existing.first == key)
                        throw ConfigError(file, km.line + 1, km.column + 1, "duplicate key '" + key + "'");
                Node value = convert(kv.second, file);
                value.keyMark = Mark{file, km.line + 1, km.column + 1};
                if (value.isNull()) value.mark = value.keyMark;
                n.map.emplace_back(key, std::move(value));
            }
            break;
        default:
            n.kind = Node::Kind::Null;
    }
    return n;
}

}  // namespace

const Node* Node::find(const std::string& key) const {
    for (const auto& kv : map)
        if (kv.first == key) return &kv.second;
    return nullptr;
}

void Node::fail(const std::string& message, const std::string& hint) const {
    throw ConfigError(mark.file, mark.line, mark.column, message, hint);
}

std::string Node::asString(const std::string& what) const {
    if (kind != Kind::Scalar) fail(what + " must be a string");
    return scalar;
}

long long Node::asInt(const std::string& what, long long min, long long max) const {
    if (kind != Kind::Scalar) fail(what + " must be a number");
    std::size_t used = 0;
    long long v = 0;
    try {
        v = std::stoll(scalar, &used);
    } catch (...) {
        used = 0;
    }
    if (used == 0 || used != scalar.size()) fail(what + " must be a whole number, got '" + scalar + "'");
    if ((min || max) && (v < min || v > max))
        fail(what + " must be between " + std::to_string(min) + " and " + std::to_string(max));
    return v;
}

bool Node::asBool(const std::string& what) const {
    if (kind == Kind::Scalar) {
        std::string s = scalar;
        std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
        if (s == "true" || s == "yes" || s == "on") return true;
        if (s == "false" || s == "no" || s == "off") return false;
    }
    fail(what + " must be true or false");
}

namespace {
// "250ms" → 250 and "ms"; false unless it starts with a non-negative number.
bool numberWithUnit(const std::string& text, double& value, std::string& unit) {
    std::size_t used = 0;
    try {
        value = std::stod(text, &used);
    } catch (...) {
        return false;
    }
    unit = text.substr(used);
    return used > 0 && value >= 0;
}
}  // namespace

std::chrono::milliseconds Node::asDuration(const std::string& what) const {
    const char* example = "e.g. 250ms, 5s, 2m, 1h, 30d";
    if (kind != Kind::Scalar) fail(what + " must be a duration", example);
    double v = 0;
    std::string unit;
    if (!numberWithUnit(scalar, v, unit)) fail(what + " must be a duration, got '" + scalar + "'", example);
    double ms;
    if (unit.empty() || unit == "s") ms = v * 1000;
    else if (unit == "ms") ms = v;
    else if (unit == "m") ms = v * 60000;
    else if (unit == "h") ms = v * 3600000;
    else if (unit == "d") ms = v * 86400000;
    else fail(what + ": unknown duration unit '" + unit + "'", "use ms, s, m, h or d");
    return std::chrono::milliseconds(static_cast<long long>(ms));
}

std::size_t Node::asBytes(const std::string& what) const {
    const char* example = "e.g. 512KB, 64MB, 1GB";
    if (kind != Kind::Scalar) fail(what + " must be a size", example);
    double v = 0;
    std::string unit;
    if (!numberWithUnit(scalar, v, unit)) fail(what + " must be a size, got '" + scalar + "'", example);
    std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::toupper(c); });
    double mult = 1;
    if (unit.empty() || unit == "B") mult = 1;
    else if (unit == "KB" || unit == "K" || unit == "KIB") mult = 1024;
    else if (unit == "MB" || unit == "M" || unit == "MIB") mult = 1024.0 * 1024;
    else if (unit == "GB" || unit == "G" || unit == "GIB") mult = 1024.0 * 1024 * 1024;
    else fail(what + ": unknown size unit '" + unit + "'", "use B, KB, MB or GB");
    return static_cast<std::size_t>(v * mult);
}

std::vector<std::string> Node::asStringList(const std::string& what) const {
    if (kind == Kind::Scalar) return {scalar};
    if (kind != Kind::List) fail(what + " must be a list of strings");
    std::vector<std::string> out;
    for (const auto& item : list) out.push_back(item.asString(what + " item"));
    return out;
}

Node loadYamlString(const std::string& text, const std::string& file) {
    try {
        return convert(YAML::Load(text), file);
    } catch (const YAML::ParserException& e) {
        throw ConfigError(file, e.mark.line + 1, e.mark.column + 1, e.msg);
    }
}

Node loadYamlFile(const std::string& file) {
    try {
        return convert(YAML::LoadFile(file), file);
    } catch (const YAML::ParserException& e) {
        throw ConfigError(file, e.mark.line + 1, e.mark.column + 1, e.msg);
    } catch (const YAML::BadFile&) {
        throw ConfigError(file, 0, 0, "cannot read the file");
    }
}

}  // namespace junction::config
