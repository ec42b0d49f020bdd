// Config maps: the settings of a section declared once, after Fluent Bit's
// config map (flb_config_map.h). An entry names a key, the struct field its
// value goes to (the field's type is the setting's type), whether it is
// required, its bounds or choices, a check of its own and a help text; the
// field's value in a default-constructed struct is the default. Reading a
// mapping with its map rejects unknown keys, missing required ones, wrong
// types and values out of bounds, every problem with file:line:column in one
// pass, then runs the map's cross-field check and returns the filled struct.
// The JSON Schema of channel files and the settings tables of the docs are
// generated from the same declarations.
//
//   struct Options { int port = 0; std::chrono::milliseconds idle{300000}; Tls tls; };
//   const config::Map<Options> map{
//       {"port", &Options::port, config::required, config::range(1, 65535), "TCP port to listen on"},
//       {"idle_timeout", &Options::idle, config::range(1s, 1h).orZero("never"), "close idle connections"},
//       {"tls", &Options::tls, tlsMap, "TLS on the connections"},
//   };
//   Options o = map.read(node, {"source (mllp)", baseDir});
//
// Field types: bool, any integer (with config::bytes: a size such as 64MB;
// with config::seconds: whole seconds written as a duration),
// double, std::string (with config::path: resolved against the base folder),
// std::vector<std::string> (a scalar counts as a list of one),
// config::StringMap (a mapping of names to text, in file order: HTTP headers),
// std::chrono::milliseconds (a duration such as 250ms, 5s, 2m), a nested
// struct with its own map, any type with config::choices (words mapped to
// values), and std::optional of these (unset when the key is absent).
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/config/node.h"
#include "engine/util/json_text.h"

namespace junction::config {

class MapBase;

// How a setting is written.
enum class Kind { String, Int, Bool, Number, Duration, Bytes, StringList, StringMap, Map, List };

// A mapping of names to text, in the order of the file ({ Accept: application/json }).
using StringMap = std::vector<std::pair<std::string, std::string>>;

// Bounds of a number, a duration (in milliseconds) or a size (in bytes).
struct Range {
    double min = -std::numeric_limits<double>::infinity();
    double max = std::numeric_limits<double>::infinity();
    std::string zero;  // not empty: 0 is allowed too and means this ("never", "off")
    bool bounded() const { return min > -std::numeric_limits<double>::infinity() || max < std::numeric_limits<double>::infinity(); }
    Range orZero(std::string meaning) const {
        Range r = *this;
        r.zero = std::move(meaning);
        return r;
    }
};

namespace detail {
template <class A>
double boundValue(A a) {
    if constexpr (std::is_arithmetic_v<A>) return static_cast<double>(a);
    else return static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(a).count());
}
}  // namespace detail

// range(1, 65535), range(100ms, 1h), range(4096, 131072) with config::bytes, range(0.0, 1.0).
template <class A, class B>
Range range(A min, B max) {
    return Range{detail::boundValue(min), detail::boundValue(max), {}};
}
template <class A>
Range atLeast(A min) {
    Range r;
    r.min = detail::boundValue(min);
    return r;
}

struct Required {};
inline constexpr Required required{};
struct BytesTag {};
inline constexpr BytesTag bytes{};  // an integer written as a size: 512KB, 64MB, 1GB
struct SecondsTag {};
inline constexpr SecondsTag seconds{};  // an integer of whole seconds written as a duration: 30s, 2m
struct PathTag {};
inline constexpr PathTag path{};  // a string naming a file or folder, relative to the base folder

// The default told in the docs and the schema when the struct's value is not
// the whole story ("the channel's workers", "no limit").
struct DefaultText {
    std::string text;
};
inline DefaultText byDefault(std::string text) { return DefaultText{std::move(text)}; }

// The words a setting takes and the value each stands for.
template <class U>
struct Choices {
    std::vector<std::pair<std::string, U>> words;
};
template <class U>
Choices<U> choices(std::vector<std::pair<std::string, U>> words) {
    return Choices<U>{std::move(words)};
}
// The values of an enum, each written as `name(value)` says.
template <class U, class F>
Choices<U> choices(std::initializer_list<U> values, F name) {
    Choices<U> c;
    for (const U& v : values) c.words.emplace_back(name(v), v);
    return c;
}
inline Choices<std::string> oneOf(std::initializer_list<const char*> words) {
    Choices<std::string> c;
    for (const char* w : words) c.words.emplace_back(w, w);
    return c;
}

