// Schemas of the admin API (schema.h): their JSON Schema text, and the checks
// of request bodies (parsed with POCO's JSON parser) and query parameters.
#include "engine/admin/schema.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <charconv>

#include "engine/admin/api.h"
#include "engine/admin/json_writer.h"

namespace junction::admin {

namespace {

const char* typeName(Schema::Type t) {
    switch (t) {
        case Schema::Type::Object: return "object";
        case Schema::Type::Array: return "array";
        case Schema::Type::String: return "string";
        case Schema::Type::Integer: return "integer";
        case Schema::Type::Number: return "number";
        case Schema::Type::Boolean: return "boolean";
    }
    return "object";
}

void write(JsonWriter& w, const Schema& s) {
    w.beginObject().field("type", typeName(s.type));
    if (!s.description.empty()) w.field("description", s.description);
    if (s.nullable) w.field("nullable", true);
    if (!s.words.empty()) {
        w.key("enum").beginArray();
        for (const auto& word : s.words) w.value(word);
        w.endArray();
    }
    if (s.type == Schema::Type::Object) {
        if (!s.properties.empty()) {
            w.key("properties").beginObject();
            for (const auto& p : s.properties) {
                w.key(p.name);
                write(w, p.schema);
            }
            w.endObject();
            bool anyRequired = false;
            for (const auto& p : s.properties) anyRequired = anyRequired || p.required;
            if (anyRequired) {
                w.key("required").beginArray();
                for (const auto& p : s.properties)
                    if (p.required) w.value(p.name);
                w.endArray();
            }
        }
        if (s.additionalProperties && s.items) {
            w.key("additionalProperties");
            write(w, *s.items);
        } else {
            w.field("additionalProperties", s.additionalProperties);
        }
    }
    if (s.type == Schema::Type::Array && s.items) {
        w.key("items");
        write(w, *s.items);
    }
    w.endObject();
}

Schema scalar(Schema::Type t, std::string description) {
    Schema s;
    s.type = t;
    s.description = std::move(description);
    return s;
}

[[noreturn]] void bad(const std::string& what) { throw ApiError(400, what); }

void checkWord(const Property& p, const std::string& v) {
    if (p.schema.words.empty()) return;
    for (const auto& w : p.schema.words)
        if (w == v) return;
    std::string list;
    for (const auto& w : p.schema.words) list += (list.empty() ? "" : ", ") + w;
    bad(p.name + ": '" + v + "' is not one of " + list);
}

const Property* find(const Schema& s, const std::string& name) {
    for (const auto& p : s.properties)
        if (p.name == name) return &p;
    return nullptr;
}

std::string known(const Schema& s) {
    std::string out;
    for (const auto& p : s.properties) out += (out.empty() ? "" : ", ") + p.name;
    return out.empty() ? "none" : out;
}

void requireAll(const Schema& s, const Fields& f, const char* what) {
    for (const auto& p : s.properties)
        if (p.required && !f.has(p.name)) bad(std::string("missing ") + what + " '" + p.name + "'");
}

// How deep arrays and objects nest in `text` (outside strings): bodies nest
// little, and a parser's tree of a deeply nested one would be freed by recursion.
int nesting(std::string_view text) {
    int depth = 0, most = 0;
    bool inString = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (inString) {
            if (c == '\\') ++i;
            else if (c == '"') inString = false;
        } else if (c == '"') {
            inString = true;
        } else if (c == '{' || c == '[') {
            most = std::max(most, ++depth);
        } else if (c == '}' || c == ']') {
            --depth;
        }
    }
    return most;
}

}  // namespace

std::string Schema::json() const {
    JsonWriter w;
    write(w, *this);
    return w.str();
}

Schema string(std::string description) { return scalar(Schema::Type::String, std::move(description)); }
Schema integer(std::string description) { return scalar(Schema::Type::Integer, std::move(description)); }
Schema number(std::string description) { return scalar(Schema::Type::Number, std::move(description)); }
Schema boolean(std::string description) { return scalar(Schema::Type::Boolean, std::move(description)); }

Schema words(std::vector<std::string> values, std::string description) {
    Schema s = scalar(Schema::Type::String, std::move(description));
    s.words = std::move(values);
    return s;
}

Schema object(std::vector<Property> properties, std::string description) {
    Schema s = scalar(Schema::Type::Object, std::move(description));
    s.properties = std::move(properties);
    return s;
}

