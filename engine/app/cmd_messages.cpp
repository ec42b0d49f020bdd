// junction messages: search the message store (read beside the running
// engine), and reprocess or resend a message through the running engine's
// admin API.
#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <ctime>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>

#include "engine/app/api_client.h"
#include "engine/app/commands.h"
#include "engine/config/engine_config.h"
#include "engine/config/node.h"
#include "engine/store/message_store.h"
#include "engine/util/file_text.h"
#include "engine/util/json_text.h"

namespace junction::app {

namespace {
const char* kMessagesUsage =
    "usage: junction messages [--config FILE] [--channel NAME] [--status STATUS] [--control-id ID]\n"
    "                         [--patient ID] [--accession ACC] [--destination NAME]\n"
    "                         [--destination-status STATUS] [--text STR] [--limit N] [--before ID]\n"
    "                         [--counts] [--show ID]\n"
    "       junction messages --reprocess ID [--raw-file FILE]\n"
    "       junction messages --resend ID --destination NAME\n"
    "options of the last two: [--config FILE] [--url URL] [--user NAME] [--ca FILE] [--insecure]\n\n"
    "Lists stored messages, newest first, at most --limit (default 100); --before ID shows the ones\n"
    "older than ID (the next page). STATUS: RECEIVED FILTERED TRANSFORMED QUEUED SENT ERROR.\n"
    "--destination NAME, --destination-status QUEUED|SENT|ERROR|FILTERED: messages with a delivery\n"
    "(to NAME) in that state.\n"
    "--text STR: messages whose raw content holds STR (any case, taken literally).\n"
    "--counts prints the number of messages per status of --channel (required with it).\n"
    "--show ID prints one message with its contents and deliveries.\n"
    "--reprocess ID hands the message (or the content of --raw-file, edited) to its channel again as a\n"
    "new message; --resend ID sends its delivery to one destination again. Both ask the running engine\n"
    "(its admin API, credentials as for `junction channel`).\n";

std::string when(store::Clock::time_point t) {
    std::time_t tt = store::Clock::to_time_t(t);
    std::tm tm{};
    localtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

// 20001 → "20,001"
std::string grouped(std::uint64_t n) {
    std::string digits = std::to_string(n), out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

// A positive number (a message id, a limit); nullopt for anything else.
std::optional<long long> positive(const std::string& text) {
    try {
        std::size_t used = 0;
        long long v = std::stoll(text, &used);
        if (used == text.size() && v > 0) return v;
    } catch (const std::exception&) {
    }
    return std::nullopt;
}

// The channels the configuration's folder declares (`channel: NAME`).
bool declaredChannel(const config::EngineConfig& cfg, const std::string& name) {
    namespace fs = std::filesystem;
    std::error_code ec;
    for (fs::directory_iterator it(cfg.channelsDir, ec), end; !ec && it != end; it.increment(ec)) {
        auto ext = it->path().extension();
        if (ext != ".yaml" && ext != ".yml") continue;
        try {
            config::Node root = config::loadYamlFile(it->path().string());
            const config::Node* n = root.isMap() ? root.find("channel") : nullptr;
            if (n && n->kind == config::Node::Kind::Scalar && n->scalar == name) return true;
        } catch (const std::exception&) {
        }
    }
    return false;
}

struct Column {
    std::string title;
    std::size_t width;
};

void printRow(const std::vector<Column>& columns, const std::vector<std::string>& cells) {
    std::ostringstream line;
    for (std::size_t i = 0; i < cells.size(); ++i) {
        if (i + 1 == cells.size()) line << cells[i];
        else line << std::left << std::setw(static_cast<int>(columns[i].width)) << cells[i] << "  ";
    }
    std::string s = line.str();
    s.erase(s.find_last_not_of(' ') + 1);
    std::cout << s << "\n";
}

void printList(const std::vector<store::MessageSummary>& found) {
    std::vector<Column> columns = {{"ID", 2},      {"RECEIVED", 19}, {"CHANNEL", 7}, {"STATUS", 6},
                                   {"TYPE", 4},    {"CONTROL ID", 10}, {"PATIENT", 7}, {"ACCESSION", 9},
                                   {"ERROR", 5}};
    std::vector<std::vector<std::string>> rows;
    for (const auto& m : found) {
        std::string error = m.error;
        for (char& c : error)
            if (c == '\r' || c == '\n') c = ' ';
        rows.push_back({std::to_string(m.id), when(m.receivedAt), m.channel, store::toString(m.status),
                        m.meta.messageType, m.meta.controlId, m.meta.patientId, m.meta.accession, error});
    }
    for (const auto& row : rows)
        for (std::size_t i = 0; i < row.size(); ++i) columns[i].width = std::max(columns[i].width, row[i].size());
    std::vector<std::string> titles;
    for (const auto& c : columns) titles.push_back(c.title);
    printRow(columns, titles);
    for (const auto& row : rows) printRow(columns, row);
}

std::string field(const Poco::JSON::Object::Ptr& o, const std::string& key) {
    return o->has(key) && !o->isNull(key) ? o->get(key).convert<std::string>() : std::string();
}

// --reprocess / --resend: through the running engine's API.
int repair(Args args, long long reprocess, long long resend, const std::string& rawFile, const std::string& destination) {
    ApiOptions o;
    if (!takeApiOptions(args, o, "messages")) return 2;
    ApiClient api(o);
    if (reprocess) {
        std::string body = "{}";
        if (!rawFile.empty()) body = "{\"raw\":" + util::jsonString(util::readFileText(rawFile)) + "}";
        auto r = Poco::JSON::Parser()
                     .parse(api.call("POST", "/api/v1/messages/" + std::to_string(reprocess) + "/reprocess", body).body)
                     .extract<Poco::JSON::Object::Ptr>();
        std::cout << "message " << reprocess << " reprocessed as message " << field(r, "id") << "\n";
        return 0;
    }
    std::string body = "{\"destination\":" + util::jsonString(destination) + "}";
    api.call("POST", "/api/v1/messages/" + std::to_string(resend) + "/resend", body);
    std::cout << "message " << resend << ": delivery to " << destination << " queued again\n";
    return 0;
}

}  // namespace

int cmdMessages(const Args& args) {
    if (wantsHelp(args)) {
        std::cout << kMessagesUsage;
        return 0;
    }
    std::optional<std::string> configFile;
    store::SearchQuery q;
    bool counts = false;
    long long show = 0, reprocess = 0, resend = 0;
    int limit = 100;
    std::string rawFile, destination;
    Args apiArgs;  // what --reprocess and --resend pass on to the API client
    auto number = [&](const std::string& option, const std::string& text, long long& out) {
        auto v = positive(text);
        if (!v) {
            std::cerr << "junction messages: " << option << " takes a positive number, not '" << text << "'\n";
            return false;
        }
        out = *v;
        return true;
    };
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        bool hasValue = i + 1 < args.size();
        long long n = 0;
        if (a == "--counts") counts = true;
        else if (a == "--insecure") apiArgs.push_back(a);
        else if ((a == "--url" || a == "--user" || a == "--ca") && hasValue) {
            apiArgs.push_back(a);
            apiArgs.push_back(args[++i]);
        } else if (a == "--config" && hasValue) {
            configFile = args[++i];
            apiArgs.push_back(a);
            apiArgs.push_back(*configFile);
        } else if (a == "--channel" && hasValue) q.channel = args[++i];
        else if (a == "--status" && hasValue) {
            auto s = store::parseStatus(args[++i]);
            if (!s) {
                std::cerr << "junction messages: unknown status " << args[i] << "\n";
                return 2;
            }
            q.status = s;
        } else if (a == "--destination-status" && hasValue) {
            auto s = store::parseStatus(args[++i]);
            if (!s || *s == store::Status::Received || *s == store::Status::Transformed) {
                std::cerr << "junction messages: unknown destination status " << args[i]
                          << " (QUEUED, SENT, ERROR or FILTERED)\n";
                return 2;
            }
            q.destinationStatus = s;
        } else if (a == "--control-id" && hasValue) q.controlId = args[++i];
        else if (a == "--patient" && hasValue) q.patientId = args[++i];
        else if (a == "--accession" && hasValue) q.accession = args[++i];
        else if (a == "--text" && hasValue) q.text = args[++i];
        else if (a == "--limit" && hasValue) {
            if (!number(a, args[++i], n)) return 2;
            limit = static_cast<int>(std::min<long long>(n, 1000000));
        } else if (a == "--before" && hasValue) {
            if (!number(a, args[++i], n)) return 2;
            q.beforeId = n;
        } else if (a == "--show" && hasValue) {
            if (!number(a, args[++i], show)) return 2;
        } else if (a == "--reprocess" && hasValue) {
            if (!number(a, args[++i], reprocess)) return 2;
        } else if (a == "--resend" && hasValue) {
            if (!number(a, args[++i], resend)) return 2;
        } else if (a == "--raw-file" && hasValue) rawFile = args[++i];
        else if (a == "--destination" && hasValue) destination = args[++i];
        else {
            std::cerr << "junction messages: unexpected argument " << a << "\n" << kMessagesUsage;
            return 2;
        }
    }
    if (reprocess && resend) {
        std::cerr << "junction messages: --reprocess and --resend are separate commands\n";
        return 2;
    }
    if (resend && destination.empty()) {
        std::cerr << "junction messages: --resend needs --destination NAME\n";
        return 2;
    }
    if (!rawFile.empty() && !reprocess) {
        std::cerr << "junction messages: --raw-file goes with --reprocess\n";
        return 2;
    }
    if (reprocess || resend) return repair(apiArgs, reprocess, resend, rawFile, destination);
    q.destination = destination;

    config::EngineConfig cfg;
    try {
        cfg = config::loadEngineConfig(configFile);
    } catch (const config::ConfigError& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
    // Beside a running engine: read-only, leaving its lock and intake journal alone.
    store::StoreOptions so;
    so.readOnly = true;
    std::unique_ptr<store::MessageStore> st;
    try {
        st = store::openSqliteStore(cfg.store.path, so);
    } catch (const std::exception& e) {
        std::cerr << "junction messages: " << e.what() << "\n";
        return 1;
    }
    // A channel neither declared in the channel folder nor found in the store is a typo.
    if (!q.channel.empty() && st->countByStatus(q.channel).empty() && !declaredChannel(cfg, q.channel)) {
        std::cerr << "junction messages: no channel '" << q.channel << "' (not in " << cfg.channelsDir
                  << ", no message of it stored)\n";
        return 2;
    }
    if (counts) {
        if (q.channel.empty()) {
            std::cerr << "junction messages: --counts needs --channel\n";
            return 2;
        }
        for (auto& [status, n] : st->countByStatus(q.channel)) std::cout << store::toString(status) << " " << n << "\n";
        return 0;
    }
    if (show) {
        auto d = st->get(show);
        if (!d) {
            std::cerr << "junction messages: no message " << show << "\n";
            return 1;
        }
        auto shown = [](std::string s) {
            for (char& c : s)
                if (c == '\r') c = '\n';
            return s;
        };
        std::cout << "id " << d->summary.id << " channel " << d->summary.channel << " "
                  << store::toString(d->summary.status) << " received " << when(d->summary.receivedAt) << "\n";
        std::cout << "source: " << d->summary.source << "\n";
        if (d->original) std::cout << "reprocesses message " << *d->original << "\n";
        for (auto copy : d->copies) std::cout << "reprocessed as message " << copy << "\n";
        if (!d->summary.error.empty()) std::cout << "error: " << d->summary.error << "\n";
        std::cout << "-- raw\n" << shown(d->raw) << "\n";
        if (!d->transformed.empty()) std::cout << "-- transformed\n" << shown(d->transformed) << "\n";
        if (!d->log.empty()) std::cout << "-- log\n";
        for (const auto& e : d->log)
            std::cout << when(e.time) << "  " << e.stage << "  " << store::toString(e.level) << "  " << e.text << "\n";
        for (const auto& del : d->deliveries) {
            std::cout << "-- destination " << del.destination << ": " << store::toString(del.status) << ", "
                      << del.attempts << " attempt(s)" << (del.error.empty() ? "" : ", " + del.error) << "\n";
            for (const auto& a : del.history)
                std::cout << "attempt " << when(a.time) << "  " << store::toString(a.status)
                          << (a.error.empty() ? "" : "  " + a.error) << "\n";
            if (!del.response.empty()) std::cout << shown(del.response) << "\n";
        }
        return 0;
    }
    q.limit = limit + 1;  // one more: whether the limit cut the list
    auto found = st->search(q);
    bool cut = found.size() > static_cast<std::size_t>(limit);
    if (cut) found.resize(static_cast<std::size_t>(limit));
    // A failed delivery's error is kept with the delivery: an ERROR row shows it.
    for (auto& m : found) {
        if (m.status != store::Status::Error || !m.error.empty()) continue;
        if (auto d = st->get(m.id))
            for (const auto& del : d->deliveries)
                if (del.status == store::Status::Error && m.error.empty()) m.error = del.destination + ": " + del.error;
    }
    printList(found);
    if (cut) {
        // Counting a text search runs it: up to a bound.
        constexpr std::uint64_t kTextCountBound = 100000;
        auto total = st->countMatching(q, q.text.empty() ? std::numeric_limits<std::uint64_t>::max() : kTextCountBound);
        std::cout << "showing " << grouped(found.size()) << " of "
                  << (q.text.empty() || total < kTextCountBound ? grouped(total) : "at least " + grouped(total))
                  << " (older ones: --before " << found.back().id << ")\n";
    }
    return 0;
}

}  // namespace junction::app
