#include <catch2/catch.hpp>

#include <optional>

#include "engine/config/config_map.h"

using namespace junction::config;
using namespace std::chrono_literals;

namespace {

enum class Mode { Fast, Safe };

struct Tls {
    bool enabled = false;
    std::string cert, key;
    bool verify = false;
};

struct Options {
    int port = 0;
    std::string host = "0.0.0.0";
    std::chrono::milliseconds idle{300000};
    std::chrono::milliseconds frame{30000};
    std::size_t maxBytes = 16u << 20;
    std::vector<std::string> names;
    Mode mode = Mode::Safe;
    double jitter = 0.2;
    std::optional<int> threads;
    std::string dir;
    Tls tls;
    StringMap headers;
};

const Map<Tls>& tlsMap() {
    static const Map<Tls> map(
        {
            {"cert", &Tls::cert, path, "PEM certificate"},
            {"key", &Tls::key, path, "PEM private key"},
            {"verify", &Tls::verify, "check the peer"},
        },
        [](Tls& t, const Node& n) {
            if (t.cert.empty()) n.fail("tls needs cert and key");
            t.enabled = true;
        });
    return map;
}

const Map<Options>& optionsMap() {
    static const Map<Options> map{
        {"port", &Options::port, required, range(1, 65535), "TCP port"},
        {"host", &Options::host, check([](const std::string& h) { return h == "bad" ? "host: not an address" : ""; }, "e.g. host: 127.0.0.1"),
         "address to bind"},
        {"idle_timeout", &Options::idle, "close idle connections"},
        {"frame_timeout", &Options::frame, range(100ms, 1h).orZero("never"), "close unfinished frames"},
        {"max_bytes", &Options::maxBytes, bytes, range(4096, 1u << 30), "largest message"},
        {"names", &Options::names, "names let in"},
        {"mode", &Options::mode, choices<Mode>({{"fast", Mode::Fast}, {"safe", Mode::Safe}}), "how"},
        {"jitter", &Options::jitter, range(0.0, 1.0), "randomness"},
        {"threads", &Options::threads, range(1, 64), byDefault("one a core"), "loops"},
        {"dir", &Options::dir, path, "a folder"},
        {"tls", &Options::tls, tlsMap(), "TLS"},
        {"headers", &Options::headers, "names and values"},
    };
    return map;
}

Options read(const std::string& yaml) {
    return optionsMap().read(loadYamlString(yaml, "x.yaml"), {"source (test)", "/base"});
}

std::string error(const std::string& yaml) {
    try {
        read(yaml);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "no error";
}

}  // namespace

TEST_CASE("config map: fills a struct, absent keys keep the struct's defaults", "[config]") {
    Options o = read("port: 6661\nnames: [a, b]\nmode: fast\nmax_bytes: 1MB\nframe_timeout: 0\ndir: in\n"
                     "tls: { cert: c.pem, verify: yes }\n");
    CHECK(o.port == 6661);
    CHECK(o.host == "0.0.0.0");
    CHECK(o.idle == 5min);
    CHECK(o.frame == 0ms);
    CHECK(o.maxBytes == 1u << 20);
    CHECK(o.names == std::vector<std::string>{"a", "b"});
    CHECK(o.mode == Mode::Fast);
    CHECK(o.jitter == Approx(0.2));
    CHECK_FALSE(o.threads);
    CHECK(o.dir == "/base/in");
    CHECK(o.tls.enabled);  // set by the nested map's check
    CHECK(o.tls.cert == "/base/c.pem");
    CHECK(o.tls.verify);
    CHECK(read("port: 1\nthreads: 4\nnames: one\n").threads == 4);
    CHECK(read("port: 1\nnames: one\n").names == std::vector<std::string>{"one"});
    CHECK_FALSE(read("port: 1\n").tls.enabled);

    Options kept;
    kept.host = "127.0.0.1";
    optionsMap().readInto(kept, loadYamlString("port: 2\n", "x.yaml"), {"x", ""});
    CHECK(kept.host == "127.0.0.1");
    CHECK(kept.port == 2);
}

TEST_CASE("config map: bounds, types, choices and checks are told at the value", "[config]") {
    CHECK_THAT(error("port: 70000\n"), Catch::StartsWith("x.yaml:1:7: source (test).port must be between 1 and 65535"));
    CHECK_THAT(error("port: x\n"), Catch::Contains("source (test).port must be a whole number, got 'x'"));
    CHECK_THAT(error("port: 1\nframe_timeout: 50ms\n"),
               Catch::StartsWith("x.yaml:2:16: source (test).frame_timeout must be 0 (never) or from 100ms to 1h"));
    CHECK_THAT(error("port: 1\nmax_bytes: 1KB\n"), Catch::Contains("max_bytes must be between 4KB and 1GB"));
    CHECK_THAT(error("port: 1\njitter: 2\n"), Catch::Contains("jitter must be a number from 0 to 1"));
    CHECK_THAT(error("port: 1\njitter: lots\n"), Catch::Contains("jitter must be a number from 0 to 1"));
    CHECK_THAT(error("port: 1\nmode: slow\n"), Catch::Contains("mode cannot be 'slow' (one of: fast, safe)"));
    CHECK_THAT(error("port: 1\nhost: bad\n"), Catch::StartsWith("x.yaml:2:7: host: not an address (e.g. host: 127.0.0.1)"));
    CHECK_THAT(error("port: 1\nidle_timeout: 5y\n"), Catch::Contains("unknown duration unit 'y'"));
    CHECK_THAT(error("port: 1\nthreads: 0\n"), Catch::Contains("threads must be between 1 and 64"));
    CHECK_THAT(error("[1, 2]\n"), Catch::Contains("source (test) must be a mapping"));
}

TEST_CASE("config map: unknown and missing keys, every problem of one pass", "[config]") {
    CHECK_THAT(error("port: 1\nhots: x\n"),
               Catch::StartsWith("x.yaml:2:1: unknown key 'hots' in source (test) (allowed: port, host,"));
    CHECK_THAT(error("host: x\n"), Catch::StartsWith("x.yaml:1:1: missing key 'port' in source (test) (TCP port)"));
    std::string all = error("port: 0\nhots: x\nmode: slow\n");
    CHECK_THAT(all, Catch::Contains("x.yaml:1:7: source (test).port"));
    CHECK_THAT(all, Catch::Contains("x.yaml:2:1: unknown key 'hots'"));
    CHECK_THAT(all, Catch::Contains("x.yaml:3:7: source (test).mode cannot be"));

    // Keys another map reads are not unknown; without unknownKeys none is.
    static const Map<NoSettings> common{};
    struct Common {
        std::string type;
    };
    static const Map<Common> typeMap{{"type", &Common::type, required, "the type"}};
    auto node = loadYamlString("type: t\nport: 5\n", "x.yaml");
    CHECK(optionsMap().read(node, {"s", "", {&typeMap}}).port == 5);
    CHECK_THROWS_WITH(optionsMap().read(node, {"s", ""}), Catch::Contains("unknown key 'type' in s"));
    CHECK(typeMap.read(node, {"s", "", {}, false}).type == "t");
    CHECK_THROWS_WITH(typeMap.read(loadYamlString("port: 5\n", "x.yaml"), {"s", "", {}, false}),
                      Catch::Contains("missing key 'type' in s"));
}

TEST_CASE("config map: a nested map is named by its key, its check runs after its keys", "[config]") {
    CHECK_THAT(error("port: 1\ntls: { cert: a, kee: b }\n"), Catch::StartsWith("x.yaml:2:17: unknown key 'kee' in tls"));
    CHECK_THAT(error("port: 1\ntls: { verify: maybe }\n"), Catch::Contains("tls.verify must be true or false"));
    CHECK_THAT(error("port: 1\ntls: { verify: true }\n"), Catch::StartsWith("x.yaml:2:6: tls needs cert and key"));
    CHECK_THAT(error("port: 1\ntls: yes\n"), Catch::Contains("tls must be a mapping"));
}

TEST_CASE("config map: a mapping of text keeps its keys in file order", "[config]") {
    Options o = read("port: 1\nheaders: { X-B: two, Accept: application/json, X-N: 5 }\n");
    CHECK(o.headers == StringMap{{"X-B", "two"}, {"Accept", "application/json"}, {"X-N", "5"}});
    CHECK(read("port: 1\n").headers.empty());
    CHECK_THAT(error("port: 1\nheaders: [a, b]\n"),
               Catch::StartsWith("x.yaml:2:10: source (test).headers must be a mapping of names to text"));
    CHECK_THAT(error("port: 1\nheaders: { A: [x] }\n"), Catch::Contains("source (test).headers.A must be a string"));
    CHECK_THAT(jsonSchema({&optionsMap()}),
               Catch::Contains("\"headers\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"},"
                               "\"description\":\"names and values\"}"));
    CHECK_THAT(markdownTable({&optionsMap()}), Catch::Contains("| `headers` | mapping of text |  | names and values |\n"));
}

