// junction hl7 send HOST:PORT FILE... : send messages over MLLP, print each ACK.
#include <fstream>
#include <iostream>
#include <sstream>

#include "connectors/mllp/client.h"
#include "engine/app/commands.h"
#include "engine/hl7/batch.h"
#include "engine/hl7/message.h"

namespace junction::app {

namespace {

const char* kSendUsage =
    "usage: junction hl7 send HOST:PORT FILE... [--timeout SECONDS] [--quiet]\n\n"
    "Sends each HL7 message of each FILE over MLLP (a batch file or a file with several\n"
    "messages is split at MSH), waits for each ACK and prints it. LF/CRLF separators are\n"
    "sent as CR. Exit 0 only when every message got AA or CA; 1 on AE/AR/CE/CR, timeout,\n"
    "refused connection or an unreadable file; 2 on wrong usage.\n";

std::string toCr(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;
        out += s[i] == '\n' ? '\r' : s[i];
    }
    while (!out.empty() && (out.back() == '\r' || out.back() == ' ')) out.pop_back();
    return out + "\r";
}

}  // namespace

int cmdHl7Send(const Args& args) {
    if (wantsHelp(args)) {
        std::cout << kSendUsage;
        return 0;
    }
    std::string target;
    std::vector<std::string> files;
    double timeout = 30;
    bool quiet = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        if (a == "--timeout" && i + 1 < args.size()) {
            try {
                timeout = std::stod(args[++i]);
            } catch (...) {
                timeout = -1;
            }
            if (timeout <= 0) {
                std::cerr << "junction hl7 send: --timeout needs a positive number of seconds\n";
                return 2;
            }
        } else if (a == "--quiet" || a == "-q") {
            quiet = true;
        } else if (!a.empty() && a[0] == '-') {
            std::cerr << "junction hl7 send: unknown option " << a << "\n" << kSendUsage;
            return 2;
        } else if (target.empty()) {
            target = a;
        } else {
            files.push_back(a);
        }
    }
    std::size_t colon = target.rfind(':');
    int port = 0;
    if (colon != std::string::npos) {
        try {
            port = std::stoi(target.substr(colon + 1));
        } catch (...) {
            port = 0;
        }
    }
    if (target.empty() || files.empty() || colon == std::string::npos || colon == 0 || port <= 0 || port > 65535) {
        std::cerr << kSendUsage;
        return 2;
    }
    mllp::ClientOptions opts;
    opts.host = target.substr(0, colon);
    opts.port = port;
    opts.connectTimeout = std::chrono::milliseconds(static_cast<long long>(std::min(timeout, 10.0) * 1000));
    opts.responseTimeout = std::chrono::milliseconds(static_cast<long long>(timeout * 1000));
    mllp::Client client(opts);

    int sent = 0, accepted = 0, failed = 0;
    for (const auto& file : files) {
        std::ifstream in(file, std::ios::binary);
        if (!in) {
            std::cerr << "junction hl7 send: cannot read " << file << "\n";
            ++failed;
            continue;
        }
        std::stringstream buf;
        buf << in.rdbuf();
        std::string text = buf.str();
        auto messages = hl7::splitMessages(text);
        if (messages.empty()) {
            std::cerr << "junction hl7 send: " << file << ": no HL7 message (no MSH segment)\n";
            ++failed;
            continue;
        }
        for (std::size_t k = 0; k < messages.size(); ++k) {
            std::string label = file + (messages.size() > 1 ? " #" + std::to_string(k + 1) : std::string());
            mllp::ClientResult r = client.send(toCr(messages[k]));
            ++sent;
            if (!r.ok()) {
                std::cerr << "junction hl7 send: " << r.error << " (" << label << ")\n";
                ++failed;
                if (r.status == mllp::ClientResult::Status::ConnectFailed) return 1;
                continue;
            }
            auto ack = hl7::Message::parse(r.response);
            std::string code = ack ? ack.message->get("MSA-1") : "";
            if (!quiet) {
                std::string shown = r.response;
                for (char& c : shown)
                    if (c == '\r') c = '\n';
                std::cout << "# " << label << ": " << (code.empty() ? "no MSA-1" : code) << "\n" << shown;
                if (!shown.empty() && shown.back() != '\n') std::cout << "\n";
            }
            if (code == "AA" || code == "CA") {
                ++accepted;
            } else {
                ++failed;
                std::string why = !ack ? "response is not HL7 (" + ack.error.describe() + ")"
                                       : code + (ack.message->get("MSA-3").empty() ? "" : ": " + ack.message->get("MSA-3"));
                std::cerr << "junction hl7 send: " << label << ": " << why << "\n";
            }
        }
    }
    if (!quiet) std::cout << sent << " sent, " << accepted << " accepted, " << failed << " failed\n";
    return failed == 0 ? 0 : 1;
}

}  // namespace junction::app