// A check of the value alone: `fn(value)` returns why it is wrong (the whole
// message, reported at the value), or nothing.
template <class F>
struct Check {
    F fn;
    std::string hint;
};
template <class F>
Check<F> check(F fn, std::string hint = {}) {
    return Check<F>{std::move(fn), std::move(hint)};
}

// How a mapping is read: where it is (for messages) and what else reads it.
struct ReadContext {
    std::string where;    // names the mapping in messages ("source (mllp)"); a value is where.key
    std::string baseDir;  // `path` settings resolve against it
    // Maps that read other keys of the same mapping (a source's common keys):
    // their keys are not unknown here, and hints list them.
    std::vector<const MapBase*> alongside;
    bool unknownKeys = true;  // false: keys no map declares are another read's to report

    ReadContext(std::string where, std::string baseDir = {}, std::vector<const MapBase*> alongside = {},
                bool unknownKeys = true)
        : where(std::move(where)), baseDir(std::move(baseDir)), alongside(std::move(alongside)), unknownKeys(unknownKeys) {}
};

// One setting, whatever the struct: what reading, the schema and the docs need.
struct Field {
    std::string name;
    Kind kind = Kind::String;
    bool required = false;
    std::string help;
    Range range;
    std::vector<std::string> words;  // String: the values it may take (empty: any)
    bool path = false;
    std::string defaultText;  // for people: "5m", "0.0.0.0", "the channel's workers"; empty: none
    std::string defaultJson;  // for the schema: "\"5m\"", "200", "true"; empty: none
    std::shared_ptr<const MapBase> nested;  // Kind::Map with a field: the nested mapping's map
    // Reads `value` into the struct (`object`); empty for a key its caller reads.
    std::function<void(void* object, const Node& value, const std::string& what, const ReadContext& rc)> fill;
};

// Value readers shared by every map (bounds told as the messages of Node's).
namespace detail {
long long readInt(const Node& n, const std::string& what, const Range& r);
double readNumber(const Node& n, const std::string& what, const Range& r);
std::chrono::milliseconds readDuration(const Node& n, const std::string& what, const Range& r);
std::uint64_t readBytes(const Node& n, const std::string& what, const Range& r);
std::string readString(const Node& n, const std::string& what, bool path, const std::string& baseDir);
std::size_t readWord(const Node& n, const std::string& what, const std::vector<std::string>& words);
StringMap readStringMap(const Node& n, const std::string& what);
std::string durationText(std::chrono::milliseconds t);
std::string bytesText(std::uint64_t b);
std::string numberText(double v);
[[noreturn]] void declarationError(const std::string& name, const std::string& problem);

template <class U>
struct Optional {
    using type = U;
    static constexpr bool value = false;
};
template <class U>
struct Optional<std::optional<U>> {
    using type = U;
    static constexpr bool value = true;
};
template <class U>
inline constexpr bool isDuration = std::is_same_v<U, std::chrono::milliseconds>;
template <class U>
inline constexpr bool isInteger = std::is_integral_v<U> && !std::is_same_v<U, bool>;
// A struct read from a nested mapping by a map of its own.
template <class U>
inline constexpr bool isSection = std::is_class_v<U> && !isDuration<U> && !std::is_same_v<U, std::string> &&
                                  !std::is_same_v<U, std::vector<std::string>> && !std::is_same_v<U, StringMap>;
template <class O>
struct IsChoices : std::false_type {};
template <class U>
struct IsChoices<Choices<U>> : std::true_type {};
template <class O>
struct IsCheck : std::false_type {};
template <class F>
struct IsCheck<Check<F>> : std::true_type {};
}  // namespace detail

template <class T>
class Map;

template <class O>
struct IsMap : std::false_type {};
template <class U>
struct IsMap<Map<U>> : std::true_type {};

class MapBase {
public:
    virtual ~MapBase() = default;
    const std::vector<Field>& fields() const { return fields_; }
    const Field* find(const std::string& name) const;

protected:
    // Reads every key of `node` into `object` (each problem kept, all told at
    // the end), then runs `finish` when there was none.
    void fill(void* object, const Node& node, const ReadContext& rc, const std::function<void()>& finish) const;
    void add(Field field);
    std::vector<Field> fields_;
};

template <class T>
class Map : public MapBase {
public:
    // A cross-field rule, run once every key read well: throw with node.fail()
    // or node.find(key)->fail(); it may also complete the struct.
    using CheckFn = std::function<void(T& value, const Node& node)>;

