// Tests of the HL7 v2.xml encoding (engine/hl7/xml.h).
#include "engine/hl7/xml.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using junction::hl7::fromXml;
using junction::hl7::Message;
using junction::hl7::ParseResult;
using junction::hl7::toXml;

namespace {

// What the pipe text of a decoded message must be: the input's own
// serialization; decoded messages always end with a segment separator.
std::string expectedText(const Message& m) {
    std::string s = m.serialize();
    if (!m.endsWithSeparator()) s += '\r';
    return s;
}

Message parseHl7(std::string_view text) {
    auto r = Message::parse(text);
    INFO(r.error.describe());
    REQUIRE(r);
    return std::move(*r.message);
}

// toXml -> fromXml -> serialize gives the original pipe text (plain and pretty).
void checkRoundTrip(std::string_view hl7) {
    Message m = parseHl7(hl7);
    for (bool pretty : {false, true}) {
        std::string xml = toXml(m, pretty);
        ParseResult back = fromXml(xml);
        INFO("pretty=" << pretty << "\nXML:\n" << xml);
        INFO("error: " << back.error.describe());
        REQUIRE(back);
        CHECK(back.message->serialize() == expectedText(m));
        // Encoding the decoded message again gives the same document.
        CHECK(toXml(*back.message, pretty) == xml);
    }
}

std::string xmlOf(std::string_view hl7, bool pretty = false) { return toXml(parseHl7(hl7), pretty); }

bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

std::string readFile(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Messages of a file: batch envelope segments dropped, split before each MSH.
std::vector<std::string> splitMessages(const std::string& text) {
    std::vector<std::string> out;
    std::string current;
    std::size_t i = 0;
    if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;
    while (i < text.size()) {
        std::size_t end = text.find_first_of("\r\n", i);
        if (end == std::string::npos) end = text.size();
        std::string line = text.substr(i, end - i);
        i = end + 1;
        if (line.find_first_not_of(" \t\x1a\x1c\x0b") == std::string::npos) continue;
        std::string id = line.substr(0, 3);
        if (id == "FHS" || id == "BHS" || id == "BTS" || id == "FTS") continue;
        if (id == "MSH" && !current.empty()) {
            out.push_back(current);
            current.clear();
        }
        current += line;
        current += '\r';
    }
    if (!current.empty()) out.push_back(current);
    return out;
}

const char* kOrm =
    "MSH|^~\\&|RIS|HOSP^1.2.3.4^ISO|PACS|HOSP|20240101120000+0100||ORM^O01^ORM_O01|MSG0001|P|2.5.1|||AL|NE\r"
    "PID|1||12345^^^HOSP^MR~67890^^^NATION^NI||DOE^JANE^Q^JR^DR^^L~SMITH^JANE^^^^^M||19800101|F|||"
    "1 MAIN ST^APT 2^SPRINGFIELD^IL^62701^USA^H||^PRN^PH^^^555^1234567|||||||||||||||\"\"||\"\"\r"
    "PV1|1|O|RAD^ROOM1^BED2^HOSP||||1234^WELBY^MARCUS^^^DR|||||||||||V0001\r"
    "ORC|NW|ORD1000^RIS|||SC||^^^20240101130000^^R|||||1234^WELBY^MARCUS\r"
    "OBR|1|ORD1000^RIS||71020^CHEST XRAY 2 VIEWS^CPT4|||20240101120000|||||||||1234^WELBY^MARCUS||ACC1|"
    "||||||||1^once^^20240101130000^^R\r"
    "NTE|1||Patient is claustrophobic\\.br\\Use open MRI\r"
    "ZDS|1.2.840.113619.2.55.3^100^Application^DICOM\r";

const char* kOru =
    "MSH|^~\\&|LAB|HOSP|EMR|HOSP|20240102083000||ORU^R01|MSG0002|P|2.5\r"
    "PID|1||555^^^LAB^MR||O'BRIEN^SEAN\r"
    "OBR|1||LAB77|CBC^COMPLETE BLOOD COUNT^L\r"
    "OBX|1|ST|TXT^Text^L||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\X0D\\g\\.br\\h||||||F\r"
    "OBX|2|CE|ALG^Allergy^L||PEN^Penicillin^L~SUL^Sulfa^L||||||F\r"
    "OBX|3|NM|WBC^Leukocytes^L||7.5|10*9/L^^UCUM|4.0-11.0|N|||F|||20240102080000\r"
    "OBX|4|FT|RPT^Report^L||Line one\\.br\\\\H\\bold\\N\\ line two\\.sp2\\ \\Zcustom\\||||||F\r"
    "OBX|5|ED|IMG^Image^L||HOSP^IMAGE^JPEG^Base64^AAAA&BBBB||||||F\r"
    "NTE|1|L|\"\"\r"
    "ZXY|a&b&&c^^x~~y|||\r";

}  // namespace

TEST_CASE("toXml writes HL7 v2.xml", "[xml]") {
    std::string xml = xmlOf(kOrm);
    CHECK(xml.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", 0) == 0);
    CHECK(contains(xml, "<ORM_O01 xmlns=\"urn:hl7-org:v2xml\">"));
    CHECK(contains(xml, "<MSH><MSH.1>|</MSH.1><MSH.2>^~\\&amp;</MSH.2>"));
    CHECK(contains(xml, "<MSH.3><HD.1>RIS</HD.1></MSH.3>"));
    CHECK(contains(xml, "<MSH.4><HD.1>HOSP</HD.1><HD.2>1.2.3.4</HD.2><HD.3>ISO</HD.3></MSH.4>"));
    CHECK(contains(xml, "<MSH.7><TS.1>20240101120000+0100</TS.1></MSH.7>"));
    CHECK(contains(xml, "<MSH.9><MSG.1>ORM</MSG.1><MSG.2>O01</MSG.2><MSG.3>ORM_O01</MSG.3></MSH.9>"));
    CHECK(contains(xml, "<MSH.12><VID.1>2.5.1</VID.1></MSH.12>"));
    CHECK(contains(xml, "<MSH.15>AL</MSH.15>"));
    CHECK(contains(xml, "<PID.1>1</PID.1>"));
    // Repetitions are separate elements; empty components are left out.
    CHECK(contains(xml, "<PID.3><CX.1>12345</CX.1><CX.4><HD.1>HOSP</HD.1></CX.4><CX.5>MR</CX.5></PID.3>"
                        "<PID.3><CX.1>67890</CX.1>"));
    CHECK(contains(xml, "<PID.5><XPN.1><FN.1>DOE</FN.1></XPN.1><XPN.2>JANE</XPN.2><XPN.3>Q</XPN.3>"
                        "<XPN.4>JR</XPN.4><XPN.5>DR</XPN.5><XPN.7>L</XPN.7></PID.5>"));
    CHECK(contains(xml, "<PID.11><XAD.1><SAD.1>1 MAIN ST</SAD.1></XAD.1><XAD.2>APT 2</XAD.2>"));
    CHECK(contains(xml, "<PID.13><XTN.2>PRN</XTN.2><XTN.3>PH</XTN.3><XTN.6>555</XTN.6><XTN.7>1234567</XTN.7></PID.13>"));
    // Explicit null.
    CHECK(contains(xml, "<PID.28>\"\"</PID.28>"));  // a null composite stays a null field
    CHECK(contains(xml, "<PID.30>\"\"</PID.30>"));
    CHECK(contains(xml, "<PV1.3><PL.1>RAD</PL.1><PL.2>ROOM1</PL.2><PL.3>BED2</PL.3><PL.4><HD.1>HOSP</HD.1></PL.4></PV1.3>"));
    CHECK(contains(xml, "<PV1.7><XCN.1>1234</XCN.1><XCN.2><FN.1>WELBY</FN.1></XCN.2><XCN.3>MARCUS</XCN.3><XCN.6>DR</XCN.6></PV1.7>"));
    CHECK(contains(xml, "<ORC.7><TQ.4><TS.1>20240101130000</TS.1></TQ.4><TQ.6>R</TQ.6></ORC.7>"));
    CHECK(contains(xml, "<OBR.4><CE.1>71020</CE.1><CE.2>CHEST XRAY 2 VIEWS</CE.2><CE.3>CPT4</CE.3></OBR.4>"));
    CHECK(contains(xml, "<OBR.27><TQ.1><CQ.1>1</CQ.1></TQ.1><TQ.2><RI.1>once</RI.1></TQ.2>"));
    // Formatting escapes stay escape elements.
    CHECK(contains(xml, "<NTE.3>Patient is claustrophobic<escape V=\".br\"/>Use open MRI</NTE.3>"));
    // Z-segment: generic names.
    CHECK(contains(xml, "<ZDS><ZDS.1><ZDS.1.1>1.2.840.113619.2.55.3</ZDS.1.1><ZDS.1.2>100</ZDS.1.2>"
                        "<ZDS.1.3>Application</ZDS.1.3><ZDS.1.4>DICOM</ZDS.1.4></ZDS.1></ZDS>"));
    CHECK(contains(xml, "</ORM_O01>"));
}

TEST_CASE("toXml: escapes, OBX-5 types, subcomponents, Z-segments", "[xml]") {
    std::string xml = xmlOf(kOru);
    CHECK(contains(xml, "<ORU_R01 xmlns=\"urn:hl7-org:v2xml\">"));
    // Delimiter escapes become the characters themselves; others stay escapes.
    CHECK(contains(xml, "<OBX.5>a|b^c&amp;d~e\\f<escape V=\"X0D\"/>g<escape V=\".br\"/>h</OBX.5>"));
    CHECK(contains(xml, "<OBX.5><CE.1>PEN</CE.1><CE.2>Penicillin</CE.2><CE.3>L</CE.3></OBX.5>"
                        "<OBX.5><CE.1>SUL</CE.1>"));
    CHECK(contains(xml, "<OBX.6><CE.1>10*9/L</CE.1><CE.3>UCUM</CE.3></OBX.6>"));
    CHECK(contains(xml, "<escape V=\"H\"/>bold<escape V=\"N\"/>"));
    CHECK(contains(xml, "<escape V=\"Zcustom\"/>"));
    CHECK(contains(xml, "<OBX.5><ED.1><HD.1>HOSP</HD.1></ED.1><ED.2>IMAGE</ED.2><ED.3>JPEG</ED.3>"
                        "<ED.4>Base64</ED.4><ED.5><ED.5.1>AAAA</ED.5.1><ED.5.2>BBBB</ED.5.2></ED.5></OBX.5>"));
    CHECK(contains(xml, "<NTE.3>\"\"</NTE.3>"));
    // Z-segment: subcomponents, trailing empty component, empty repetition,
    // empty last field.
    CHECK(contains(xml, "<ZXY><ZXY.1><ZXY.1.1><ZXY.1.1.1>a</ZXY.1.1.1><ZXY.1.1.2>b</ZXY.1.1.2>"
                        "<ZXY.1.1.4>c</ZXY.1.1.4></ZXY.1.1><ZXY.1.3>x</ZXY.1.3></ZXY.1><ZXY.1/>"
                        "<ZXY.1>y</ZXY.1><ZXY.4/></ZXY>"));
}

TEST_CASE("toXml: root names", "[xml]") {
    CHECK(contains(xmlOf("MSH|^~\\&|A|B|C|D|20240101||ACK^O01|1|P|2.5\rMSA|AA|MSG0001\r"), "<ACK xmlns="));
    CHECK(contains(xmlOf("MSH|^~\\&|A|B|C|D|20240101||ACK|1|P|2.5\rMSA|AA|MSG0001\r"), "<ACK xmlns="));
    CHECK(contains(xmlOf("MSH|^~\\&|A|B|C|D|20240101||ADT^A04^ADT_A01|1|P|2.5\r"), "<ADT_A01 xmlns="));
    CHECK(contains(xmlOf("MSH|^~\\&|A|B|C|D|20240101||ADT^A04|1|P|2.5\r"), "<ADT_A04 xmlns="));
}

TEST_CASE("toXml: pretty printing indents without touching values", "[xml]") {
    std::string xml = xmlOf(kOrm, true);
    CHECK(contains(xml, "\n  <PID>\n    <PID.1>1</PID.1>\n    <PID.3>\n      <CX.1>12345</CX.1>"));
    CHECK(contains(xml, "\n</ORM_O01>\n"));
    auto back = fromXml(xml);
    REQUIRE(back);
    CHECK(back.message->serialize() == expectedText(parseHl7(kOrm)));
}

TEST_CASE("v2.xml round trip of inline messages", "[xml]") {
    SECTION("ORM^O01") { checkRoundTrip(kOrm); }
    SECTION("ORU^R01 with escapes, repetitions, subcomponents") { checkRoundTrip(kOru); }
    SECTION("non-default delimiters MSH#!@$%") {
        const char* msg =
            "MSH#!@$%#RIS#HOSP#PACS#HOSP#20240101120000##ORM!O01#X1#P#2.5\r"
            "PID#1##123!!!HOSP@456!!!OTHER##DOE%X!JANE\r"
            "OBX#1#ST#CODE!Text##a$F$b$S$c$T$d$R$e$E$f$.br$g|h^i&j~k\\l\r"
            "ZZZ#\"\"#!##\r";
        checkRoundTrip(msg);
        std::string xml = xmlOf(msg);
        CHECK(contains(xml, "<MSH.1>#</MSH.1><MSH.2>!@$%</MSH.2>"));
        CHECK(contains(xml, "<OBX.5>a#b!c%d@e$f<escape V=\".br\"/>g|h^i&amp;j~k\\l</OBX.5>"));
        CHECK(contains(xml, "<PID.5><XPN.1><FN.1>DOE</FN.1><FN.2>X</FN.2></XPN.1><XPN.2>JANE</XPN.2></PID.5>"));
    }
    SECTION("truncation character (five encoding characters)") {
        checkRoundTrip("MSH|^~\\&#|A|B|C|D|20240101||ADT^A01|1|P|2.7\rPID|1||12#^^^X\rNTE|1||cut\\P\\here#\r");
    }
    SECTION("short MSH-2 (no escape, no subcomponent)") {
        checkRoundTrip("MSH|^~|A|B|C|D|20240101||ADT^A01|1|P|2.3\rPID|1||1^^^X~2\rZZZ|a&b\\c\r");
        checkRoundTrip("MSH|^|A|B|C|D|20240101||ADT^A01|1|P|2.3\rPID|1||1^^^X~2\r");
    }
    SECTION("trailing separators and empty parts") {
        checkRoundTrip("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5|||\rPID|1||^^^&&&~~^|||\r"
                       "PV1|\rZZ1\rZZ2|\rZZ3|||x\rEVN||\r");
    }
    SECTION("explicit nulls everywhere") {
        checkRoundTrip("MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5\rPID|\"\"|\"\"|\"\"^\"\"^\"\"&\"\"~\"\"|\"\"\r");
    }
    SECTION("malformed escapes and odd bytes") {
        checkRoundTrip("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\r"
                       "NTE|1||lone \\ escape\rNTE|2||\\\\empty code~a\\b^c\\d\r"
                       "NTE|3||tab\there <xml> & \"quotes\" 'apos' ]]> \\X0A\\\\XZZ\\\\.in+4\\\r"
                       "NTE|4||ctl\x01\x02 bytes \xFF\xFE invalid \xC3\xA9 valid \xE2\x82\xAC\xF0\x9F\x98\x80\r"
                       "NTE|5||overlong \xC0\xAF surrogate \xED\xA0\x80 \xEF\xBF\xBF nonchar\r"
                       "NTE|6||\\.br\\\\\x01\\\r");
    }
    SECTION("ISO 8859-1 (MSH-18)") {
        std::string latin = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5||||||8859/1\rPID|1||1||M\xFCller^J\xF6rg\r";
        checkRoundTrip(latin);
        std::string xml = xmlOf(latin);
        CHECK(contains(xml, "<FN.1>M\xC3\xBCller</FN.1>"));  // UTF-8 in the XML
    }
    SECTION("LF separators and no final separator") {
        checkRoundTrip("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\nPID|1||1\n\nPV1|1|I");
    }
    SECTION("field separator that XML must escape") {
        checkRoundTrip("MSH<^~\\&<A<B<C<D<20240101<<ADT^A01<1<P<2.5\rPID<1<<a\\F\\b\r");
        checkRoundTrip("MSH&^~\\\"&A&B&C&D&20240101&&ADT^A01&1&P&2.5\rPID&1&&a\\F\\b\"c\r");
    }
    SECTION("a created message") {
        Message m = Message::create("ADT^A01^ADT_A01");
        m.set("PID-5.1", "O'Brien & Sons <Ltd>");
        m.set("PID-5.2", "a|b^c~d\\e&f\ng");
        m.setNull("PID-8");
        checkRoundTrip(m.serialize());
    }
}

TEST_CASE("v2.xml round trip of the sample messages", "[xml]") {
    namespace fs = std::filesystem;
    fs::path dir = fs::path(JUNCTION_SOURCE_DIR) / "samples" / "hl7";
    if (!fs::is_directory(dir)) {
        WARN("no samples directory " << dir);
        return;
    }
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".hl7") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    int checked = 0;
    for (const auto& file : files) {
        std::string text = readFile(file);
        for (const auto& one : splitMessages(text)) {
            auto parsed = Message::parse(one);
            if (!parsed) continue;  // deliberately broken samples are tested elsewhere
            INFO(file.filename().string());
            std::string xml = toXml(*parsed.message);
            auto back = fromXml(xml);
            INFO(xml);
            INFO(back.error.describe());
            REQUIRE(back);
            CHECK(back.message->serialize() == expectedText(*parsed.message));
            auto pretty = fromXml(toXml(*parsed.message, true));
            REQUIRE(pretty);
            CHECK(pretty.message->serialize() == expectedText(*parsed.message));
            ++checked;
        }
    }
    INFO(files.size() << " sample files, " << checked << " messages checked");
    SUCCEED();
}

TEST_CASE("v2.xml round trip of the messages of a batch", "[xml]") {
    std::string batch = "FHS|^~\\&|RIS|HOSP|||20240101\nBHS|^~\\&|RIS|HOSP|||20240101\n";
    batch += kOrm;
    batch += kOru;
    batch += "BTS|2\nFTS|1\n";
    auto messages = splitMessages(batch);
    REQUIRE(messages.size() == 2);
    CHECK(messages[0] == kOrm);
    for (const auto& one : messages) checkRoundTrip(one);
}

TEST_CASE("fromXml accepts spec documents with groups and generic names", "[xml]") {
    const char* doc = R"(<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment -->
<ORM_O01 xmlns="urn:hl7-org:v2xml" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <MSH>
    <MSH.1>|</MSH.1>
    <MSH.2>^~\&amp;</MSH.2>
    <MSH.3><HD.1>RIS</HD.1></MSH.3>
    <MSH.7><TS.1>20240101120000</TS.1></MSH.7>
    <MSH.9>
      <MSG.1>ORM</MSG.1>
      <MSG.2>O01</MSG.2>
      <MSG.3>ORM_O01</MSG.3>
    </MSH.9>
    <MSH.10>X1</MSH.10>
    <MSH.11><PT.1>P</PT.1></MSH.11>
    <MSH.12><VID.1>2.5</VID.1></MSH.12>
  </MSH>
  <ORM_O01.PATIENT>
    <PID>
      <PID.3><CX.1>123</CX.1><CX.4><HD.1>HOSP</HD.1></CX.4></PID.3>
      <PID.3><CX.1>456</CX.1></PID.3>
      <PID.5><XPN.1><FN.1>DOE</FN.1></XPN.1><XPN.2>JANE</XPN.2></PID.5>
      <PID.8>F</PID.8>
    </PID>
    <ORM_O01.PATIENT_VISIT><PV1><PV1.2>O</PV1.2></PV1></ORM_O01.PATIENT_VISIT>
  </ORM_O01.PATIENT>
  <ORM_O01.ORDER>
    <ORC><ORC.1>NW</ORC.1></ORC>
    <ORM_O01.ORDER_DETAIL><ORM_O01.OBRRQDRQ1RXOODSODT_SUPPGRP><OBR>
      <OBR.1>1</OBR.1>
      <OBR.4><CE.1>71020</CE.1><CE.2>CHEST &amp; &lt;LUNGS&gt; <![CDATA[A|B]]></CE.2></OBR.4>
      <OBR.13>line 1<escape V=".br"/>line 2</OBR.13>
    </OBR></ORM_O01.OBRRQDRQ1RXOODSODT_SUPPGRP></ORM_O01.ORDER_DETAIL>
    <NTE><NTE.3>a^b</NTE.3></NTE>
  </ORM_O01.ORDER>
  <ZDS><ZDS.1><ZDS.1.1>1.2.3</ZDS.1.1><ZDS.1.4>DICOM</ZDS.1.4></ZDS.1></ZDS>
</ORM_O01>
)";
    auto r = fromXml(doc);
    INFO(r.error.describe());
    REQUIRE(r);
    CHECK(r.message->serialize() ==
          "MSH|^~\\&|RIS||||20240101120000||ORM^O01^ORM_O01|X1|P|2.5\r"
          "PID|||123^^^HOSP~456||DOE^JANE|||F\r"
          "PV1||O\r"
          "ORC|NW\r"
          "OBR|1|||71020^CHEST \\T\\ <LUNGS> A\\F\\B|||||||||line 1\\.br\\line 2\r"
          "NTE|||a\\S\\b\r"
          "ZDS|1.2.3^^^DICOM\r");
    CHECK(r.message->get("OBR-4.2") == "CHEST & <LUNGS> A|B");
    CHECK(r.message->get("PID-5.1") == "DOE");
}

