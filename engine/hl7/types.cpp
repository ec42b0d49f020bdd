// HL7 data types (types.h): TS/DTM timestamps parsed, formatted and converted
// to time points, and XPN/XCN person names.
#include "engine/hl7/types.h"

#include <cstdio>
#include <ctime>

#include "engine/hl7/digits.h"
#include "engine/hl7/message.h"

namespace junction::hl7 {

namespace {

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

int daysInMonth(int year, int month) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
long long daysFromCivil(int y, int m, int d) {
    y -= m <= 2;
    const long long era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + static_cast<unsigned>(d) - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<long long>(doe) - 719468;
}

}  // namespace

int Timestamp::precisionDigits() const {
    if (month == 0) return 4;
    if (day == 0) return 6;
    if (hour < 0) return 8;
    if (minute < 0) return 10;
    if (second < 0) return 12;
    return 14;
}

std::optional<Timestamp> Timestamp::parse(std::string_view s) {
    Timestamp t;
    std::size_t n = 0;
    while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
    if (n != 4 && n != 6 && n != 8 && n != 10 && n != 12 && n != 14) return std::nullopt;
    digits(s, 0, 4, t.year);
    if (n >= 6) {
        digits(s, 4, 2, t.month);
        if (t.month < 1 || t.month > 12) return std::nullopt;
    }
    if (n >= 8) {
        digits(s, 6, 2, t.day);
        if (t.day < 1 || t.day > daysInMonth(t.year, t.month)) return std::nullopt;
    }
    if (n >= 10 && (!digits(s, 8, 2, t.hour) || t.hour > 23)) return std::nullopt;
    if (n >= 12 && (!digits(s, 10, 2, t.minute) || t.minute > 59)) return std::nullopt;
    if (n >= 14 && (!digits(s, 12, 2, t.second) || t.second > 59)) return std::nullopt;
    std::size_t pos = n;
    if (pos < s.size() && s[pos] == '.') {
        if (n != 14) return std::nullopt;
        std::size_t f = pos + 1;
        while (f < s.size() && s[f] >= '0' && s[f] <= '9') ++f;
        std::size_t count = f - pos - 1;
        if (count < 1 || count > 4) return std::nullopt;
        digits(s, pos + 1, count, t.fraction);
        t.fractionDigits = static_cast<int>(count);
        pos = f;
    }
    if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
        int hh, mm;
        if (pos + 5 != s.size() || !digits(s, pos + 1, 2, hh) || !digits(s, pos + 3, 2, mm) || hh > 14 || mm > 59)
            return std::nullopt;
        int off = hh * 60 + mm;
        t.utcOffsetMinutes = s[pos] == '-' ? -off : off;
        pos += 5;
    }
    if (pos != s.size()) return std::nullopt;
    return t;
}

Timestamp Timestamp::fromTimePoint(std::chrono::system_clock::time_point tp, bool utc) {
    std::time_t tt = std::chrono::system_clock::to_time_t(tp);
    std::tm tm{};
    if (utc) gmtime_r(&tt, &tm);
    else localtime_r(&tt, &tm);
    Timestamp t;
    t.year = tm.tm_year + 1900;
    t.month = tm.tm_mon + 1;
    t.day = tm.tm_mday;
    t.hour = tm.tm_hour;
    t.minute = tm.tm_min;
    t.second = tm.tm_sec;
    t.utcOffsetMinutes = utc ? 0 : static_cast<int>(tm.tm_gmtoff / 60);
    return t;
}

Timestamp Timestamp::now() { return fromTimePoint(std::chrono::system_clock::now()); }

std::chrono::system_clock::time_point Timestamp::toTimePoint() const {
    long long days = daysFromCivil(year, month ? month : 1, day ? day : 1);
    long long secs = days * 86400 + (hour < 0 ? 0 : hour) * 3600LL + (minute < 0 ? 0 : minute) * 60LL +
                     (second < 0 ? 0 : second);
    if (utcOffsetMinutes) secs -= *utcOffsetMinutes * 60LL;
    auto tp = std::chrono::system_clock::time_point(std::chrono::seconds(secs));
    if (fractionDigits > 0) {
        long long micros = fraction;
        for (int i = fractionDigits; i < 6; ++i) micros *= 10;
        tp += std::chrono::microseconds(micros);
    }
    return tp;
}

std::string formatTimestamp(const Timestamp& t) {
    std::string out;
    out.reserve(32);
    int p = t.precisionDigits();
    if (t.year < 0 || t.year > 9999) out += std::to_string(t.year);
    else putDigits(out, t.year, 4);
    if (p >= 6) putDigits(out, t.month, 2);
    if (p >= 8) putDigits(out, t.day, 2);
    if (p >= 10) putDigits(out, t.hour, 2);
    if (p >= 12) putDigits(out, t.minute, 2);
    if (p >= 14) putDigits(out, t.second, 2);
    if (p >= 14 && t.fractionDigits > 0) {
        out += '.';
        putDigits(out, t.fraction, t.fractionDigits);
    }
    if (t.utcOffsetMinutes) {
        int off = *t.utcOffsetMinutes;
        out += off < 0 ? '-' : '+';
        if (off < 0) off = -off;
        putDigits(out, off / 60, 2);
        putDigits(out, off % 60, 2);
    }
    return out;
}

