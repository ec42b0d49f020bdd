// A configuration tree read from YAML, with the place of every value, so that
// connector factories can check their settings and report file:line without
// seeing YAML types.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "engine/config/engine_config.h"

namespace junction::config {

struct Mark {
    std::string file;
    int line = 0, column = 0;
};

class Node {
public:
    enum class Kind { Null, Scalar, List, Map };

    Kind kind = Kind::Null;
    std::string scalar;                       // Scalar
    std::vector<Node> list;                   // List
    std::vector<std::pair<std::string, Node>> map;  // Map, in file order
    Mark mark;                                // where the value starts
    Mark keyMark;                             // for map entries: where the key starts

    bool isNull() const { return kind == Kind::Null; }
    bool isMap() const { return kind == Kind::Map; }
    const Node* find(const std::string& key) const;

    // Typed reads; throw ConfigError at this node's mark on a wrong type.
    std::string asString(const std::string& what) const;
    long long asInt(const std::string& what, long long min, long long max) const;
    bool asBool(const std::string& what) const;
    // "250ms", "5s", "2m", "1h", "30d" or a plain number of seconds.
    std::chrono::milliseconds asDuration(const std::string& what) const;
    // "64MB", "512KB", "1GB" or a plain number of bytes.
    std::size_t asBytes(const std::string& what) const;
    std::vector<std::string> asStringList(const std::string& what) const;  // a scalar counts as a list of one

    [[noreturn]] void fail(const std::string& message, const std::string& hint = {}) const;
};

// Reads a YAML file into a Node tree; syntax errors throw ConfigError with file:line.
Node loadYamlFile(const std::string& file);
Node loadYamlString(const std::string& text, const std::string& file);

}  // namespace junction::config