Schema array(Schema items, std::string description) {
    Schema s = scalar(Schema::Type::Array, std::move(description));
    s.items = std::make_shared<const Schema>(std::move(items));
    return s;
}

Schema mapOf(Schema values, std::string description) {
    Schema s = scalar(Schema::Type::Object, std::move(description));
    s.additionalProperties = true;
    s.items = std::make_shared<const Schema>(std::move(values));
    return s;
}

Schema nullable(Schema s) {
    s.nullable = true;
    return s;
}

std::string Fields::str(std::string_view name, std::string fallback) const {
    auto it = values_.find(std::string(name));
    if (it == values_.end()) return fallback;
    if (auto* s = std::get_if<std::string>(&it->second)) return *s;
    return fallback;
}

std::int64_t Fields::integer(std::string_view name, std::int64_t fallback) const {
    auto it = values_.find(std::string(name));
    if (it == values_.end()) return fallback;
    if (auto* n = std::get_if<std::int64_t>(&it->second)) return *n;
    return fallback;
}

bool Fields::boolean(std::string_view name, bool fallback) const {
    auto it = values_.find(std::string(name));
    if (it == values_.end()) return fallback;
    if (auto* b = std::get_if<bool>(&it->second)) return *b;
    return fallback;
}

Fields checkBody(const Schema& schema, std::string_view body) {
    auto start = body.find_first_not_of(" \t\r\n");
    if (start == std::string_view::npos || body[start] != '{') bad("a JSON object is expected as the body");
    if (nesting(body) > 16) bad("malformed JSON: nested too deeply");
    Poco::Dynamic::Var parsed;
    try {
        Poco::JSON::Parser parser;
        parsed = parser.parse(std::string(body));
    } catch (const Poco::Exception& e) {
        bad("malformed JSON: " + e.message());
    }
    if (parsed.type() != typeid(Poco::JSON::Object::Ptr)) bad("a JSON object is expected as the body");
    auto obj = parsed.extract<Poco::JSON::Object::Ptr>();
    Fields out;
    for (const auto& [name, v] : *obj) {
        const Property* p = find(schema, name);
        if (!p) bad("unknown field '" + name + "' (known: " + known(schema) + ")");
        if (v.isEmpty()) {
            if (p->required) bad("'" + name + "' must not be null");
            continue;
        }
        const std::string want = typeName(p->schema.type);
        try {
            switch (p->schema.type) {
                case Schema::Type::String:
                    if (!v.isString()) bad("'" + name + "' must be a string");
                    checkWord(*p, v.extract<std::string>());
                    out.set(name, v.extract<std::string>());
                    break;
                case Schema::Type::Integer:
                    if (!v.isInteger() || v.isBoolean()) bad("'" + name + "' must be an integer");
                    out.set(name, v.convert<std::int64_t>());
                    break;
                case Schema::Type::Number:
                    if (!v.isNumeric() || v.isBoolean()) bad("'" + name + "' must be a number");
                    out.set(name, v.convert<double>());
                    break;
                case Schema::Type::Boolean:
                    if (!v.isBoolean()) bad("'" + name + "' must be true or false");
                    out.set(name, v.extract<bool>());
                    break;
                default: bad("'" + name + "' must be a " + want);
            }
        } catch (const Poco::Exception&) {
            bad("'" + name + "' must be " + (want == "integer" ? "an " : "a ") + want);
        }
    }
    requireAll(schema, out, "field");
    return out;
}

Fields checkQuery(const Schema& schema, const std::vector<std::pair<std::string, std::string>>& params) {
    Fields out;
    for (const auto& [name, text] : params) {
        const Property* p = find(schema, name);
        if (!p) bad("unknown query parameter '" + name + "' (known: " + known(schema) + ")");
        if (out.has(name)) bad("query parameter '" + name + "' given twice");
        switch (p->schema.type) {
            case Schema::Type::Integer: {
                std::int64_t n = 0;
                auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
                if (ec != std::errc() || end != text.data() + text.size())
                    bad("query parameter '" + name + "' must be an integer");
                out.set(name, n);
                break;
            }
            case Schema::Type::Boolean:
                if (text != "true" && text != "false") bad("query parameter '" + name + "' must be true or false");
                out.set(name, text == "true");
                break;
            default:
                checkWord(*p, text);
                out.set(name, text);
        }
    }
    requireAll(schema, out, "query parameter");
    return out;
}

}  // namespace junction::admin
