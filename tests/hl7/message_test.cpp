#include <catch2/catch.hpp>

#include <fstream>
#include <random>
#include <sstream>

#include "engine/hl7/ack.h"
#include "engine/hl7/batch.h"
#include "engine/hl7/message.h"
#include "engine/hl7/types.h"

using namespace junction::hl7;
using namespace std::string_literals;

namespace {

const std::string kOrm =
    "MSH|^~\\&|RIS|HOSPITAL|PACS|RADIOLOGY|20261123081500||ORM^O01|MSG00001|P|2.3.1\r"
    "PID|1||12345^^^HOSP^MR~A998877^^^NATIONAL^NI||DOE^JANE^Q^^DR||19800101|F\r"
    "ORC|NW|ORD1234|ACC5678||SC\r"
    "OBR|1|ORD1234|ACC5678|CTCHEST^CT Chest w/o contrast^L|||20261123090000\r"
    "ZDS|1.2.840.113619.2.55.3.1234^^Application^DICOM\r";

Message parsed(const std::string& text) {
    auto r = Message::parse(text);
    INFO(r.error.describe());
    REQUIRE(r.ok());
    return std::move(*r.message);
}

std::string readFile(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

}  // namespace

TEST_CASE("parse fields, components, repetitions", "[hl7][parse]") {
    Message m = parsed(kOrm);
    CHECK(m.segmentCount() == 5);
    CHECK(m.segmentName(1) == "PID");
    CHECK(m.get("MSH-1") == "|");
    CHECK(m.get("MSH-2") == "^~\\&");
    CHECK(m.get("MSH-3") == "RIS");
    CHECK(m.get("MSH-9") == "ORM^O01");
    CHECK(m.get("MSH-9.2") == "O01");
    CHECK(m.messageType() == "ORM^O01");
    CHECK(m.controlId() == "MSG00001");
    CHECK(m.version() == "2.3.1");
    CHECK(m.get("PID-3") == "12345^^^HOSP^MR~A998877^^^NATIONAL^NI");
    CHECK(m.get("PID-3.1") == "12345");
    CHECK(m.get("PID-3[2].1") == "A998877");
    CHECK(m.get("PID-3[2].4") == "NATIONAL");
    CHECK(m.get("PID-3[3].1") == "");
    CHECK(m.repetitionCount("PID-3") == 2);
    CHECK(m.repetitionCount("PID-8") == 1);
    CHECK(m.repetitionCount("PID-9") == 0);
    CHECK(m.get("PID-5.2") == "JANE");
    CHECK(m.get("PID-99") == "");
    CHECK(m.get("ZDS-1.4") == "DICOM");
    CHECK(m.get("OBX-5") == "");
    CHECK(m.fieldCount(0) == 12);
    CHECK(m.fieldCount(2) == 5);
    CHECK(m.segmentsNamed("PID").size() == 1);
}

TEST_CASE("serialize is byte-identical for CR input", "[hl7][serialize]") {
    Message m = parsed(kOrm);
    CHECK(m.serialize() == kOrm);
    std::string noFinal = kOrm.substr(0, kOrm.size() - 1);
    CHECK(parsed(noFinal).serialize() == noFinal);
    // Every sample file with CR separators round-trips exactly.
    std::string dir = std::string(JUNCTION_SOURCE_DIR) + "/samples/hl7/";
    for (const char* name : {"orm_o01_nw.hl7", "orm_o01_ca.hl7", "orm_o01_xo.hl7", "orm_o01_sc.hl7", "omi_o23.hl7",
                             "oru_r01.hl7", "adt_a04.hl7", "adt_a08.hl7"}) {
        std::string text = readFile(dir + name);
        INFO(name);
        REQUIRE(!text.empty());
        CHECK(text.find('\n') == std::string::npos);
        CHECK(parsed(text).serialize() == text);
    }
}

TEST_CASE("LF and CRLF separators, blank lines and trailing junk", "[hl7][parse]") {
    std::string lf = kOrm, crlf;
    for (char& c : lf)
        if (c == '\r') c = '\n';
    for (char c : kOrm) {
        if (c == '\r') crlf += "\r\n";
        else crlf += c;
    }
    CHECK(parsed(lf).serialize() == kOrm);
    CHECK(parsed(crlf).serialize() == kOrm);
    CHECK(parsed(kOrm + "\r\n\x1a\0  "s).serialize() == kOrm);
    CHECK(parsed("\xEF\xBB\xBF" + kOrm).serialize() == kOrm);
    std::string blank = kOrm;
    blank.insert(blank.find("PID"), "\r\r");
    CHECK(parsed(blank).segmentCount() == 5);
    CHECK(parsed(crlf).serialize("\n") == lf);
}

TEST_CASE("custom delimiters from MSH-1 and MSH-2", "[hl7][parse]") {
    std::string text = "MSH#!@$%#SND#FAC#RCV#FAC#20260101##ADT!A04#X1#P#2.5\rPID###ID1!!!AUTH@ID2##DOE!JOHN%PART#\r";
    Message m = parsed(text);
    CHECK(m.delimiters().field == '#');
    CHECK(m.delimiters().component == '!');
    CHECK(m.delimiters().repetition == '@');
    CHECK(m.delimiters().escape == '$');
    CHECK(m.delimiters().subcomponent == '%');
    CHECK(m.get("MSH-9.1") == "ADT");
    CHECK(m.get("PID-3[2]") == "ID2");
    CHECK(m.get("PID-5.2.2") == "PART");
    CHECK(m.serialize() == text);
    m.set("PID-6", "A#B!C");
    CHECK(m.getRaw("PID-6") == "A$F$B$S$C");
    CHECK(m.get("PID-6") == "A#B!C");
    // v2.7 truncation character as the fifth encoding character
    Message t = parsed("MSH|^~\\&#|A|B|C|D|20260101||ADT^A01|1|P|2.7\rPID|||1\\P\\2\r");
    CHECK(t.delimiters().truncation == '#');
    CHECK(t.get("PID-3") == "1#2");
    // a short MSH-2 is accepted: unused delimiters are disabled
    Message s = parsed("MSH|^~|A|B|C|D|20260101||ADT^A01|1|P|2.3\rPID|||1\\2&3\r");
    CHECK(s.delimiters().escape == 0);
    CHECK(s.get("PID-3") == "1\\2&3");
}

TEST_CASE("escape sequences", "[hl7][escape]") {
    Message m = parsed(
        "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\r"
        "OBX|1|FT|X||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\.br\\g\\X0D0A\\h\\H\\bold\\N\\\\Zcustom\\\\.sp\\end\\X4G\\\r");
    CHECK(m.get("OBX-5") == "a|b^c&d~e\\f\ng\r\nh\\H\\bold\\N\\\\Zcustom\\\\.sp\\end\\X4G\\");
    CHECK(m.serialize().find("\\H\\bold\\N\\") != std::string::npos);  // unknown sequences preserved
    Delimiters d;
    CHECK(escapeValue("a|b^c&d~e\\f", d) == "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f");
    CHECK(escapeValue("line1\r\nline2\nline3\rx", d) == "line1\\.br\\line2\\.br\\line3\\X0D\\x");
    CHECK(unescapeValue(escapeValue("a|b^c&d~e\\f\nz", d), d) == "a|b^c&d~e\\f\nz");
    CHECK(unescapeValue("unterminated \\F", d) == "unterminated \\F");
    CHECK(unescapeValue("\\X41424\\", d) == "\\X41424\\");  // odd hex digit count: kept
    CHECK(unescapeValue("\\X414243\\", d) == "ABC");
    CHECK(escapeValue("plain", d) == "plain");
}

TEST_CASE("empty versus explicit null", "[hl7][parse]") {
    Message m = parsed("MSH|^~\\&|A|B|C|D|20260101||ADT^A08|1|P|2.5\rPID|1||123||\"\"|||\"\"\r");
    CHECK(m.isNull("PID-5"));
    CHECK_FALSE(m.isNull("PID-4"));
    CHECK(m.has("PID-5"));
    CHECK_FALSE(m.has("PID-4"));
    CHECK(m.get("PID-5") == "\"\"");
    CHECK(m.isNull("PID-8"));
    m.setNull("PID-7");
    CHECK(m.getRaw("PID-7") == "\"\"");
    m.clear("PID-5");
    CHECK_FALSE(m.has("PID-5"));
    CHECK(m.serialize() == "MSH|^~\\&|A|B|C|D|20260101||ADT^A08|1|P|2.5\rPID|1||123||||\"\"|\"\"\r");
}

TEST_CASE("paths", "[hl7][path]") {
    auto p = Path::parse("OBX[3]-5[2].1.2");
    REQUIRE(p);
    CHECK(p->segment == "OBX");
    CHECK(p->occurrence == 3);
    CHECK(p->field == 5);
    CHECK(p->repetition == 2);
    CHECK(p->component == 1);
    CHECK(p->subcomponent == 2);
    CHECK(p->toString() == "OBX[3]-5[2].1.2");
    auto q = Path::parse("pid-3-1-2");
    REQUIRE(q);
    CHECK(q->segment == "PID");
    CHECK(q->component == 1);
    CHECK(q->subcomponent == 2);
    CHECK(Path::parse("PID.5.1")->field == 5);
    CHECK(Path::parse("PID-3(2)")->repetition == 2);
    CHECK(Path::parse("ZDS")->field == 0);
    std::string err;
    for (const char* bad : {"", "PI", "1ID-3", "PID-", "PID-0", "PID-3[0]", "PID-3[x]", "PID-3.1.2.3", "PID-3.", "PID_3",
                            "PID-3[2", "PID-99999999"}) {
        INFO(bad);
        CHECK_FALSE(Path::parse(bad, &err));
        CHECK(err.find("invalid HL7 path") != std::string::npos);
    }
    Message m = parsed(kOrm);
    CHECK_THROWS_AS(m.get("P!D-3"), PathError);
}

TEST_CASE("segment occurrences and Z-segments", "[hl7][path]") {
    Message m = parsed(
        "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\rPID|1\rOBX|1|TX|||first\rOBX|2|TX|||second\r"
        "OBX|3|TX|||third\rZXY|custom^value\r");
    CHECK(m.get("OBX-5") == "first");
    CHECK(m.get("OBX[2]-5") == "second");
    CHECK(m.get("OBX[3]-1") == "3");
    CHECK(m.get("OBX[4]-5") == "");
    CHECK(m.get("ZXY-1.2") == "value");
    CHECK(m.segmentsNamed("OBX") == std::vector<std::size_t>{2, 3, 4});
    CHECK(m.findSegment("OBX", 2) == std::optional<std::size_t>(3));
    CHECK(m.get("OBX[2]") == "OBX|2|TX|||second");
}

TEST_CASE("editing", "[hl7][edit]") {
    Message m = parsed(kOrm);
    m.set("PID-5.1", "SMITH");
    CHECK(m.get("PID-5") == "SMITH^JANE^Q^^DR");
    m.set("PID-5.7", "L");
    CHECK(m.getRaw("PID-5") == "SMITH^JANE^Q^^DR^^L");
    m.set("PID-3[2].1", "B111");
    CHECK(m.getRaw("PID-3") == "12345^^^HOSP^MR~B111^^^NATIONAL^NI");
    m.set("PID-3[4].1", "X");
    CHECK(m.getRaw("PID-3") == "12345^^^HOSP^MR~B111^^^NATIONAL^NI~~X");
    m.removeRepetition("PID-3[3]");
    CHECK(m.getRaw("PID-3") == "12345^^^HOSP^MR~B111^^^NATIONAL^NI~X");
    CHECK(m.repetitionCount("PID-3") == 3);
    m.set("PID-20.2.3", "S3");
    CHECK(m.getRaw("PID-20") == "^&&S3");
    CHECK(m.fieldCount(1) == 20);
    m.set("OBR-4.2", "CT Chest & Abdomen | w/ contrast");
    CHECK(m.getRaw("OBR-4") == "CTCHEST^CT Chest \\T\\ Abdomen \\F\\ w/ contrast^L");
    CHECK(m.get("OBR-4.2") == "CT Chest & Abdomen | w/ contrast");
    m.setRaw("ORC-1", "CA");
    m.set("ZDS-1.1", "1.2.3");
    CHECK(m.get("ZDS-1") == "1.2.3^^Application^DICOM");
    m.set("NTE-3", "new segment appended");
    CHECK(m.segmentName(m.segmentCount() - 1) == "NTE");
    m.set("NTE[3]-1", "3");
    CHECK(m.segmentsNamed("NTE").size() == 3);
    m.setRaw("ZDS", "ZDS|9.9.9^^Application^DICOM");
    CHECK(m.get("ZDS-1.1") == "9.9.9");
    CHECK_THROWS_AS(m.set("MSH-1", "#"), PathError);
    CHECK_THROWS_AS(m.set("MSH-2", "^~"), PathError);
    CHECK_THROWS_AS(m.set("PID", "x"), PathError);
    // edits survive serialize → parse
    Message again = parsed(m.serialize());
    CHECK(again.get("OBR-4.2") == "CT Chest & Abdomen | w/ contrast");
    CHECK(again.get("PID-5.1") == "SMITH");
    CHECK(again.serialize() == m.serialize());
}

TEST_CASE("segment insertion and removal, copies", "[hl7][edit]") {
    Message m = parsed(kOrm);
    std::size_t at = m.insertSegmentText(2, "PV1|1|O|RAD^^^HOSP");
    CHECK(at == 2);
    CHECK(m.segmentName(2) == "PV1");
    CHECK(m.get("PV1-3.1") == "RAD");
    m.appendSegment("NTE", {"1", "", "note \\T\\ text"});
    CHECK(m.get("NTE-3") == "note & text");
    m.removeSegment(*m.findSegment("ZDS"));
    CHECK_FALSE(m.findSegment("ZDS"));
    CHECK_THROWS_AS(m.removeSegment(0), PathError);
    CHECK_THROWS_AS(m.insertSegment(1, "MSH"), PathError);
    CHECK_THROWS_AS(m.insertSegment(1, "pid"), PathError);
    Message copy = m;
    copy.set("PID-5.1", "COPY");
    CHECK(m.get("PID-5.1") == "DOE");
    CHECK(copy.get("PID-5.1") == "COPY");
    CHECK(copy.get("NTE-3") == "note & text");
    Message moved = std::move(copy);
    CHECK(moved.get("PID-5.1") == "COPY");
    CHECK(moved.serialize().find("PV1|1|O|RAD^^^HOSP\rORC") != std::string::npos);
}

TEST_CASE("create a new message", "[hl7][edit]") {
    Message m = Message::create("ORU^R01^ORU_R01", "2.5.1");
    CHECK(m.messageType() == "ORU^R01");
    CHECK(m.get("MSH-9.3") == "ORU_R01");
    CHECK(m.version() == "2.5.1");
    CHECK(!m.controlId().empty());
    CHECK(Timestamp::parse(m.get("MSH-7")).has_value());
    m.set("PID-3.1", "42");
    CHECK(parsed(m.serialize()).get("PID-3.1") == "42");
    CHECK(Message::create("ADT^A01").controlId() != m.controlId());
}

TEST_CASE("timestamps", "[hl7][types]") {
    auto t = Timestamp::parse("20261123081530.1234+0100");
    REQUIRE(t);
    CHECK(t->year == 2026);
    CHECK(t->month == 11);
    CHECK(t->day == 23);
    CHECK(t->hour == 8);
    CHECK(t->minute == 15);
    CHECK(t->second == 30);
    CHECK(t->fraction == 1234);
    CHECK(t->fractionDigits == 4);
    CHECK(t->utcOffsetMinutes == 60);
    CHECK(formatTimestamp(*t) == "20261123081530.1234+0100");
    CHECK(t->toIso8601() == "2026-11-23T08:15:30.1234+01:00");
    CHECK(formatTimestamp(*Timestamp::parse("202611")) == "202611");
    CHECK(formatTimestamp(*Timestamp::parse("00050102030405.0007-0930")) == "00050102030405.0007-0930");
    // formatNow is formatTimestamp(Timestamp::now()) (cached per second): equal unless a second turned between.
    for (int i = 0; i < 3; ++i) {
        std::string before = formatTimestamp(Timestamp::now());
        std::string now = formatNow();
        std::string after = formatTimestamp(Timestamp::now());
        CHECK((now == before || now == after));
        CHECK(now.size() == 19);  // yyyyMMddHHmmss+zzzz
    }
    CHECK(Timestamp::parse("19800101")->precisionDigits() == 8);
    auto tp = Timestamp::parse("19700101010000+0100")->toTimePoint();
    CHECK(std::chrono::system_clock::to_time_t(tp) == 0);
    for (const char* bad : {"", "2026", "20261", "20261301", "20260230", "2026112325", "20261123086000", "2026-11-23",
                            "20261123081530.", "20261123081530.12345", "202611230815+01", "20261123x"}) {
        if (std::string(bad) == "2026") continue;  // a year alone is valid
        INFO(bad);
        CHECK_FALSE(Timestamp::parse(bad));
    }
    CHECK(Timestamp::parse("2026"));
    CHECK(Timestamp::parse("20240229"));
    Message m = parsed(kOrm);
    auto dob = getTimestamp(m, "PID-7");
    REQUIRE(dob);
    CHECK(dob->year == 1980);
    auto when = getTimestamp(m, "OBR-7");
    REQUIRE(when);
    CHECK(when->hour == 9);
    setTimestamp(m, "OBR-7", *Timestamp::parse("202612011200"));
    CHECK(m.get("OBR-7") == "202612011200");
}

TEST_CASE("person names XPN and XCN", "[hl7][types]") {
    Message m = parsed(
        "MSH|^~\\&|A|B|C|D|20260101||ORM^O01|1|P|2.5\r"
        "PID|1||1||VAN DER BERG&VAN DER&BERG^ANNA^MARIA^JR^MS^MD^L~DOE^JANE^^^^^A\r"
        "ORC|NW|1||||||||||1234^WELBY^MARCUS^J^^DR^^^NPI&2.16.840.1.113883.4.6&ISO\r");
    PersonName n = getPersonName(m, "PID-5");
    CHECK(n.family == "VAN DER BERG");
    CHECK(n.given == "ANNA");
    CHECK(n.middle == "MARIA");
    CHECK(n.suffix == "JR");
    CHECK(n.prefix == "MS");
    CHECK(n.degree == "MD");
    CHECK(n.type == "L");
    CHECK(n.display() == "MS ANNA MARIA VAN DER BERG JR MD");
    CHECK(getPersonName(m, "PID-5[2]").type == "A");
    PersonId doc = getPersonId(m, "ORC-12");
    CHECK(doc.id == "1234");
    CHECK(doc.name.family == "WELBY");
    CHECK(doc.name.prefix == "DR");
    CHECK(doc.assigningAuthority == "NPI");
    PersonName w;
    w.family = "O^NEIL";
    w.given = "SEAN";
    setPersonName(m, "PID-5[2]", w);
    CHECK(m.getRaw("PID-5[2]") == "O\\S\\NEIL^SEAN");
    CHECK(getPersonName(m, "PID-5[2]").family == "O^NEIL");
    PersonId p;
    p.id = "99";
    p.name.family = "HOUSE";
    p.assigningAuthority = "LOCAL";
    setPersonId(m, "OBR-16", p);
    CHECK(m.getRaw("OBR-16") == "99^HOUSE^^^^^^^LOCAL");
}

TEST_CASE("ACK original and enhanced mode", "[hl7][ack]") {
    Message orm = parsed(kOrm);
    Message aa = makeAck(orm, AckCode::AA);
    CHECK(aa.get("MSH-3") == "PACS");
    CHECK(aa.get("MSH-4") == "RADIOLOGY");
    CHECK(aa.get("MSH-5") == "RIS");
    CHECK(aa.get("MSH-6") == "HOSPITAL");
    CHECK(aa.get("MSH-9") == "ACK^O01^ACK");
    CHECK(aa.get("MSH-11") == "P");
    CHECK(aa.get("MSH-12") == "2.3.1");
    CHECK(aa.get("MSA-1") == "AA");
    CHECK(aa.get("MSA-2") == "MSG00001");
    CHECK_FALSE(aa.findSegment("ERR"));
    CHECK(aa.controlId() != orm.controlId());
    for (AckCode c : {AckCode::AE, AckCode::AR, AckCode::CA, AckCode::CE, AckCode::CR}) {
        Message a = makeAck(orm, c, "text");
        CHECK(a.get("MSA-1") == toString(c));
        CHECK(a.get("MSA-3") == "text");
    }
    CHECK(parseAckCode("CE") == AckCode::CE);
    CHECK_FALSE(parseAckCode("XX"));
    CHECK(isPositive(AckCode::CA));
    CHECK_FALSE(isPositive(AckCode::AE));

    AckError err;
    err.segment = "PID";
    err.field = 3;
    err.code = 101;
    err.text = "PID-3 | missing";
    // v2.3.1: ERR-1 ELD
    Message ae = makeAck(orm, AckCode::AE, "rejected", &err);
    CHECK(ae.get("ERR-1.1") == "PID");
    CHECK(ae.get("ERR-1.3") == "3");
    CHECK(ae.get("ERR-1.4.1") == "101");
    CHECK(ae.get("ERR-1.4.2") == "PID-3 | missing");
    // v2.5: ERR-2 location, ERR-3 code, ERR-4 severity, ERR-8 text
    Message v25 = parsed("MSH|^~\\&|A|B|C|D|20260101||OMI^O23^OMI_O23|X9|P|2.5.1\rPID|1\r");
    Message ar = makeAck(v25, AckCode::AR, "", &err, AckOptions{"FIXED1", "JUNCTION", "LAB"});
    CHECK(ar.get("MSH-3") == "JUNCTION");
    CHECK(ar.get("MSH-4") == "LAB");
    CHECK(ar.controlId() == "FIXED1");
    CHECK(ar.get("MSA-2") == "X9");
    CHECK(ar.get("ERR-2") == "PID^1^3");
    CHECK(ar.get("ERR-3.1") == "101");
    CHECK(ar.get("ERR-3.3") == "HL70357");
    CHECK(ar.get("ERR-4") == "E");
    CHECK(ar.get("ERR-8") == "PID-3 | missing");

    // The text form is the serialized message (MSH-7, the time, aside).
    auto withoutTime = [](std::string text) {
        Message m = Message::parseOrThrow(text);
        m.set("MSH-7", "");
        return m.serialize();
    };
    AckOptions fixed{"FIXED2", "", ""};
    for (const Message* original : std::initializer_list<const Message*>{&orm, &v25}) {
        for (const AckError* e : std::initializer_list<const AckError*>{nullptr, &err}) {
            std::string text = makeAckText(*original, AckCode::AE, "bad | input", e, fixed);
            CHECK(text.find("FIXED2") != std::string::npos);
            CHECK(withoutTime(text) == withoutTime(makeAck(*original, AckCode::AE, "bad | input", e, fixed).serialize()));
        }
    }
}

TEST_CASE("NAK for unparsable input salvages the header", "[hl7][ack]") {
    std::string broken = "MSH|^~\\&|LAB|HOSP|EMR|HOSP|20260101||ORU^R01|CTRL77|P|2.4\r#bad segment\r";
    auto r = Message::parse(broken);
    REQUIRE_FALSE(r.ok());
    AckError e;
    e.code = 100;
    e.text = r.error.describe();
    Message nak = makeNak(broken, AckCode::AE, "parse error", &e);
    CHECK(nak.get("MSA-1") == "AE");
    CHECK(nak.get("MSA-2") == "CTRL77");
    CHECK(nak.get("MSH-5") == "LAB");
    CHECK(nak.get("MSH-9") == "ACK^R01^ACK");
    CHECK(nak.get("MSH-12") == "2.4");
    CHECK(nak.get("ERR-1.4.1") == "100");
    // pure garbage still gets a well-formed NAK
    Message g = makeNak(std::string("\x01\x02garbage\xff\0", 12), AckCode::AR, "not HL7");
    CHECK(g.get("MSA-1") == "AR");
    CHECK(g.get("MSA-2") == "");
    CHECK(g.get("MSA-3") == "not HL7");
    Message weird = makeNak("MSH\x01garbage", AckCode::AE, "x");
    CHECK(weird.delimiters().field == '|');
}

TEST_CASE("bad input gives clear errors with offsets", "[hl7][bad]") {
    struct Case {
        std::string input;
        std::size_t offset;
        std::string needle;
    };
    std::vector<Case> cases = {
        {"", 0, "empty"},
        {"\r\n  ", 4, "empty"},
        {"PID|1||123\r", 0, "does not start with an MSH"},
        {"  XYZ", 2, "does not start with an MSH"},
        {"FHS|^~\\&\rBHS\r", 0, "batch"},
        {"MSH", 3, "no field separator"},
        {"MSHA^~\\&|", 3, "invalid field separator"},
        {"MSH||A|B", 4, "encoding characters are missing"},
        {"MSH|^~\\&", 8, "ends after MSH-2"},
        {"MSH|^^\\&|A", 5, "used twice"},
        {"MSH|^~\\&^~|A", 4, "at most 5"},
        {"MSH|^a\\&|A", 5, "invalid encoding character"},
        {"MSH|^~\\&|A|B|C|D|20260101", 0, "MSH-9"},
        {"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rP!D|1\r", 43, "invalid segment id"},
        {"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPIDX|1\r", 43, "invalid segment id"},
        {"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1|\0|x\r"s, 49, "forbidden byte \\x00"},
        {"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1|\x0b|x\r", 49, "forbidden byte"},
        {"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rMSH|^~\\&|A|B|C|D|20260101||ADT^A01|2|P|2.5\r", 43,
         "second MSH"},
    };
    for (const auto& c : cases) {
        INFO("input: " << c.input);
        auto r = Message::parse(c.input);
        REQUIRE_FALSE(r.ok());
        INFO("error: " << r.error.describe());
        CHECK(r.error.offset == c.offset);
        CHECK(r.error.message.find(c.needle) != std::string::npos);
    }
    CHECK_THROWS_WITH(Message::parseOrThrow("garbage"), Catch::Contains("at byte 0"));
}

TEST_CASE("binary garbage never crashes", "[hl7][bad]") {
    std::mt19937 rng(42);
    for (int i = 0; i < 2000; ++i) {
        std::string s(rng() % 300, '\0');
        for (char& c : s) c = static_cast<char>(rng());
        if (i % 2) s = "MSH|^~\\&|" + s;
        auto r = Message::parse(s);
        if (r) {
            CHECK(Message::parse(r.message->serialize()).ok());
        } else {
            CHECK(r.error.offset <= s.size());
            CHECK(!r.error.message.empty());
        }
    }
}

TEST_CASE("large messages: 50 MB parses, the size limit is enforced", "[hl7][bad]") {
    std::string big = "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\rPID|1\r";
    std::string line = "OBX|1|ED|PDF||^application^pdf^Base64^" + std::string(1000, 'Q') + "\r";
    while (big.size() < 50u * 1024 * 1024) big += line;
    auto r = Message::parse(big);
    REQUIRE(r.ok());
    CHECK(r.message->segmentsNamed("OBX").size() > 50000);
    CHECK(r.message->serialize() == big);
    ParseOptions small;
    small.maxBytes = 10u * 1024 * 1024;
    auto limited = Message::parse(big, small);
    REQUIRE_FALSE(limited.ok());
    CHECK(limited.error.offset == small.maxBytes);
    CHECK(limited.error.message.find("exceeds the limit") != std::string::npos);
    // a single 20 MB field
    std::string huge = "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\rOBX|1|ED|||" + std::string(20u << 20, 'A') + "\r";
    auto h = Message::parse(huge);
    REQUIRE(h.ok());
    CHECK(h.message->getRaw("OBX-5").size() == (20u << 20));
}

TEST_CASE("truncated messages", "[hl7][bad]") {
    std::string full = readFile(std::string(JUNCTION_SOURCE_DIR) + "/samples/hl7/oru_r01.hl7");
    REQUIRE(!full.empty());
    std::size_t mshEnd = full.find('\r');
    for (std::size_t cut = 0; cut < full.size(); cut += 7) {
        std::string part = full.substr(0, cut);
        auto r = Message::parse(part);
        std::size_t msh9 = 0;  // offset just past "MSH-9": where the type field starts
        int bars = 0;
        for (std::size_t i = 0; i < mshEnd && bars < 8; ++i)
            if (full[i] == '|' && ++bars == 8) msh9 = i + 1;
        if (cut <= msh9) {
            INFO("cut at " << cut);
            CHECK_FALSE(r.ok());
        } else if (r) {
            CHECK(r.message->serialize() == part);
        }
    }
}

TEST_CASE("batches split into messages", "[hl7][batch]") {
    std::string text = readFile(std::string(JUNCTION_SOURCE_DIR) + "/samples/hl7/batch.hl7");
    REQUIRE(!text.empty());
    CHECK(isBatch(text));
    Batch b = parseBatch(text);
    CHECK(b.fileHeader.substr(0, 3) == "FHS");
    CHECK(b.batchHeader.substr(0, 3) == "BHS");
    CHECK(b.batchTrailer.substr(0, 3) == "BTS");
    CHECK(b.fileTrailer.substr(0, 3) == "FTS");
    REQUIRE(b.messages.size() == 3);
    CHECK(b.declaredCount == 3L);
    CHECK(b.warnings.empty());
    for (const auto& m : b.messages) {
        REQUIRE(m.parsed.ok());
        CHECK(m.parsed.message->serialize() == m.text);
        CHECK(text.substr(m.offset, 3) == "MSH");
    }
    CHECK(splitMessages(text).size() == 3);

    std::string plain = kOrm + kOrm;
    CHECK(isBatch(plain));
    CHECK_FALSE(isBatch(kOrm));
    Batch p = parseBatch(plain);
    CHECK(p.messages.size() == 2);
    CHECK(p.messages[1].offset == kOrm.size());

    std::string mixed = "BHS|^~\\&\r" + kOrm + "MSH|^~\\&|A\rPID|1\rBTS|5\r";
    Batch m = parseBatch(mixed);
    REQUIRE(m.messages.size() == 2);
    CHECK(m.messages[0].parsed.ok());
    CHECK_FALSE(m.messages[1].parsed.ok());
    CHECK(m.messages[1].parsed.error.offset >= m.messages[1].offset);
    REQUIRE(m.warnings.size() == 1);
    CHECK(m.warnings[0].find("declares 5") != std::string::npos);
}