    class Entry {
    public:
        // A setting filling `member` (of T or of a base of T).
        template <class U, class C, class... Options>
            requires std::is_base_of_v<C, T>
        Entry(std::string name, U C::*member, Options&&... options);
        // A key its caller reads and checks (declared for the unknown-key check,
        // `required`, the schema and the docs): Kind::Map or Kind::List.
        template <class... Options>
        Entry(std::string name, Kind kind, Options&&... options) {
            field.name = std::move(name);
            field.kind = kind;
            (keyOption(options), ...);
        }
        Field field;

    private:
        template <class O>
        void keyOption(const O& o) {
            if constexpr (std::is_same_v<O, Required>) field.required = true;
            else if constexpr (std::is_same_v<O, DefaultText>) field.defaultText = o.text;
            else field.help = o;
        }
    };

    Map() = default;
    Map(std::initializer_list<Entry> entries) : Map(std::vector<Entry>(entries)) {}
    explicit Map(std::vector<Entry> entries, CheckFn check = {}) : check_(std::move(check)) {
        for (auto& e : entries) add(std::move(e.field));
    }

    // The settings of `node` over T's defaults.
    T read(const Node& node, const ReadContext& rc) const {
        T value{};
        readInto(value, node, rc);
        return value;
    }
    // The settings of `node` over what `value` holds (keys absent keep it).
    void readInto(T& value, const Node& node, const ReadContext& rc) const {
        fill(&value, node, rc, [&] {
            if (check_) check_(value, node);
        });
    }

private:
    CheckFn check_;
};

template <class T>
template <class U, class C, class... Options>
    requires std::is_base_of_v<C, T>
