// HL7 v2.xml encoding (HL7 Version 2 XML Encoding Syntax, namespace
// "urn:hl7-org:v2xml") of a Message, and decoding back to a Message.
//
// Encoding:
//   <ORM_O01 xmlns="urn:hl7-org:v2xml">          root: MSH-9.3, else MSH-9.1_MSH-9.2
//     <MSH><MSH.1>|</MSH.1><MSH.2>^~\&amp;</MSH.2>... (ACK for an ACK)
//     <PID><PID.5><XPN.1><FN.1>DOE</FN.1></XPN.1><XPN.2>JANE</XPN.2></PID.5></PID>
//   - one element per segment, named by its id; no groups are written;
//   - one <SEG.n> element per field repetition; empty fields are left out,
//     except an empty last field, written as an empty element so that the
//     field count (trailing separators) survives;
//   - components / subcomponents are named after the data type of the field /
//     component (v2.5 tables built into xml.cpp). Where the type is unknown
//     (Z-segments, fields not in the table, OBX-5 with an unknown OBX-2, or a
//     primitive value that nevertheless holds delimiters) a child is named
//     <parent element name>.<index>: <ZDS.1.2>, <ZDS.1.2.3>, <XPN.2.1>;
//   - empty components/subcomponents are left out except the last one
//     (written empty, keeps trailing delimiters); an empty repetition is an
//     empty element;
//   - values are unescaped: \F\ \S\ \T\ \R\ \E\ become the delimiter
//     characters. Every other escape sequence (\.br\, \H\, \X0D\, \P\, \Z..\,
//     unknown ones) is kept as <escape V="code"/>, so the pipe text round-trips
//     byte for byte. Junction extensions for malformed input: <escape/> is a
//     lone escape character without a closing one; <escape B="hex"/> holds raw
//     bytes that XML cannot carry (control characters, invalid UTF-8);
//   - text is UTF-8; a message whose MSH-18 is "8859/1" is read as Latin-1
//     (and decoded back to Latin-1).
//
// Decoding accepts that, and spec documents with known or generic names: the
// index of a field/component/subcomponent is the number after the last dot of
// the element name; any element below the root whose name is not a segment id
// (3 characters, [A-Z][A-Z0-9][A-Z0-9]) is a group and is descended into. The
// decoded message ends with a segment separator (endsWithSeparator() is true).
// DTDs are never loaded, external entities never resolved, and a document with
// a DOCTYPE is rejected.
#pragma once

#include <string>
#include <string_view>

#include "engine/hl7/message.h"

namespace junction::hl7 {

// The HL7 v2.xml namespace.
inline constexpr std::string_view kV2XmlNamespace = "urn:hl7-org:v2xml";

// Encode a message as HL7 v2.xml (UTF-8, with an XML declaration). `pretty`
// indents the elements (leaf values are never padded with whitespace).
std::string toXml(const Message& msg, bool pretty = false);

// Decode an HL7 v2.xml document. Never throws: errors (not well-formed XML,
// wrong root, no MSH, unknown structure, a value that cannot be encoded...)
// come back in ParseResult::error; for XML syntax errors the message names the
// line and column and `offset` is the byte offset Xerces reported.
ParseResult fromXml(std::string_view xml);

}  // namespace junction::hl7