TEST_CASE("fromXml: no namespace, fields out of order, text directly in a composite", "[xml]") {
    auto r = fromXml("<ADT_A01><MSH><MSH.1>|</MSH.1><MSH.2>^~\\&amp;</MSH.2><MSH.10>7</MSH.10>"
                     "<MSH.9><MSG.2>A01</MSG.2><MSG.1>ADT</MSG.1></MSH.9></MSH>"
                     "<PID><PID.5>DOE</PID.5><PID.3>1</PID.3></PID></ADT_A01>");
    INFO(r.error.describe());
    REQUIRE(r);
    CHECK(r.message->serialize() == "MSH|^~\\&|||||||ADT^A01|7\rPID|||1||DOE\r");
}

TEST_CASE("fromXml reports bad documents", "[xml]") {
    auto bad = [](std::string_view xml) {
        ParseResult r = fromXml(xml);
        INFO(std::string(xml.substr(0, 200)));
        CHECK_FALSE(r);
        CHECK_FALSE(r.error.message.empty());
        return r.error;
    };
    const std::string good = xmlOf(kOru);

    SECTION("not well-formed") {
        auto e = bad("<ORU_R01 xmlns=\"urn:hl7-org:v2xml\">\n<MSH><MSH.1>|</MSH.1>\n  <oops></MSH></ORU_R01>");
        CHECK(contains(e.message, "line 3"));
        CHECK(e.offset > 40);
        CHECK(e.offset <= 80);
        bad(good.substr(0, good.size() / 2));
        bad("<ORU_R01>");
        bad("<a><b></a></b>");
        bad("<?xml version=\"1.0\"?>");
    }
    SECTION("empty and garbage") {
        bad("");
        bad("   \n ");
        bad("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\r");
        bad(std::string("\x00\x01\x02\xFF\xFE\x80garbage", 12));
        bad("\xFF\xFE<\x00M\x00");
        bad("<ORU_R01 xmlns=\"urn:hl7-org:v2xml\"><MSH><MSH.1>\xC3</MSH.1></MSH></ORU_R01>");
        std::string noise(4096, '\0');
        std::mt19937 rng(42);
        for (auto& c : noise) c = static_cast<char>(rng());
        bad(noise);
    }
    SECTION("wrong root") {
        bad("<html><body>hello</body></html>");
        bad("<html xmlns=\"http://www.w3.org/1999/xhtml\"><MSH><MSH.1>|</MSH.1></MSH></html>");
        bad("<ORM_O01 xmlns=\"urn:other\"><MSH/></ORM_O01>");
    }
    SECTION("no MSH or not first") {
        auto e = bad("<ORM_O01 xmlns=\"urn:hl7-org:v2xml\"></ORM_O01>");
        CHECK(contains(e.message, "MSH"));
        bad("<ORM_O01 xmlns=\"urn:hl7-org:v2xml\"><PID><PID.1>1</PID.1></PID></ORM_O01>");
        bad("<ORM_O01 xmlns=\"urn:hl7-org:v2xml\"><PID/><MSH><MSH.1>|</MSH.1><MSH.2>^~\\&amp;</MSH.2>"
            "<MSH.9>X</MSH.9></MSH></ORM_O01>");
        // MSH without a message type is not a valid message.
        bad("<ORM_O01 xmlns=\"urn:hl7-org:v2xml\"><MSH><MSH.1>|</MSH.1><MSH.2>^~\\&amp;</MSH.2></MSH></ORM_O01>");
        // Two messages.
        bad("<ACK xmlns=\"urn:hl7-org:v2xml\"><MSH><MSH.9>ACK</MSH.9></MSH><MSH><MSH.9>ACK</MSH.9></MSH></ACK>");
    }
    SECTION("bad structure") {
        const std::string head =
            "<ADT_A01 xmlns=\"urn:hl7-org:v2xml\"><MSH><MSH.1>|</MSH.1><MSH.2>^~\\&amp;</MSH.2>"
            "<MSH.9><MSG.1>ADT</MSG.1></MSH.9></MSH>";
        CHECK(fromXml(head + "</ADT_A01>"));
        bad(head + "<PID><PID>1</PID></PID></ADT_A01>");                            // no index
        bad(head + "<PID><PID.x>1</PID.x></PID></ADT_A01>");                        // not numeric
        bad(head + "<PID><PID.0>1</PID.0></PID></ADT_A01>");                        // index 0
        bad(head + "<PID><PID.99999999999999999999>1</PID.99999999999999999999></PID></ADT_A01>");
        bad(head + "<PID>text</PID></ADT_A01>");                                    // text in a segment
        bad(head + "<PID><PID.5><XPN.1>a</XPN.1>b</PID.5></PID></ADT_A01>");        // mixed content
        bad(head + "<PID><PID.5><XPN.1><FN.1><X.1>a</X.1></FN.1></XPN.1></PID.5></PID></ADT_A01>");  // too deep
        bad(head + "<PID><PID.5><XPN.1>a</XPN.1><XPN.1>b</XPN.1></PID.5></PID></ADT_A01>");  // duplicate
        bad(head + "<PID><PID.5>a<escape V=\"a|b\"/></PID.5></PID></ADT_A01>");    // delimiter in V
        bad(head + "<PID><PID.5>a<escape B=\"7C\"/></PID.5></PID></ADT_A01>");     // delimiter in B
        bad(head + "<PID><PID.5>a<escape B=\"7\"/></PID.5></PID></ADT_A01>");
        bad(head + "<PID><PID.5>a<b/></PID.5></PID></ADT_A01>");
        bad(head + "<garbage>text</garbage></ADT_A01>");
        bad("<ADT_A01 xmlns=\"urn:hl7-org:v2xml\"><MSH><MSH.1>||</MSH.1></MSH></ADT_A01>");
        bad("<ADT_A01 xmlns=\"urn:hl7-org:v2xml\"><MSH><MSH.1>|</MSH.1><MSH.2>^^</MSH.2></MSH></ADT_A01>");
        bad("<ADT_A01 xmlns=\"urn:hl7-org:v2xml\"><MSH><MSH.1>|</MSH.1><MSH.2>^</MSH.2>"
            "<MSH.9><MSG.1>ADT</MSG.1></MSH.9></MSH><PID><PID.3>a</PID.3><PID.3>b</PID.3></PID></ADT_A01>");
        bad("<ADT_A01 xmlns=\"urn:hl7-org:v2xml\"><MSH><MSH.1>|</MSH.1><MSH.2>^~</MSH.2>"
            "<MSH.9><MSG.1>ADT</MSG.1></MSH.9></MSH><PID><PID.3>a|b</PID.3></PID></ADT_A01>");
        bad("<ADT_A01 xmlns=\"urn:hl7-org:v2xml\"><MSH><MSH.1>|</MSH.1><MSH.2>^~\\&amp;</MSH.2>"
            "<MSH.9><MSG.1>ADT</MSG.1></MSH.9><MSH.18>8859/1</MSH.18></MSH><PID><PID.3>\xE2\x82\xAC</PID.3></PID></ADT_A01>");
        std::string deep = "<ADT_A01 xmlns=\"urn:hl7-org:v2xml\">";
        for (int i = 0; i < 200; ++i) deep += "<G.x>";
        for (int i = 0; i < 200; ++i) deep += "</G.x>";
        bad(deep + "</ADT_A01>");
    }
    SECTION("no DTDs, no external entities (XXE), no entity expansion bombs") {
        auto e = bad("<?xml version=\"1.0\"?>\n<!DOCTYPE ACK [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n"
                     "<ACK xmlns=\"urn:hl7-org:v2xml\"><MSH><MSH.1>|</MSH.1><MSH.2>^~\\&amp;</MSH.2>"
                     "<MSH.9>ACK</MSH.9><MSH.10>&xxe;</MSH.10></MSH></ACK>");
        CHECK_FALSE(contains(e.message, "root:"));
        bad("<?xml version=\"1.0\"?>\n<!DOCTYPE ACK SYSTEM \"http://127.0.0.1:1/evil.dtd\">\n"
            "<ACK xmlns=\"urn:hl7-org:v2xml\"><MSH><MSH.9>ACK</MSH.9></MSH></ACK>");
        std::string bomb = "<?xml version=\"1.0\"?>\n<!DOCTYPE ACK [<!ENTITY a \"aaaaaaaaaa\">";
        char prev = 'a';
        for (char c = 'b'; c <= 'k'; ++c, ++prev) {
            bomb += "<!ENTITY ";
            bomb += c;
            bomb += " \"";
            for (int i = 0; i < 10; ++i) bomb += std::string("&") + prev + ";";
            bomb += "\">";
        }
        bomb += "]>\n<ACK xmlns=\"urn:hl7-org:v2xml\"><MSH><MSH.1>|</MSH.1><MSH.2>^~\\&amp;</MSH.2>"
                "<MSH.9>ACK</MSH.9><MSH.10>&k;</MSH.10></MSH></ACK>";
        bad(bomb);
        // Even a harmless internal DTD is refused.
        bad("<!DOCTYPE ACK [<!ENTITY x \"1\">]><ACK xmlns=\"urn:hl7-org:v2xml\"><MSH><MSH.1>|</MSH.1>"
            "<MSH.2>^~\\&amp;</MSH.2><MSH.9>ACK</MSH.9><MSH.10>&x;</MSH.10></MSH></ACK>");
    }
}

