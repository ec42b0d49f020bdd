// Message templates (message_template.h): parsed once into literal text and
// fields; each expansion reads the fields of one outbound message.
#include "engine/core/message_template.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <stdexcept>

namespace junction::core {

namespace {

// The reference tokens of a JSON Pointer (RFC 6901): "/a~1b/0" → {"a/b", "0"}.
std::vector<std::string> pointerTokens(const std::string& pointer) {
    std::vector<std::string> out;
    std::size_t i = 1;
    while (i <= pointer.size()) {
        std::size_t next = pointer.find('/', i);
        if (next == std::string::npos) next = pointer.size();
        std::string token;
        for (std::size_t k = i; k < next; ++k) {
            if (pointer[k] == '~' && k + 1 < next && (pointer[k + 1] == '0' || pointer[k + 1] == '1')) {
                token += pointer[k + 1] == '0' ? '~' : '/';
                ++k;
            } else {
                token += pointer[k];
            }
        }
        out.push_back(std::move(token));
        i = next + 1;
    }
    return out;
}

// The value at `pointer` in `root` as text: strings as they are, numbers and
// booleans written out, objects and arrays as JSON, null or absent as "".
std::string pointerValue(const Poco::Dynamic::Var& root, const std::string& pointer) {
    Poco::Dynamic::Var v = root;
    for (const std::string& token : pointerTokens(pointer)) {
        if (v.type() == typeid(Poco::JSON::Object::Ptr)) {
            auto o = v.extract<Poco::JSON::Object::Ptr>();
            if (!o->has(token)) return {};
            v = o->get(token);
        } else if (v.type() == typeid(Poco::JSON::Array::Ptr)) {
            auto a = v.extract<Poco::JSON::Array::Ptr>();
            if (token.empty() || token.size() > 9 || token.find_first_not_of("0123456789") != std::string::npos) return {};
            std::size_t index = std::stoul(token);
            if (index >= a->size()) return {};
            v = a->get(static_cast<unsigned>(index));
        } else {
            return {};
        }
    }
    if (v.isEmpty()) return {};
    if (v.type() == typeid(Poco::JSON::Object::Ptr) || v.type() == typeid(Poco::JSON::Array::Ptr)) {
        std::ostringstream out;
        if (v.type() == typeid(Poco::JSON::Object::Ptr)) v.extract<Poco::JSON::Object::Ptr>()->stringify(out);
        else v.extract<Poco::JSON::Array::Ptr>()->stringify(out);
        return out.str();
    }
    return v.convert<std::string>();
}

std::string uuidText() {
    static thread_local std::mt19937_64 rng(std::random_device{}());
    char buf[40];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                  static_cast<unsigned long long>(rng()));
    return buf;
}

}  // namespace

std::string MessageTemplate::check(std::string_view text) {
    try {
        MessageTemplate t(text);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return {};
}

MessageTemplate::MessageTemplate(std::string_view text) : text_(text) {
    using K = Part::Kind;
    std::size_t i = 0;
    while (i < text.size()) {
        std::size_t open = text.find("${", i);
        if (open == std::string_view::npos) {
            parts_.push_back({K::Text, std::string(text.substr(i)), {}});
            break;
        }
        if (open > i) parts_.push_back({K::Text, std::string(text.substr(i, open - i)), {}});
        std::size_t close = text.find('}', open);
        if (close == std::string_view::npos)
            throw std::invalid_argument("'${' without its '}' in \"" + std::string(text) + "\"");
        std::string key(text.substr(open + 2, close - open - 2));
        i = close + 1;
        static const std::pair<const char*, K> kNamed[] = {{"id", K::Id},           {"channel", K::Channel},
                                                           {"destination", K::Destination}, {"attempt", K::Attempt},
                                                           {"timestamp", K::Timestamp}, {"uuid", K::Uuid}};
        Part p;
        for (const auto& [name, kind] : kNamed)
            if (key == name) p.kind = kind;
        if (p.kind == K::Text) {
            if (!key.empty() && key[0] == '/') {
                p.kind = K::Json;
                p.text = key;
            } else if (auto path = hl7::Path::parse(key); path && path->field > 0) {  // a field, not a whole segment
                p.kind = K::Hl7;
                p.path = std::move(path);
            } else {
                throw std::invalid_argument("unknown field ${" + key + "} in \"" + std::string(text) + "\" (fields: " +
                                            kFields + ")");
            }
        }
        parts_.push_back(std::move(p));
    }
}

std::string MessageTemplate::expand(const Outbound& m, const std::function<std::string(std::string_view)>& escape) const {
    using K = Part::Kind;
    std::string out;
    std::optional<hl7::Message> hl7;
    std::optional<Poco::Dynamic::Var> json;
    bool triedHl7 = false, triedJson = false;
    for (const Part& p : parts_) {
        std::string value;
        switch (p.kind) {
            case K::Text: out += p.text; continue;
            case K::Id: value = std::to_string(m.messageId); break;
            case K::Channel: value = m.channel; break;
            case K::Destination: value = m.destination; break;
            case K::Attempt: value = std::to_string(m.attempt); break;
            case K::Timestamp: {
                auto now = std::chrono::system_clock::now().time_since_epoch();
                value = std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
                break;
            }
            case K::Uuid: value = uuidText(); break;
            case K::Hl7:
                if (!triedHl7) {
                    triedHl7 = true;
                    auto r = hl7::Message::parse(m.content);
                    if (r) hl7.emplace(std::move(*r.message));
                }
                if (hl7) value = hl7->get(*p.path);
                break;
            case K::Json:
                if (!triedJson) {
                    triedJson = true;
                    try {
                        json = Poco::JSON::Parser().parse(m.content);
                    } catch (const Poco::Exception&) {
                    }
                }
                if (json) value = pointerValue(*json, p.text);
                break;
        }
        out += escape ? escape(value) : value;
    }
    return out;
}

}  // namespace junction::core
