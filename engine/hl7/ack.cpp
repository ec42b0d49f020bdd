// HL7 acknowledgements (ack.h): ACKs and NAKs built from the original
// message's header (original and enhanced mode), with escaped texts and
// ERR segments.
#include "engine/hl7/ack.h"

#include "engine/hl7/types.h"

namespace junction::hl7 {

std::string_view toString(AckCode code) {
    switch (code) {
        case AckCode::AA: return "AA";
        case AckCode::AE: return "AE";
        case AckCode::AR: return "AR";
        case AckCode::CA: return "CA";
        case AckCode::CE: return "CE";
        case AckCode::CR: return "CR";
    }
    return "AE";
}

std::optional<AckCode> parseAckCode(std::string_view t) {
    for (AckCode c : {AckCode::AA, AckCode::AE, AckCode::AR, AckCode::CA, AckCode::CE, AckCode::CR})
        if (toString(c) == t) return c;
    return std::nullopt;
}

bool isPositive(AckCode code) { return code == AckCode::AA || code == AckCode::CA; }

namespace {

struct Header {
    Delimiters delims;
    std::string sendingApp, sendingFacility, receivingApp, receivingFacility;  // raw
    std::string trigger, controlId, processingId, version;                       // raw
};

const std::string kDefaultVersion = "2.5.1";

bool versionAtLeast25(std::string_view v) {
    // "2.5", "2.5.1", "2.6" ... ; anything unparsable counts as modern.
    if (v.size() < 3 || v[0] != '2' || v[1] != '.') return true;
    int minor = 0;
    for (std::size_t i = 2; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i) minor = minor * 10 + (v[i] - '0');
    return minor >= 5;
}

// Escape for the ACK; with no escape character, unencodable characters become spaces.
std::string escapeText(std::string_view value, const Delimiters& d) {
    if (d.escape) return escapeValue(value, d);
    std::string out(value);
    for (char& c : out)
        if (d.isDelimiter(c) || static_cast<unsigned char>(c) < 0x20 || (d.truncation && c == d.truncation)) c = ' ';
    return out;
}

std::string buildText(const Header& h, AckCode code, std::string_view text, const AckError* error,
                      const AckOptions& options) {
    const Delimiters& d = h.delims;
    const char f = d.field;
    std::string fs(1, f);
    const std::string& version = h.version.empty() ? kDefaultVersion : h.version;

    // MSH|enc|receiving app|receiving facility|sending app|sending facility|now||ACK^trigger^ACK|id|P|version
    std::string out;
    out.reserve(160 + h.sendingApp.size() + h.sendingFacility.size() + h.receivingApp.size() +
                h.receivingFacility.size() + h.controlId.size() + text.size());
    out += "MSH";
    out += f;
    out += d.encodingCharacters();
    out += f;
    out += options.sendingApplication.empty() ? h.receivingApp : escapeText(options.sendingApplication, d);
    out += f;
    out += options.sendingFacility.empty() ? h.receivingFacility : escapeText(options.sendingFacility, d);
    out += f;
    out += h.sendingApp;
    out += f;
    out += h.sendingFacility;
    out += f;
    out += formatNow();
    out += f;
    out += f;
    out += "ACK";
    if (!h.trigger.empty()) {
        out += d.component;
        out += h.trigger;
        out += d.component;
        out += "ACK";
    }
    out += f;
    out += options.controlId.empty() ? newControlId() : escapeText(options.controlId, d);
    out += f;
    out += h.processingId.empty() ? std::string("P") : h.processingId;
    out += f;
    out += version;
    out += "\rMSA";
    out += f;
    out += toString(code);
    out += f;
    out += h.controlId;
    if (!text.empty()) {
        out += f;
        out += escapeText(text, d);
    }
    out += '\r';
    if (error) {
        auto num = [](int n) { return n > 0 ? std::to_string(n) : std::string(); };
        std::string errText = escapeText(error->text, d);
        std::string cs(1, d.component);
        std::string codeName;
        switch (error->code) {
            case 100: codeName = "Segment sequence error"; break;
            case 101: codeName = "Required field missing"; break;
            case 102: codeName = "Data type error"; break;
            case 103: codeName = "Table value not found"; break;
            case 200: codeName = "Unsupported message type"; break;
            case 201: codeName = "Unsupported event code"; break;
            case 202: codeName = "Unsupported processing id"; break;
            case 203: codeName = "Unsupported version id"; break;
            default: codeName = "Application internal error"; break;
        }
        std::string location = error->segment.empty()
                                   ? std::string()
                                   : error->segment + cs + num(error->sequence) + cs + num(error->field) + cs +
                                         num(error->component);
        while (!location.empty() && location.back() == d.component) location.pop_back();
        std::string codeCwe = std::to_string(error->code) + cs + escapeText(codeName, d) + cs + "HL70357";
        if (versionAtLeast25(version)) {
            // ERR-1 (not used from 2.5) | ERR-2 location | ERR-3 code | ERR-4 severity | ... ERR-8 user message
            out += "ERR" + fs + fs + location + fs + codeCwe + fs + std::string(1, error->severity) + fs + fs + fs +
                   fs + errText + "\r";
        } else {
            // ERR-1 ELD: segment^sequence^field^code (CE)
            std::string eld = error->segment + cs + num(error->sequence) + cs + num(error->field) + cs +
                              std::to_string(error->code) + std::string(1, d.subcomponent ? d.subcomponent : '&') +
                              escapeText(errText.empty() ? codeName : error->text, d) +
                              std::string(1, d.subcomponent ? d.subcomponent : '&') + "HL70357";
            out += "ERR" + fs + eld + "\r";
        }
    }
    return out;
}

Message build(const Header& h, AckCode code, std::string_view text, const AckError* error,
              const AckOptions& options) {
    return Message::parseOrThrow(buildText(h, code, text, error, options));
}

}  // namespace

namespace {
// The header paths an ACK reads, parsed once.
struct HeaderPaths {
    Path sendingApp = *Path::parse("MSH-3"), sendingFacility = *Path::parse("MSH-4");
    Path receivingApp = *Path::parse("MSH-5"), receivingFacility = *Path::parse("MSH-6");
    Path trigger = *Path::parse("MSH-9.2"), controlId = *Path::parse("MSH-10");
    Path processingId = *Path::parse("MSH-11"), version = *Path::parse("MSH-12");
};

Header headerOf(const Message& original) {
    static const HeaderPaths p;
    Header h;
    h.delims = original.delimiters();
    h.sendingApp = original.getRaw(p.sendingApp);
    h.sendingFacility = original.getRaw(p.sendingFacility);
    h.receivingApp = original.getRaw(p.receivingApp);
    h.receivingFacility = original.getRaw(p.receivingFacility);
    h.trigger = original.getRaw(p.trigger);
    h.controlId = original.getRaw(p.controlId);
    h.processingId = original.getRaw(p.processingId);
    h.version = original.getRaw(p.version);
    return h;
}
}  // namespace

Message makeAck(const Message& original, AckCode code, std::string_view text, const AckError* error,
                const AckOptions& options) {
    return build(headerOf(original), code, text, error, options);
}

std::string makeAckText(const Message& original, AckCode code, std::string_view text, const AckError* error,
                        const AckOptions& options) {
    return buildText(headerOf(original), code, text, error, options);
}

Message makeNak(std::string_view raw, AckCode code, std::string_view text, const AckError* error,
                const AckOptions& options) {
    Header h;
    // Salvage the header line: MSH + field separator + fields up to the first segment separator.
    std::size_t start = raw.find("MSH");
    if (start != std::string_view::npos && start + 8 <= raw.size()) {
        std::string_view line = raw.substr(start);
        std::size_t eol = line.find_first_of("\r\n");
        if (eol != std::string_view::npos) line = line.substr(0, eol);
        char fs = line.size() > 3 ? line[3] : '|';
        bool sane = fs > 0x20 && fs < 0x7f && !(fs >= '0' && fs <= '9') && !(fs >= 'A' && fs <= 'Z') &&
                    !(fs >= 'a' && fs <= 'z');
        if (sane) {
            std::vector<std::string_view> f;  // f[k] = MSH-(k+1) for k >= 1
            f.push_back(line.substr(0, 3));
            std::size_t pos = 4;
            f.push_back(line.substr(3, 1));
            while (pos <= line.size()) {
                std::size_t next = line.find(fs, pos);
                if (next == std::string_view::npos) next = line.size();
                f.push_back(line.substr(pos, next - pos));
                pos = next + 1;
            }
            auto field = [&](std::size_t n) { return n < f.size() ? std::string(f[n]) : std::string(); };
            std::string enc = field(2);
            bool encOk = !enc.empty() && enc.size() <= 5;
            for (std::size_t i = 0; encOk && i < enc.size(); ++i) {
                char c = enc[i];
                encOk = c > 0x20 && c < 0x7f && c != fs && enc.find(c) == i &&
                        !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'));
            }
            if (encOk) {
                h.delims.field = fs;
                h.delims.component = enc[0];
                h.delims.repetition = enc.size() > 1 ? enc[1] : 0;
                h.delims.escape = enc.size() > 2 ? enc[2] : 0;
                h.delims.subcomponent = enc.size() > 3 ? enc[3] : 0;
                h.delims.truncation = enc.size() > 4 ? enc[4] : 0;
                auto clean = [&](std::string v) {  // keep only printable bytes
                    std::string out;
                    for (char c : v)
                        if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out += c;
                    return out.substr(0, 200);
                };
                h.sendingApp = clean(field(3));
                h.sendingFacility = clean(field(4));
                h.receivingApp = clean(field(5));
                h.receivingFacility = clean(field(6));
                std::string type = clean(field(9));
                std::size_t c1 = type.find(h.delims.component);
                if (c1 != std::string::npos) {
                    std::size_t c2 = type.find(h.delims.component, c1 + 1);
                    h.trigger = type.substr(c1 + 1, c2 == std::string::npos ? std::string::npos : c2 - c1 - 1);
                }
                h.controlId = clean(field(10));
                h.processingId = clean(field(11));
                h.version = clean(field(12));
            }
        }
    }
    return build(h, code, text, error, options);
}

}  // namespace junction::hl7
