// Typed helpers for common HL7 v2 data types: TS/DTM timestamps and
// XPN/XCN person names.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace junction::hl7 {

class Message;

// TS/DTM: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]
struct Timestamp {
    int year = 0, month = 0, day = 0;  // month/day 0 when not given
    int hour = -1, minute = -1, second = -1;  // -1 when not given
    int fraction = 0;        // fractional seconds as an integer of `fractionDigits` digits
    int fractionDigits = 0;
    std::optional<int> utcOffsetMinutes;  // e.g. +0100 -> 60

    // Number of leading digits given (4 = year, 8 = date, 14 = seconds ...).
    int precisionDigits() const;
    // Parse; nullopt on malformed input (wrong digit count, month 13, ...).
    static std::optional<Timestamp> parse(std::string_view text);
    // Now in local time with its UTC offset, to the second.
    static Timestamp now();
    static Timestamp fromTimePoint(std::chrono::system_clock::time_point tp, bool utc = false);
    // Time point of this timestamp (UTC offset applied when known, else taken as UTC).
    std::chrono::system_clock::time_point toTimePoint() const;
    // ISO 8601 (e.g. "2026-11-23T08:15:00+01:00"), to the precision given.
    std::string toIso8601() const;
};

// Format at the precision the timestamp carries.
std::string formatTimestamp(const Timestamp& ts);
// formatTimestamp(Timestamp::now()), cheaply: MSH-7 of every ACK.
std::string formatNow();

// XPN (extended person name): family^given^middle^suffix^prefix^degree^type
struct PersonName {
    std::string family;  // XPN.1.1 (FN surname)
    std::string given;   // XPN.2
    std::string middle;  // XPN.3 (second and further given names)
    std::string suffix;  // XPN.4
    std::string prefix;  // XPN.5
    std::string degree;  // XPN.6
    std::string type;    // XPN.7 name type code (L legal, D display, ...)

    // "DOE^JANE^Q" style encoding with the given message's delimiters.
    std::string display() const;  // "JANE Q DOE"
};

// XCN (extended composite id and name for persons):
// id^family^given^middle^suffix^prefix^degree^source table^assigning authority
struct PersonId {
    std::string id;
    PersonName name;
    std::string assigningAuthority;  // XCN.9.1
};

// Read an XPN at `path` (a field, or a repetition "PID-5[2]").
PersonName getPersonName(const Message& msg, std::string_view path);
void setPersonName(Message& msg, std::string_view path, const PersonName& name);
PersonId getPersonId(const Message& msg, std::string_view path);
void setPersonId(Message& msg, std::string_view path, const PersonId& person);
std::optional<Timestamp> getTimestamp(const Message& msg, std::string_view path);
void setTimestamp(Message& msg, std::string_view path, const Timestamp& ts);

}  // namespace junction::hl7
