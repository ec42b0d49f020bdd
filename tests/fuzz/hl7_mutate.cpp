// Mutation fuzz test of the HL7 v2 library: mutated sample messages go through
// parse → serialize → parse; a message that parses must serialize to text that
// parses to the same text again, path access and edits must not fail, and an
// input that does not parse must give an error whose offset lies inside it.
// Run under AddressSanitizer/UBSan in CI. Usage: hl7_mutate DIR [--iterations N] [--seed S]
#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/hl7/ack.h"
#include "engine/hl7/batch.h"
#include "engine/hl7/message.h"
#include "engine/hl7/types.h"

using namespace junction::hl7;

namespace {

std::string readFile(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

std::string mutate(std::string s, std::mt19937& rng) {
    static const std::string interesting = "|^~\\&\r\n#\"\x0b\x1c\x00XFSTRE.br0A";
    int rounds = 1 + static_cast<int>(rng() % 4);
    for (int r = 0; r < rounds; ++r) {
        std::size_t n = s.size();
        std::size_t pos = n ? rng() % n : 0;
        switch (rng() % 9) {
            case 0: if (n) s[pos] = static_cast<char>(rng()); break;                             // random byte
            case 1: s.insert(pos, 1, interesting[rng() % interesting.size()]); break;          // delimiter
            case 2: if (n) s.erase(pos, 1 + rng() % std::min<std::size_t>(n - pos, 40)); break; // delete
            case 3: if (n) s.insert(pos, s.substr(rng() % n, rng() % 60)); break;               // duplicate
            case 4: s.resize(pos); break;                                                      // truncate
            case 5: s.insert(pos, "\\X" + std::to_string(rng() % 1000) + "\\"); break;           // escape
            case 6: if (n > 8) s[3 + rng() % 5] = interesting[rng() % interesting.size()]; break; // MSH delimiters
            case 7: s.insert(pos, rng() % 2 ? "\r\n" : "\n\r\r"); break;                         // separators
            case 8: s.insert(pos, std::string(rng() % 8, '\\')); break;
        }
    }
    return s;
}

int failures = 0;
void check(bool ok, const char* what, const std::string& input) {
    if (ok) return;
    ++failures;
    if (failures <= 5) {
        std::cerr << "FAILED: " << what << "\n  input (" << input.size() << " bytes): ";
        for (unsigned char c : input.substr(0, 300)) {
            if (c == '\r') std::cerr << "\\r";
            else if (c < 0x20 || c >= 0x7f) std::fprintf(stderr, "\\x%02x", c);
            else std::cerr << c;
        }
        std::cerr << "\n";
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: hl7_mutate DIR [--iterations N] [--seed S]\n";
        return 2;
    }
    long iterations = 5000;
    unsigned seed = 20261123;
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--iterations") iterations = std::atol(argv[i + 1]);
        else if (a == "--seed") seed = static_cast<unsigned>(std::atol(argv[i + 1]));
    }
    std::vector<std::string> samples;
    if (DIR* d = opendir(argv[1])) {
        while (auto* e = readdir(d)) {
            std::string n = e->d_name;
            if (n.size() > 4 && n.substr(n.size() - 4) == ".hl7") samples.push_back(readFile(std::string(argv[1]) + "/" + n));
        }
        closedir(d);
    }
    if (samples.empty()) {
        std::cerr << "no samples in " << argv[1] << "\n";
        return 2;
    }
    std::mt19937 rng(seed);
    long parsed = 0, rejected = 0, batches = 0;
    const char* paths[] = {"MSH-9", "MSH-10", "PID-3[2].1", "PID-5.1.1", "OBX[2]-5", "OBR-4.2", "ZDS-1.1", "PID-3"};
    for (long it = 0; it < iterations; ++it) {
        std::string input = mutate(samples[rng() % samples.size()], rng);
        if (isBatch(input)) {
            ++batches;
            Batch b = parseBatch(input);
            for (const auto& m : b.messages) {
                check(m.offset < input.size(), "batch message offset inside input", input);
                if (!m.parsed) check(m.parsed.error.offset <= input.size(), "batch error offset", input);
            }
            continue;
        }
        auto r = Message::parse(input);
        if (!r) {
            ++rejected;
            check(r.error.offset <= input.size(), "error offset inside the input", input);
            check(!r.error.message.empty(), "error has a message", input);
            Message nak = makeNak(input, AckCode::AE, r.error.describe());
            check(Message::parse(nak.serialize()).ok(), "NAK of a rejected input parses", input);
            continue;
        }
        ++parsed;
        Message& m = *r.message;
        std::string once = m.serialize();
        auto again = Message::parse(once);
        check(again.ok(), "serialized output parses again", input);
        if (!again) continue;
        check(again.message->serialize() == once, "serialize is stable", input);
        for (const char* p : paths) {
            std::string v = m.get(p);
            (void)getTimestamp(m, "MSH-7");
            (void)getPersonName(m, "PID-5");
            Message copy = m;
            try {
                copy.set(p, v + "|^~\\&\n" + std::string(1, static_cast<char>(rng())));
            } catch (const std::invalid_argument& e) {  // no escape character in MSH-2: refused clearly
                check(!m.delimiters().escape && std::string(e.what()).find("escape character") != std::string::npos,
                      "set refuses only what cannot be encoded", input);
                continue;
            }
            auto edited = Message::parse(copy.serialize());
            if (!edited) std::cerr << "edit of " << p << ": " << edited.error.describe() << "\n";
            check(edited.ok(), "edited message parses", input);
            if (edited) check(edited.message->get(p).size() >= v.size(), "edited value kept", input);
        }
        Message ack = makeAck(m, AckCode::AA);
        check(ack.get("MSA-2") == m.get("MSH-10") || m.getRaw("MSH-10").find_first_of("\r\n") != std::string::npos,
              "ACK echoes MSH-10", input);
    }
    std::cout << "hl7 mutation fuzz: " << iterations << " inputs (seed " << seed << "): " << parsed << " parsed, "
              << rejected << " rejected with an error, " << batches << " batches\n";
    std::cout << (iterations - failures) << " passed, " << failures << " failed\n";
    return failures ? 1 : 0;
}
