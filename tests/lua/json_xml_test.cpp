#include "tests/lua/lua_test_util.h"

using namespace junction::lua;
using namespace junction::lua::test;

namespace {
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("json round trips", "[lua][json]") {
    Harness h(R"JS(
        local function rt(text) return json.encode(json.decode(text)) end
        function go(msg)
            -- key order and exact text survive a round trip
            local doc = '{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Doe","given":["Jane","M"]}],"n":null,"score":1.5,"count":3,"big":9007199254740993,"neg":-12,"exp":1e+20,"zero":0.0,"empty":{},"list":[]}'
            assert(rt(doc) == doc, rt(doc))
            -- integers stay integers, floats stay floats
            local v = json.decode('[1, 1.0, -0, 2.5e3, 123456789012345678]')
            assert(math.type(v[1]) == "integer" and math.type(v[2]) == "float")
            assert(math.type(v[4]) == "float" and v[4] == 2500)
            assert(v[5] == 123456789012345678 and math.type(v[5]) == "integer")
            assert(json.encode(v) == "[1,1.0,0,2500.0,123456789012345678]", json.encode(v))
            assert(json.encode(0.1) == "0.1")
            assert(json.encode(1/3) == "0.3333333333333333")
            -- unicode: UTF-8 passes through, \u escapes incl. surrogate pairs decode to UTF-8
            local s = json.decode('"caf\\u00e9 \\u20ac \\ud83d\\ude00 ümlaut 日本"')
            assert(s == "café € 😀 ümlaut 日本", s)
            assert(json.encode(s) == '"café € 😀 ümlaut 日本"')
            -- escapes
            local e = json.decode('"q\\"b\\\\s\\/n\\nr\\rt\\tb\\bf\\f\\u0001"')
            assert(e == 'q"b\\s/n\nr\rt\tb\bf\f\1')
            assert(json.encode(e) == '"q\\"b\\\\s/n\\nr\\rt\\tb\\bf\\f\\u0001"', json.encode(e))
            -- invalid UTF-8 bytes are written as \u00XX (read as Latin-1)
            assert(json.encode("a\xe9b") == '"a\\u00e9b"')
            -- null sentinel keeps array positions
            local a = json.decode("[1,null,3]")
            assert(#a == 3 and a[2] == json.null)
            assert(json.encode(a) == "[1,null,3]")
            -- nested
            local n = json.decode('{"a":{"b":{"c":[[1,2],[3,{"d":"e"}]]}}}')
            assert(n.a.b.c[2][2].d == "e")
            assert(json.encode(n) == '{"a":{"b":{"c":[[1,2],[3,{"d":"e"}]]}}}')
            -- whitespace
            assert(json.encode(json.decode(' \n\t{ "a" : [ 1 , 2 ] } \r\n')) == '{"a":[1,2]}')
        end
        function tables(msg)
            assert(json.encode({}) == "{}")
            assert(json.encode(json.array({})) == "[]")
            assert(json.encode(json.array()) == "[]")
            assert(json.encode({ 1, 2, 3 }) == "[1,2,3]")
            assert(json.encode({ [1] = "a", [3] = "c" }) == '{"1":"a","3":"c"}')
            assert(json.encode({ b = 1, a = 2, c = { z = true, y = false } }) == '{"a":2,"b":1,"c":{"y":false,"z":true}}')
            assert(json.encode("x") == '"x"' and json.encode(true) == "true" and json.encode(nil) == "null")
            assert(json.encode({ a = { 1, 2 } }, { pretty = true }) == '{\n  "a": [\n    1,\n    2\n  ]\n}',
                   json.encode({ a = { 1, 2 } }, { pretty = true }))
            -- keys added to a decoded object follow the original ones
            local o = json.decode('{"z":1,"a":2}')
            o.m = 3
            o.a = nil
            assert(json.encode(o) == '{"z":1,"m":3}', json.encode(o))
            -- duplicate keys: the last wins, listed once
            assert(json.encode(json.decode('{"a":1,"a":2}')) == '{"a":2}')
            local t = {}
            t.self = t
            local ok, err = pcall(json.encode, t)
            assert(not ok and err:find("circular"), err)
            assert(not pcall(json.encode, { f = print }))
            assert(not pcall(json.encode, 0/0))
            assert(not pcall(json.encode, { [true] = 1 }))
        end
        function errors(msg)
            local cases = {
                { '{"a":1,}', "line 1, column 8" },
                { '[1 2]', "expected ',' or ']'" },
                { '{"a" 1}', "expected ':'" },
                { '"abc', "unterminated string" },
                { '', "unexpected end of input" },
                { '{"a":tru}', "line 1, column 6" },
                { '[1]x', "expected end of input" },
                { '01', "expected end of input" },
                { '"\\ud800"', "surrogate" },
                { '"\\x"', "invalid escape" },
                { '{\n  "a": [1,\n  ]}', "line 3, column 3" },
                { '"a\tb"', "control character" },
                { '-', "expected a digit" },
                { '1.', "digit after '.'" },
            }
            for _, c in ipairs(cases) do
                local ok, err = pcall(json.decode, c[1])
                assert(not ok, c[1])
                assert(err:find(c[2], 1, true), c[1] .. " -> " .. err)
                assert(err:find("json.decode", 1, true), err)
            end
            local ok, err = pcall(json.decode, string.rep("[", 2000))
            assert(not ok and err:find("1000"), err)
        end
    )JS");
    h.ok("go");
    h.ok("tables");
    h.ok("errors");
}

TEST_CASE("json.decode error position is reported with the script's file:line", "[lua][json]") {
    Harness h("function f(msg)\n  return json.decode('{\"a\":}')\nend");
    CallResult r = h.call("f");
    CHECK_FALSE(r.ok);
    INFO(r.error);
    CHECK(contains(r.error, "transforms/test.lua:2: json.decode: unexpected character '}'"));
    CHECK(contains(r.error, "column 6"));
}

TEST_CASE("xml parse and encode", "[lua][xml]") {
    Harness h(R"X(
        function go(msg)
            local doc = '<?xml version="1.0" encoding="UTF-8"?>\n<order id="42" xmlns:h="urn:x">\n  <patient mrn="MRN1">Doe &amp; Sons</patient>\n  <h:item><![CDATA[a < b]]></h:item>\n  <empty/>\n  <n>caf\195\169</n>\n</order>'
            local t = xml.parse(doc)
            assert(t.name == "order" and t.attrs.id == "42" and t.attrs["xmlns:h"] == "urn:x")
            assert(t.text == nil)
            assert(#t.children == 4)
            assert(t.children[1].name == "patient" and t.children[1].attrs.mrn == "MRN1")
            assert(t.children[1].text == "Doe & Sons")
            assert(t.children[2].name == "h:item" and t.children[2].text == "a < b")
            assert(t.children[3].name == "empty" and t.children[3].text == nil and #t.children[3].children == 0)
            assert(t.children[4].text == "café")
            local out = xml.encode(t)
            assert(out == '<order id="42" xmlns:h="urn:x"><patient mrn="MRN1">Doe &amp; Sons</patient><h:item>a &lt; b</h:item><empty/><n>café</n></order>', out)
            -- round trip is stable
            assert(xml.encode(xml.parse(out)) == out)
            assert(xml.encode({ name = "a", attrs = { q = 'x"<&' }, text = "t" }) == '<a q="x&quot;&lt;&amp;">t</a>')
            assert(xml.encode({ name = "r" }, { declaration = true }) == '<?xml version="1.0" encoding="UTF-8"?>\n<r/>')
        end
        function errors(msg)
            local ok, err = pcall(xml.parse, "<a><b></a>")
            assert(not ok and err:find("xml.parse: line 1", 1, true), err)
            ok, err = pcall(xml.parse, '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>')
            assert(not ok, "doctype accepted")
            ok, err = pcall(xml.parse, '<!DOCTYPE a SYSTEM "file:///etc/passwd"><a/>')
            assert(not ok, "external dtd accepted")
            ok, err = pcall(xml.parse, '<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>')
            assert(not ok, "external entity accepted")
            assert(not pcall(xml.parse, ""))
            assert(not pcall(xml.encode, { name = "bad name" }))
            assert(not pcall(xml.encode, { attrs = {} }))
        end
    )X");
    h.ok("go");
    h.ok("errors");
}

TEST_CASE("payloadError tells whether text is a message of a data type, as the scripts would read it", "[lua][json][xml]") {
    CHECK(payloadError(DataType::Json, R"({"a": [1, 2.5, "x", null, true]})").empty());
    CHECK(payloadError(DataType::Json, " [] ").empty());
    CHECK_THAT(payloadError(DataType::Json, "{\"a\": 1,\n \"b\": }"),
               Catch::Contains("not JSON: unexpected character '}'") && Catch::Contains("line 2, column 7"));
    CHECK_THAT(payloadError(DataType::Json, R"({"a": 1} trailing)"), Catch::Contains("expected end of input"));
    CHECK_THAT(payloadError(DataType::Json, ""), Catch::Contains("unexpected end of input"));
    CHECK(payloadError(DataType::Xml, "<order id=\"1\"><item>CT</item></order>").empty());
    CHECK_THAT(payloadError(DataType::Xml, "<order><item></order>"), Catch::StartsWith("not XML: line 1"));
    CHECK_THAT(payloadError(DataType::Xml, "{\"json\": true}"), Catch::StartsWith("not XML"));
    // HL7 is the engine's to parse; raw is anything.
    CHECK(payloadError(DataType::Hl7v2, "not hl7").empty());
    CHECK(payloadError(DataType::Raw, "\x01\x02").empty());
}
