// junction hl7 parse FILE [--json]: a message as a tree of HL7 positions.
#include <fstream>
#include <map>
#include <iostream>
#include <sstream>

#include "engine/app/commands.h"
#include "engine/hl7/batch.h"
#include "engine/hl7/message.h"
#include "engine/util/json_text.h"

namespace junction::app {

namespace {

using hl7::Message;

using util::jsonString;

// A raw leaf: explicit null → JSON null, else the unescaped string.
std::string jsonLeaf(const Message& m, const std::string& raw) {
    return raw == "\"\"" ? "null" : jsonString(m.unescape(raw));
}

template <class T, class F>
std::string jsonIndexed(const std::vector<T>& items, F&& render) {
    // An object keyed by 1-based position, empty items left out.
    std::string out = "{";
    bool first = true;
    for (std::size_t i = 0; i < items.size(); ++i) {
        std::string v = render(items[i]);
        if (v.empty()) continue;
        out += (first ? "" : ",") + jsonString(std::to_string(i + 1)) + ":" + v;
        first = false;
    }
    return out + "}";
}

std::string jsonRepetition(const Message& m, const hl7::Components& comps) {
    if (comps.size() == 1 && comps[0].size() == 1) return comps[0][0].empty() ? "" : jsonLeaf(m, comps[0][0]);
    return jsonIndexed(comps, [&](const std::vector<std::string>& subs) -> std::string {
        if (subs.size() == 1) return subs[0].empty() ? "" : jsonLeaf(m, subs[0]);
        return jsonIndexed(subs, [&](const std::string& s) { return s.empty() ? std::string() : jsonLeaf(m, s); });
    });
}

std::string toJson(const Message& m) {
    std::string out = "{\"type\":" + jsonString(m.messageType()) + ",\"controlId\":" + jsonString(m.controlId()) +
                      ",\"version\":" + jsonString(m.version()) + ",\"segments\":[";
    for (std::size_t s = 0; s < m.segmentCount(); ++s) {
        out += (s ? "," : "") + std::string("{\"id\":") + jsonString(m.segmentName(s)) + ",\"fields\":{";
        bool first = true;
        for (std::size_t f = 1; f <= m.fieldCount(s); ++f) {
            if (m.rawField(s, f).empty()) continue;
            std::string v;
            if (m.segmentName(s) == "MSH" && f <= 2) {
                v = jsonString(m.rawField(s, f));
            } else {
                auto tree = m.fieldTree(s, f);
                if (tree.size() == 1) {
                    v = jsonRepetition(m, tree[0]);
                } else {
                    v = "[";
                    for (std::size_t r = 0; r < tree.size(); ++r) {
                        std::string rep = jsonRepetition(m, tree[r]);
                        v += (r ? "," : "") + (rep.empty() ? std::string("\"\"") : rep);
                    }
                    v += "]";
                }
            }
            out += (first ? "" : ",") + jsonString(std::to_string(f)) + ":" + v;
            first = false;
        }
        out += "}}";
    }
    return out + "]}";
}

void printTree(const Message& m, std::ostream& out) {
    std::map<std::string, int> seen;
    for (std::size_t s = 0; s < m.segmentCount(); ++s) {
        std::string id(m.segmentName(s));
        int occ = ++seen[id];
        std::string name = id + (occ > 1 ? "[" + std::to_string(occ) + "]" : "");
        out << name << "\n";
        for (std::size_t f = 1; f <= m.fieldCount(s); ++f) {
            std::string_view raw = m.rawField(s, f);
            if (raw.empty()) continue;
            std::string fpos = name + "-" + std::to_string(f);
            if (id == "MSH" && f <= 2) {
                out << "  " << fpos << "  " << raw << "\n";
                continue;
            }
            auto tree = m.fieldTree(s, f);
            for (std::size_t r = 0; r < tree.size(); ++r) {
                std::string rpos = fpos + (tree.size() > 1 ? "[" + std::to_string(r + 1) + "]" : "");
                const auto& comps = tree[r];
                bool leaf = comps.size() == 1 && comps[0].size() == 1;
                std::string repRaw;
                for (std::size_t c = 0; c < comps.size(); ++c) {
                    if (c) repRaw += m.delimiters().component;
                    for (std::size_t k = 0; k < comps[c].size(); ++k) {
                        if (k) repRaw += m.delimiters().subcomponent;
                        repRaw += comps[c][k];
                    }
                }
                if (repRaw.empty()) continue;
                out << "  " << rpos << "  " << (leaf ? m.unescape(repRaw) : repRaw) << "\n";
                if (leaf) continue;
                for (std::size_t c = 0; c < comps.size(); ++c) {
                    std::string cpos = rpos + "." + std::to_string(c + 1);
                    const auto& subs = comps[c];
                    if (subs.size() == 1) {
                        if (!subs[0].empty()) out << "    " << cpos << "  " << m.unescape(subs[0]) << "\n";
                        continue;
                    }
                    for (std::size_t k = 0; k < subs.size(); ++k)
                        if (!subs[k].empty())
                            out << "    " << cpos << "." << (k + 1) << "  " << m.unescape(subs[k]) << "\n";
                }
            }
        }
    }
}

}  // namespace

int cmdHl7Parse(const Args& args) {
    if (wantsHelp(args)) {
        std::cout << "usage: junction hl7 parse FILE [--json]\n\n"
                     "Parses an HL7 v2 message (or a batch file) and prints it as an indented tree of\n"
                     "positions (PID-5.1 ...), values unescaped, or as JSON with --json. Exit 1 with the\n"
                     "byte offset of the problem when the input is not valid HL7.\n";
        return 0;
    }
    bool json = false;
    std::string file;
    for (const auto& a : args) {
        if (a == "--json") json = true;
        else if (file.empty() && (a.empty() || a[0] != '-' || a == "-")) file = a;
        else {
            std::cerr << "junction hl7 parse: unexpected argument '" << a << "'\n";
            return 2;
        }
    }
    if (file.empty()) {
        std::cerr << "usage: junction hl7 parse FILE [--json]\n";
        return 2;
    }
    std::stringstream buf;
    if (file == "-") {
        buf << std::cin.rdbuf();
    } else {
        std::ifstream in(file, std::ios::binary);
        if (!in) {
            std::cerr << "junction hl7 parse: cannot read " << file << "\n";
            return 1;
        }
        buf << in.rdbuf();
    }
    std::string text = buf.str();
    std::vector<hl7::ParseResult> results;
    if (hl7::isBatch(text)) {
        auto batch = hl7::parseBatch(text);
        for (const auto& w : batch.warnings) std::cerr << file << ": warning: " << w << "\n";
        for (auto& m : batch.messages) results.push_back(std::move(m.parsed));
        if (results.empty()) {
            std::cerr << file << ": batch holds no message\n";
            return 1;
        }
    } else {
        results.push_back(Message::parse(text));
    }
    int rc = 0;
    if (json && results.size() > 1) std::cout << "[";
    for (std::size_t i = 0; i < results.size(); ++i) {
        const auto& r = results[i];
        if (!r) {
            std::cerr << file << ": " << r.error.describe() << "\n";
            rc = 1;
            continue;
        }
        if (json) {
            std::cout << (i ? "," : "") << toJson(*r.message);
        } else {
            if (results.size() > 1) std::cout << "# message " << (i + 1) << "\n";
            printTree(*r.message, std::cout);
        }
    }
    if (json) std::cout << (results.size() > 1 ? "]" : "") << "\n";
    return rc;
}

}  // namespace junction::app