Map<T>::Entry::Entry(std::string name, U C::*member, Options&&... options) {
    using V = typename detail::Optional<U>::type;
    constexpr bool optional = detail::Optional<U>::value;
    U T::*m = member;
    field.name = std::move(name);
    bool asBytes = false, asSeconds = false;
    std::optional<Choices<V>> words;
    std::function<std::string(const V&)> valueCheck;
    std::string checkHint;
    std::shared_ptr<const MapBase> nested;
    auto option = [&](auto&& o) {
        using O = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<O, Required>) field.required = true;
        else if constexpr (std::is_same_v<O, Range>) field.range = o;
        else if constexpr (std::is_same_v<O, BytesTag>) asBytes = true;
        else if constexpr (std::is_same_v<O, SecondsTag>) asSeconds = true;
        else if constexpr (std::is_same_v<O, PathTag>) field.path = true;
        else if constexpr (std::is_same_v<O, DefaultText>) field.defaultText = o.text;
        else if constexpr (detail::IsChoices<O>::value) {
            static_assert(std::is_same_v<O, Choices<V>>, "choices must be of the field's type");
            words = o;
        } else if constexpr (detail::IsCheck<O>::value) {
            valueCheck = o.fn;
            checkHint = o.hint;
        } else if constexpr (IsMap<O>::value) {
            static_assert(std::is_same_v<O, Map<V>> && detail::isSection<V>, "a nested map must be of the field's type");
            nested = std::make_shared<Map<V>>(o);
        } else {
            field.help = o;
        }
    };
    (option(options), ...);

    if (words) {
        field.kind = Kind::String;
        for (const auto& w : words->words) field.words.push_back(w.first);
    } else if (nested) {
        field.kind = Kind::Map;
        field.nested = nested;
    } else if constexpr (std::is_same_v<V, bool>) {
        field.kind = Kind::Bool;
    } else if constexpr (detail::isInteger<V>) {
        field.kind = asBytes ? Kind::Bytes : asSeconds ? Kind::Duration : Kind::Int;
    } else if constexpr (std::is_floating_point_v<V>) {
        field.kind = Kind::Number;
    } else if constexpr (detail::isDuration<V>) {
        field.kind = Kind::Duration;
    } else if constexpr (std::is_same_v<V, std::string>) {
        field.kind = Kind::String;
    } else if constexpr (std::is_same_v<V, std::vector<std::string>>) {
        field.kind = Kind::StringList;
    } else if constexpr (std::is_same_v<V, StringMap>) {
        field.kind = Kind::StringMap;
    } else {
        detail::declarationError(field.name, "a field of this type needs choices or a nested map");
    }

    const Kind kind = field.kind;
    const Range bounds = field.range;
    const bool isPath = field.path;
    field.fill = [m, kind, bounds, isPath, words, valueCheck, checkHint, nested](
                     void* object, const Node& n, const std::string& what, const ReadContext& rc) {
        T& target = *static_cast<T*>(object);
        V v{};
        if (words) {
            std::vector<std::string> names;
            for (const auto& w : words->words) names.push_back(w.first);
            v = words->words[detail::readWord(n, what, names)].second;
        } else if constexpr (detail::isSection<V>) {
            // A nested mapping is named by its key alone ("tls.cert", "unknown key 'x' in tls").
            ReadContext inner{what.substr(what.rfind('.') + 1), rc.baseDir};
            if constexpr (optional) v = target.*m ? *(target.*m) : V{};
            else v = target.*m;
            static_cast<const Map<V>&>(*nested).readInto(v, n, inner);
        } else if constexpr (std::is_same_v<V, bool>) {
            v = n.asBool(what);
        } else if constexpr (detail::isInteger<V>) {
            if (kind == Kind::Bytes) v = static_cast<V>(detail::readBytes(n, what, bounds));
            else if (kind == Kind::Duration) v = static_cast<V>(detail::readDuration(n, what, bounds).count() / 1000);
            else v = static_cast<V>(detail::readInt(n, what, bounds));
        } else if constexpr (std::is_floating_point_v<V>) {
            v = static_cast<V>(detail::readNumber(n, what, bounds));
        } else if constexpr (detail::isDuration<V>) {
            v = detail::readDuration(n, what, bounds);
        } else if constexpr (std::is_same_v<V, std::string>) {
            v = detail::readString(n, what, isPath, rc.baseDir);
        } else if constexpr (std::is_same_v<V, std::vector<std::string>>) {
            v = n.asStringList(what);
        } else if constexpr (std::is_same_v<V, StringMap>) {
            v = detail::readStringMap(n, what);
        }
        if (valueCheck)
            if (std::string why = valueCheck(v); !why.empty()) n.fail(why, checkHint);
        target.*m = std::move(v);
    };

    // The default: the field's value in a default-constructed T.
    if (field.required || !field.defaultText.empty()) return;
    const T defaults{};
    const auto& held = defaults.*m;
    if constexpr (optional) {
        if (!held) return;
    }
    const V& d = [&]() -> const V& {
        if constexpr (optional) return *held;
        else return held;
    }();
    auto inRange = [&](double x) {
        return (x >= bounds.min && x <= bounds.max) || (x == 0 && !bounds.zero.empty());
    };
    if constexpr (std::equality_comparable<V>) {
        if (words) {
            for (const auto& w : words->words)
                if (w.second == d) {
                    field.defaultText = w.first;
                    field.defaultJson = util::jsonString(w.first);
                }
            if (field.defaultText.empty()) detail::declarationError(field.name, "its default is none of its choices");
            return;
        }
    }
    if constexpr (std::is_same_v<V, bool>) {
        field.defaultText = field.defaultJson = d ? "true" : "false";
    } else if constexpr (detail::isInteger<V>) {
        const double scale = kind == Kind::Duration ? 1000 : 1;  // seconds are bounded in milliseconds
        if (!inRange(static_cast<double>(d) * scale))
            detail::declarationError(field.name, "its default is out of its range (declare byDefault(...))");
        if (kind == Kind::Bytes) {
            field.defaultText = detail::bytesText(static_cast<std::uint64_t>(d));
            field.defaultJson = util::jsonString(field.defaultText);
        } else if (kind == Kind::Duration) {
            field.defaultText = detail::durationText(std::chrono::seconds(d));
            field.defaultJson = util::jsonString(field.defaultText);
        } else {
            field.defaultText = field.defaultJson = std::to_string(d);
        }
    } else if constexpr (std::is_floating_point_v<V>) {
        if (!inRange(d)) detail::declarationError(field.name, "its default is out of its range (declare byDefault(...))");
        field.defaultText = field.defaultJson = detail::numberText(d);
    } else if constexpr (detail::isDuration<V>) {
        if (!inRange(static_cast<double>(d.count())))
            detail::declarationError(field.name, "its default is out of its range (declare byDefault(...))");
        field.defaultText = detail::durationText(d);
        field.defaultJson = util::jsonString(field.defaultText);
    } else if constexpr (std::is_same_v<V, std::string>) {
        if (d.empty()) return;
        field.defaultText = d;
        field.defaultJson = util::jsonString(d);
    }
}

// A section with no settings of its own, and its (empty) map.
struct NoSettings {};
const Map<NoSettings>& noSettings();

// Generated from maps: the JSON Schema of a mapping read by `maps` together
// (`constants`: keys pinned to one string, such as a connector's type), and
// the rows of a Markdown table "| setting | value | default | meaning |".
std::string jsonSchema(const Field& field);
std::string jsonSchema(const std::vector<const MapBase*>& maps,
                       const std::vector<std::pair<std::string, std::string>>& constants = {});
std::string markdownTable(const std::vector<const MapBase*>& maps);

}  // namespace junction::config
