// A message's log and delivery attempts (message_log.h): their bounds and the
// line format they are stored in.
//
// Line format (text, so that SQLite can append with ||):
//   log:     <ms since epoch> TAB <i|w|e> TAB <stage> TAB <text> LF
//   attempt: <ms since epoch> TAB <S|E|Q> TAB <error> LF
// with backslash, TAB, CR and LF in fields written as \\, \t, \r and \n.
#include "engine/store/message_log.h"

#include <map>

#include "engine/store/message_store.h"

namespace junction::store {

namespace {

using Ms = std::chrono::milliseconds;

void putEscaped(std::string& out, std::string_view s) {
    for (char c : s) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '\t': out += "\\t"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            default: out.push_back(c);
        }
    }
}

std::string unescape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\' || i + 1 == s.size()) {
            out.push_back(s[i]);
            continue;
        }
        char c = s[++i];
        out.push_back(c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : c);
    }
    return out;
}

void putTime(std::string& out, std::chrono::system_clock::time_point t) {
    out += std::to_string(std::chrono::duration_cast<Ms>(t.time_since_epoch()).count());
    out.push_back('\t');
}

std::chrono::system_clock::time_point timeOf(std::string_view s) {
    long long ms = 0;
    for (char c : s)
        if (c >= '0' && c <= '9') ms = ms * 10 + (c - '0');
    return std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(Ms(ms)));
}

// The fields of each line of `data` (tab-separated, at most `n`: the last takes the rest).
template <class F>
void eachLine(std::string_view data, std::size_t n, F&& f) {
    while (!data.empty()) {
        std::size_t end = data.find('\n');
        std::string_view line = data.substr(0, end);
        data = end == std::string_view::npos ? std::string_view() : data.substr(end + 1);
        std::vector<std::string_view> fields;
        while (fields.size() + 1 < n) {
            std::size_t tab = line.find('\t');
            if (tab == std::string_view::npos) break;
            fields.push_back(line.substr(0, tab));
            line.remove_prefix(tab + 1);
        }
        fields.push_back(line);
        if (fields.size() == n) f(fields);
    }
}

// A line cut to the bound (on a UTF-8 character boundary), marked as cut.
std::string_view cut(std::string_view text, bool* wasCut) {
    *wasCut = text.size() > kLogLineBytes;
    if (!*wasCut) return text;
    std::size_t n = kLogLineBytes;
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
    return text.substr(0, n);
}

}  // namespace

const char* toString(LogLevel level) {
    switch (level) {
        case LogLevel::Info: return "info";
        case LogLevel::Warn: return "warn";
        case LogLevel::Error: return "error";
    }
    return "info";
}

std::string encodeLog(const std::vector<LogEntry>& entries) {
    std::string out;
    std::map<std::string_view, std::size_t> perStage;
    for (const auto& e : entries) {
        std::size_t n = ++perStage[e.stage];
        if (n > kLogLinesPerStage) continue;
        putTime(out, e.time);
        out.push_back(e.level == LogLevel::Error ? 'e' : e.level == LogLevel::Warn ? 'w' : 'i');
        out.push_back('\t');
        putEscaped(out, e.stage);
        out.push_back('\t');
        bool wasCut = false;
        putEscaped(out, cut(e.text, &wasCut));
        if (wasCut) out += " [cut: " + std::to_string(e.text.size()) + " bytes in all]";
        out.push_back('\n');
    }
    for (const auto& [stage, n] : perStage) {
        if (n <= kLogLinesPerStage) continue;
        auto last = entries.back().time;
        putTime(out, last);
        out += "w\t";
        putEscaped(out, stage);
        out += "\t[cut: " + std::to_string(n - kLogLinesPerStage) + " more line(s) of this stage not kept]\n";
    }
    return out;
}

std::vector<LogEntry> decodeLog(std::string_view data) {
    std::vector<LogEntry> out;
    eachLine(data, 4, [&](const std::vector<std::string_view>& f) {
        LogEntry e;
        e.time = timeOf(f[0]);
        e.level = f[1] == "e" ? LogLevel::Error : f[1] == "w" ? LogLevel::Warn : LogLevel::Info;
        e.stage = unescape(f[2]);
        e.text = unescape(f[3]);
        out.push_back(std::move(e));
    });
    return out;
}

std::string encodeAttempt(const DeliveryAttempt& a) {
    std::string out;
    putTime(out, a.time);
    out.push_back(a.status == Status::Sent ? 'S' : a.status == Status::Queued ? 'Q' : 'E');
    out.push_back('\t');
    bool wasCut = false;
    putEscaped(out, cut(a.error, &wasCut));
    if (wasCut) out += " [cut]";
    out.push_back('\n');
    return out;
}

std::vector<DeliveryAttempt> decodeAttempts(std::string_view data) {
    std::vector<DeliveryAttempt> out;
    eachLine(data, 3, [&](const std::vector<std::string_view>& f) {
        DeliveryAttempt a{timeOf(f[0]), f[1] == "S" ? Status::Sent : f[1] == "Q" ? Status::Queued : Status::Error,
                          unescape(f[2])};
        out.push_back(std::move(a));
    });
    return out;
}

}  // namespace junction::store