TEST_CASE("fromXml survives mutated documents", "[xml]") {
    const std::string good = xmlOf(kOru);
    std::mt19937 rng(1234);
    int accepted = 0;
    for (int i = 0; i < 2000; ++i) {
        std::string doc = good;
        int edits = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < edits; ++k) {
            std::size_t pos = rng() % doc.size();
            switch (rng() % 4) {
                case 0: doc[pos] = static_cast<char>(rng()); break;
                case 1: doc.erase(pos, 1 + rng() % 16); break;
                case 2: doc.insert(pos, 1, "<>&/\"|^~\\.0"[rng() % 11]); break;
                default: doc.insert(pos, doc.substr(rng() % doc.size(), rng() % 40)); break;
            }
        }
        ParseResult r = fromXml(doc);
        if (r) {
            ++accepted;
            // Whatever is accepted can be encoded and decoded again identically.
            auto again = fromXml(toXml(*r.message));
            REQUIRE(again);
            CHECK(again.message->serialize() == r.message->serialize());
        } else {
            CHECK_FALSE(r.error.message.empty());
        }
    }
    CHECK(accepted > 0);
}

TEST_CASE("fromXml is usable from several threads", "[xml]") {
    const std::string xml = xmlOf(kOrm);
    const std::string expected = expectedText(parseHl7(kOrm));
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 50; ++i) {
                auto r = fromXml(xml);
                if (!r || r.message->serialize() != expected) ++failures;
                if (fromXml("<bad")) ++failures;
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK(failures == 0);
}
