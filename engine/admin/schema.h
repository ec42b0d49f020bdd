// JSON Schemas of the admin API's requests and answers, declared once with
// each route: the OpenAPI document is written from them, and request bodies
// and query parameters are checked against them (unknown fields, missing
// required ones and wrong types are refused before a handler runs).
//
//   Schema body = object({{"name", string("user name"), true},
//                         {"role", words({"admin", "operator", "viewer"})}});
//
// A request body is an object of scalar fields (what the API takes); answers
// may nest objects and arrays.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace junction::admin {

struct Property;

struct Schema {
    enum class Type { Object, Array, String, Integer, Number, Boolean };
    Type type = Type::Object;
    std::string description;
    std::vector<std::string> words;        // String: the values it may take (empty: any)
    std::vector<Property> properties;      // Object
    bool additionalProperties = false;     // Object: keys besides `properties` (a map by name)
    std::shared_ptr<const Schema> items;   // Array; Object with additionalProperties: each value
    bool nullable = false;
    // The schema as JSON Schema text (OpenAPI 3.0 dialect).
    std::string json() const;
};

struct Property {
    std::string name;
    Schema schema;
    bool required = false;
};

Schema string(std::string description = {});
Schema integer(std::string description = {});
Schema number(std::string description = {});
Schema boolean(std::string description = {});
Schema words(std::vector<std::string> values, std::string description = {});
Schema object(std::vector<Property> properties, std::string description = {});
Schema array(Schema items, std::string description = {});
// An object whose keys are names and whose values are all `values`.
Schema mapOf(Schema values, std::string description = {});
Schema nullable(Schema s);

// The checked scalar fields of a request (a body or the query parameters).
class Fields {
public:
    using Value = std::variant<std::string, std::int64_t, double, bool>;
    bool has(std::string_view name) const { return values_.count(std::string(name)) > 0; }
    std::string str(std::string_view name, std::string fallback = {}) const;
    std::int64_t integer(std::string_view name, std::int64_t fallback = 0) const;
    bool boolean(std::string_view name, bool fallback = false) const;
    void set(std::string name, Value v) { values_[std::move(name)] = std::move(v); }

private:
    std::map<std::string, Value> values_;
};

// Checks a request body (JSON text) against `schema` (an object of scalar
// properties) and returns its fields; throws ApiError 400 that names the
// problem: malformed JSON, not an object, an unknown field, a missing
// required one, a value of the wrong type or outside its words.
Fields checkBody(const Schema& schema, std::string_view body);

// Checks query parameters (name → decoded text) against `schema`'s
// properties: unknown names, required ones missing, integers and booleans
// that do not parse, words outside the list are ApiError 400.
Fields checkQuery(const Schema& schema, const std::vector<std::pair<std::string, std::string>>& params);

}  // namespace junction::admin