std::string formatNow() {
    // Local time to the second; the conversion (time zone rules) runs once a second per thread.
    thread_local std::time_t cachedSecond = -1;
    thread_local std::string cached;
    auto now = std::chrono::system_clock::now();
    std::time_t second = std::chrono::system_clock::to_time_t(now);
    if (second != cachedSecond) {
        cached = formatTimestamp(Timestamp::fromTimePoint(now));
        cachedSecond = second;
    }
    return cached;
}

std::string Timestamp::toIso8601() const {
    char buf[64];
    int p = precisionDigits();
    int len = std::snprintf(buf, sizeof buf, "%04d", year);
    if (p >= 6) len += std::snprintf(buf + len, sizeof buf - len, "-%02d", month);
    if (p >= 8) len += std::snprintf(buf + len, sizeof buf - len, "-%02d", day);
    if (p >= 10) len += std::snprintf(buf + len, sizeof buf - len, "T%02d:%02d", hour, minute < 0 ? 0 : minute);
    if (p >= 14) len += std::snprintf(buf + len, sizeof buf - len, ":%02d", second);
    if (p >= 14 && fractionDigits > 0)
        len += std::snprintf(buf + len, sizeof buf - len, ".%0*d", fractionDigits, fraction);
    if (p >= 10 && utcOffsetMinutes) {
        int off = *utcOffsetMinutes;
        if (off == 0) {
            std::snprintf(buf + len, sizeof buf - len, "Z");
        } else {
            char sign = off < 0 ? '-' : '+';
            if (off < 0) off = -off;
            std::snprintf(buf + len, sizeof buf - len, "%c%02d:%02d", sign, off / 60, off % 60);
        }
    }
    return buf;
}

std::string PersonName::display() const {
    std::string out;
    for (const std::string* part : {&prefix, &given, &middle, &family, &suffix, &degree}) {
        if (part->empty()) continue;
        if (!out.empty()) out += ' ';
        out += *part;
    }
    return out;
}

namespace {
std::string sub(std::string_view path, int component, int subcomponent = 0) {
    std::string p(path);
    p += "." + std::to_string(component);
    if (subcomponent) p += "." + std::to_string(subcomponent);
    return p;
}

PersonName readName(const Message& msg, std::string_view path, int first) {
    PersonName n;
    n.family = msg.get(sub(path, first, 1));
    n.given = msg.get(sub(path, first + 1));
    n.middle = msg.get(sub(path, first + 2));
    n.suffix = msg.get(sub(path, first + 3));
    n.prefix = msg.get(sub(path, first + 4));
    n.degree = msg.get(sub(path, first + 5));
    if (first == 1) n.type = msg.get(sub(path, 7));
    return n;
}

void writeName(Message& msg, std::string_view path, int first, const PersonName& n) {
    msg.set(sub(path, first), n.family);
    msg.set(sub(path, first + 1), n.given);
    msg.set(sub(path, first + 2), n.middle);
    msg.set(sub(path, first + 3), n.suffix);
    msg.set(sub(path, first + 4), n.prefix);
    msg.set(sub(path, first + 5), n.degree);
    if (first == 1) msg.set(sub(path, 7), n.type);
}
}  // namespace

PersonName getPersonName(const Message& msg, std::string_view path) { return readName(msg, path, 1); }

void setPersonName(Message& msg, std::string_view path, const PersonName& name) {
    writeName(msg, path, 1, name);
}

PersonId getPersonId(const Message& msg, std::string_view path) {
    PersonId p;
    p.id = msg.get(sub(path, 1));
    p.name = readName(msg, path, 2);
    p.assigningAuthority = msg.get(sub(path, 9, 1));
    return p;
}

void setPersonId(Message& msg, std::string_view path, const PersonId& person) {
    msg.set(sub(path, 1), person.id);
    writeName(msg, path, 2, person.name);
    msg.set(sub(path, 9), person.assigningAuthority);
}

std::optional<Timestamp> getTimestamp(const Message& msg, std::string_view path) {
    std::string p(path);
    // A TS field holds the time in its first component; a plain DTM field has no components.
    std::string v = msg.get(p);
    if (v.find(msg.delimiters().component) != std::string::npos) v = msg.get(sub(path, 1));
    if (v.empty()) return std::nullopt;
    return Timestamp::parse(v);
}

void setTimestamp(Message& msg, std::string_view path, const Timestamp& ts) {
    msg.set(path, formatTimestamp(ts));
}

}  // namespace junction::hl7
