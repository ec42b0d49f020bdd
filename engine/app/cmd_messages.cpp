// junction messages: search the message store (what the console will show).
#include <ctime>
#include <iostream>
#include <optional>

#include "engine/app/commands.h"
#include "engine/config/engine_config.h"
#include "engine/store/message_store.h"

namespace junction::app {

namespace {
const char* kMessagesUsage =
    "usage: junction messages [--config FILE] [--channel NAME] [--status STATUS] [--control-id ID]\n"
    "                         [--patient ID] [--accession ACC] [--text STR] [--limit N] [--counts]\n"
    "                         [--show ID]\n\n"
    "Lists stored messages, newest first (STATUS: RECEIVED FILTERED TRANSFORMED QUEUED SENT ERROR).\n"
    "--text STR: messages whose raw content holds STR (any case, taken literally).\n"
    "--counts prints the number of messages per status of --channel (required with it).\n"
    "--show ID prints one message with its contents and deliveries.\n";

std::string when(store::Clock::time_point t) {
    std::time_t tt = store::Clock::to_time_t(t);
    std::tm tm{};
    localtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
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
    long long show = 0;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        bool hasValue = i + 1 < args.size();
        if (a == "--counts") counts = true;
        else if (a == "--config" && hasValue) configFile = args[++i];
        else if (a == "--channel" && hasValue) q.channel = args[++i];
        else if (a == "--status" && hasValue) {
            auto s = store::parseStatus(args[++i]);
            if (!s) {
                std::cerr << "junction messages: unknown status " << args[i] << "\n";
                return 2;
            }
            q.status = s;
        } else if (a == "--control-id" && hasValue) q.controlId = args[++i];
        else if (a == "--patient" && hasValue) q.patientId = args[++i];
        else if (a == "--accession" && hasValue) q.accession = args[++i];
        else if (a == "--text" && hasValue) q.text = args[++i];
        else if (a == "--limit" && hasValue) q.limit = std::atoi(args[++i].c_str());
        else if (a == "--show" && hasValue) show = std::atoll(args[++i].c_str());
        else {
            std::cerr << "junction messages: unexpected argument " << a << "\n" << kMessagesUsage;
            return 2;
        }
    }
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
    for (const auto& m : st->search(q)) {
        std::cout << m.id << "  " << when(m.receivedAt) << "  " << m.channel << "  " << store::toString(m.status) << "  "
                  << m.meta.messageType << "  " << m.meta.controlId << "  " << m.meta.patientId << "  "
                  << m.meta.accession << (m.error.empty() ? "" : "  " + m.error) << "\n";
    }
    return 0;
}

}  // namespace junction::app