TEST_CASE("config map: declarations are checked when the map is made", "[config]") {
    struct S {
        int n = 0;
        std::string word = "c";
    };
    CHECK_THROWS_AS((Map<S>{{"n", &S::n, range(1, 10), "out of range by default"}}), std::logic_error);
    CHECK_NOTHROW((Map<S>{{"n", &S::n, range(1, 10), byDefault("none"), "told"}}));
    CHECK_THROWS_AS((Map<S>{{"word", &S::word, oneOf({"a", "b"}), "not a choice"}}), std::logic_error);
    CHECK_THROWS_AS((Map<S>{{"n", &S::n, "a"}, {"n", &S::n, "twice"}}), std::logic_error);
}

TEST_CASE("config map: JSON Schema and Markdown come from the declarations", "[config]") {
    std::string schema = jsonSchema({&optionsMap()}, {{"host", "h"}});
    CHECK_THAT(schema, Catch::StartsWith("{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"));
    CHECK_THAT(schema, Catch::Contains("\"port\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":65535,\"description\":\"TCP port\"}"));
    CHECK_THAT(schema, Catch::Contains("\"host\":{\"const\":\"h\",\"type\":\"string\",\"default\":\"0.0.0.0\""));
    CHECK_THAT(schema, Catch::Contains("\"idle_timeout\":{\"type\":[\"string\",\"number\"],\"pattern\":\"^[0-9.]+(ms|s|m|h|d)?$\",\"default\":\"5m\""));
    CHECK_THAT(schema, Catch::Contains("\"mode\":{\"type\":\"string\",\"enum\":[\"fast\",\"safe\"],\"default\":\"safe\""));
    CHECK_THAT(schema, Catch::Contains("\"threads\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":64,\"description\":\"loops; default: one a core\"}"));
    CHECK_THAT(schema, Catch::Contains("\"tls\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"cert\":"));
    CHECK_THAT(schema, Catch::Contains("\"max_bytes\":{\"type\":[\"string\",\"number\"],\"pattern\":\"^[0-9.]+([KMG]i?B?|B)?$\",\"default\":\"16MB\""));
    CHECK_THAT(schema, Catch::EndsWith(",\"required\":[\"port\"]}"));

    std::string table = markdownTable({&optionsMap()});
    CHECK_THAT(table, Catch::StartsWith("| setting | value | default | meaning |\n|---|---|---|---|\n"
                                        "| `port` | integer, from 1 to 65535 | required | TCP port |\n"
                                        "| `host` | text | `0.0.0.0` | address to bind |\n"));
    CHECK_THAT(table, Catch::Contains("| `frame_timeout` | duration, 0 (never) or from 100ms to 1h | `30s` | close unfinished frames |\n"));
    CHECK_THAT(table, Catch::Contains("| `mode` | `fast` or `safe` | `safe` | how |\n"));
    CHECK_THAT(table, Catch::Contains("| `threads` | integer, from 1 to 64 | one a core | loops |\n"));
    CHECK_THAT(table, Catch::Contains("| `tls` | mapping |  | TLS |\n| `tls.cert` | path |  | PEM certificate |\n"));
    CHECK(markdownTable({}).empty());
}
