// junction run / junction validate / junction schema
#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include "engine/app/admin.h"
#include "engine/app/commands.h"
#include "engine/app/connectors.h"
#include "engine/config/engine_config.h"
#include "engine/core/engine.h"
#include "engine/util/log.h"
#include "engine/util/systemd_notify.h"

namespace junction::app {

namespace {

struct ConfigArgs {
    std::optional<std::string> config;
    bool ok = true;
};

ConfigArgs parseConfigArgs(const Args& args, const char* cmd) {
    ConfigArgs out;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--config" && i + 1 < args.size()) {
            out.config = args[++i];
        } else if (args[i].rfind("--config=", 0) == 0) {
            out.config = args[i].substr(9);
        } else {
            std::cerr << "junction " << cmd << ": unexpected argument '" << args[i] << "'\n";
            out.ok = false;
        }
    }
    return out;
}

std::optional<config::EngineConfig> loadConfig(const ConfigArgs& a, const char* cmd) {
    try {
        auto cfg = config::loadEngineConfig(a.config);
        std::cout << "config: " << (cfg.file.empty() ? "built-in defaults" : cfg.file) << "\n"
                  << "store: " << cfg.store.type << " " << (cfg.store.type == "sqlite" ? cfg.store.path : cfg.store.url)
                  << " (sync " << cfg.store.sync << ")\n"
                  << "channels: " << cfg.channelsDir << "\n";
        return cfg;
    } catch (const config::ConfigError& e) {
        std::cerr << "junction " << cmd << ": " << e.what() << "\n";
        return std::nullopt;
    }
}

// The channels loaded and the files that failed (through the log: at `junction
// run` they go where its log goes).
void report(const std::vector<core::LoadProblem>& problems, const core::Engine& engine) {
    for (const auto& p : problems) util::logLine(util::LogLevel::Error, p.error);
    for (const auto& c : engine.channels())
        util::logLine(util::LogLevel::Info,
                      "channel " + c.name + ": " + c.sourceType + " source, " + std::to_string(c.destinations.size()) +
                          " destination(s) (" + c.file + ")",
                      util::LogStream::Out, c.name);
}

// Alert rules naming a channel, or a destination of it, that no channel file
// declares (a typo would make a rule that never fires).
std::vector<std::string> alertProblems(const config::EngineConfig& cfg, const std::vector<core::ChannelInfo>& channels) {
    std::vector<std::string> out;
    for (const auto& rule : cfg.alerts) {
        if (rule.channel.empty()) continue;
        const core::ChannelInfo* found = nullptr;
        for (const auto& c : channels) found = c.name == rule.channel ? &c : found;
        bool destination = !found || rule.destination.empty();
        if (found)
            for (const auto& d : found->destinations) destination = destination || d.name == rule.destination;
        std::string place = rule.file + ":" + std::to_string(rule.line) + ":" + std::to_string(rule.column) + ": alert '" +
                            rule.name + "': ";
        if (!found) out.push_back(place + "no channel '" + rule.channel + "' (the channel folder's channels are named)");
        else if (!destination) out.push_back(place + "channel '" + rule.channel + "' has no destination '" + rule.destination + "'");
    }
    return out;
}

// A stop finishes within a bound whatever the engine's threads are doing (a
// database locked by another program, a peer that never lets go): past a
// second it says what it waits for; past the bound, or on a second SIGINT or
// SIGTERM, it exits at once. That is safe: whatever was acknowledged is in the
// intake journal or the store, and the next start resumes it.
class StopWatchdog {
public:
    StopWatchdog(const sigset_t& signals, std::chrono::seconds bound)
        : signals_(signals), bound_(bound), thread_([this] { watch(); }) {}
    ~StopWatchdog() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            done_ = true;
        }
        thread_.join();
    }
    void phase(const std::string& what) {
        std::lock_guard<std::mutex> lock(mu_);
        phase_ = what;
    }

private:
    void watch() {
        using Clock = std::chrono::steady_clock;
        const auto began = Clock::now();
        std::string told;
        for (;;) {
            timespec tick{0, 100 * 1000 * 1000};
            int sig = ::sigtimedwait(&signals_, nullptr, &tick);
            std::string phase;
            {
                std::lock_guard<std::mutex> lock(mu_);
                if (done_) return;
                phase = phase_;
            }
            if (sig == SIGINT || sig == SIGTERM) leave("a second signal (" + std::to_string(sig) + ")", phase);
            auto waited = Clock::now() - began;
            if (waited >= bound_) leave("the stop's bound of " + std::to_string(bound_.count()) + " s", phase);
            if (waited >= std::chrono::seconds(1) && phase != told) {
                std::cout << "junction: still stopping after "
                          << std::chrono::duration_cast<std::chrono::seconds>(waited).count()
                          << " s, waiting for " << phase << std::endl;
                told = phase;
            }
        }
    }
    [[noreturn]] static void leave(const std::string& why, const std::string& phase) {
        std::cout << "junction: exiting without a clean stop after " << why << " (it was waiting for " << phase
                  << "); acknowledged messages are kept and resume at the next start" << std::endl;
        std::_Exit(1);
    }

    sigset_t signals_;
    std::chrono::seconds bound_;
    std::mutex mu_;
    bool done_ = false;
    std::string phase_ = "the engine";
    std::thread thread_;
};

// SIGHUP: re-read the channel folder and say what changed.
void reload(core::Engine& engine) {
    util::notifySystemd("RELOADING=1");
    using util::LogLevel;
    using util::LogStream;
    util::logLine(LogLevel::Info, "junction: reloading the channel folder (SIGHUP)", LogStream::Out);
    core::ReloadResult r = engine.reloadChannels();
    for (const auto& p : r.problems) util::logLine(LogLevel::Error, p.error);
    for (const auto& n : r.added) util::logLine(LogLevel::Info, "channel " + n + ": added", LogStream::Out, n);
    for (const auto& n : r.redeployed) util::logLine(LogLevel::Info, "channel " + n + ": redeployed", LogStream::Out, n);
    for (const auto& n : r.removed) util::logLine(LogLevel::Info, "channel " + n + ": removed", LogStream::Out, n);
    util::logLine(LogLevel::Info,
                  "junction: reloaded, " + std::to_string(r.added.size()) + " added, " +
                      std::to_string(r.redeployed.size()) + " redeployed, " + std::to_string(r.removed.size()) +
                      " removed, " + std::to_string(r.unchanged) + " unchanged, " + std::to_string(r.problems.size()) +
                      " invalid (running versions kept)",
                  LogStream::Out);
    util::notifySystemd("READY=1");
}

}  // namespace

int cmdValidate(const Args& args) {
    if (wantsHelp(args)) {
        std::cout << "usage: junction validate [--config FILE]\n\n"
                     "Checks the engine config (default ./junction.yaml, else built-in defaults) and\n"
                     "every channel file: YAML, keys and types, connector settings, scripts and their\n"
                     "functions, duplicate names and port clashes, alert rules naming no channel,\n"
                     "each problem with file:line.\n"
                     "Exit 0 when all are valid.\n";
        return 0;
    }
    auto a = parseConfigArgs(args, "validate");
    if (!a.ok) return 2;
    auto cfg = loadConfig(a, "validate");
    if (!cfg) return 1;
    // Validation needs no durable store: use a throw-away one.
    core::EngineOptions opts;
    opts.config = *cfg;
    opts.config.store.path = (std::filesystem::temp_directory_path() /
                              ("junction-validate-" + std::to_string(::getpid()) + ".db"))
                                 .string();
    opts.store.synchronousFull = false;
    std::vector<core::LoadProblem> problems;
    std::vector<std::string> alerts;
    std::size_t valid = 0;
    const core::ConnectorRegistry connectors = builtinConnectors();
    {
        core::Engine engine(opts, connectors);
        problems = engine.loadChannels();
        report(problems, engine);
        valid = engine.channels().size();
        alerts = alertProblems(*cfg, engine.channels());
        for (const auto& why : alerts) std::cerr << why << "\n";
    }
    for (const char* suffix : {"", "-wal", "-shm", ".lock"}) std::filesystem::remove(opts.config.store.path + suffix);
    std::cout << valid << " channel(s) valid, " << problems.size() << " invalid\n";
    if (!alerts.empty()) std::cout << alerts.size() << " alert rule(s) name what no channel declares\n";
    return problems.empty() && alerts.empty() ? 0 : 1;
}

int cmdRun(const Args& args) {
    if (wantsHelp(args)) {
        std::cout << "usage: junction run [--config FILE]\n\n"
                     "Starts the engine with the engine config (default ./junction.yaml, else built-in\n"
                     "defaults) and the channels of its channel folder. Invalid channels are reported and\n"
                     "skipped; the others run. Unfinished messages of an earlier run resume. Stops on\n"
                     "SIGINT or SIGTERM. SIGHUP re-reads the channel folder: changed channels are\n"
                     "redeployed, new ones started, removed ones stopped; a file that fails validation\n"
                     "leaves its running channel as it is. SIGUSR1 reopens the log file (log.file) after\n"
                     "it was rotated. Under systemd (Type=notify) it reports\n"
                     "READY, RELOADING and STOPPING.\n";
        return 0;
    }
    auto a = parseConfigArgs(args, "run");
    if (!a.ok) return 2;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);
    // Messages are patient data: what the engine creates (store, journal, content
    // and output files) is not readable by other users, whatever the caller's umask.
    ::umask(::umask(0) | 027);
    auto cfg = loadConfig(a, "run");
    if (!cfg) return 1;
    try {
        util::LogOptions lo;
        lo.file = cfg->log.file;
        lo.level = util::parseLogLevel(cfg->log.level).value_or(util::LogLevel::Info);
        lo.format = cfg->log.format == "json" ? util::LogFormat::Json : util::LogFormat::Text;
        util::configureLog(lo);
    } catch (const std::exception& e) {
        std::cerr << "junction run: " << e.what() << "\n";
        return 1;
    }
    core::EngineOptions opts;
    opts.config = *cfg;
    opts.store.synchronousFull = cfg->store.sync == "full";
    opts.store.maxStoreBytes = cfg->store.maxSize;
    opts.store.minFreeBytes = cfg->store.minFree;
    opts.store.textIndex = cfg->store.textIndex;
    const core::ConnectorRegistry connectors = builtinConnectors();
    std::unique_ptr<core::Engine> engine;
    try {
        engine = std::make_unique<core::Engine>(opts, connectors);
    } catch (const std::exception& e) {
        std::cerr << "junction run: cannot open the store: " << e.what() << "\n";
        return 1;
    }
    auto problems = engine->loadChannels();
    report(problems, *engine);
    engine->start();
    // Beside the channels, on a thread of its own: a taken admin port stops no
    // channel, and a database another program holds locked delays no stop.
    std::unique_ptr<AdminService> admin;
    std::thread adminStart([&] {
        admin = startAdmin(*engine, *cfg);
        if (admin) admin->setReady(true);
    });
    std::size_t running = 0;
    for (const auto& c : engine->channels())
        if (c.state == core::ChannelState::Running) ++running;
    util::logLine(util::LogLevel::Info,
                  "junction: running, " + std::to_string(running) + " channel(s) started, " +
                      std::to_string(problems.size()) + " skipped; stop with Ctrl-C",
                  util::LogStream::Out);
    util::notifySystemd("READY=1\nSTATUS=" + std::to_string(running) + " channel(s) running");
    // The Orthanc servers of junction.yaml are checked beside the start, not before it.
    std::thread orthancCheck([&] { engine->checkOrthancServers(); });
    int sig = 0;
    while (sigwait(&set, &sig) == 0 && (sig == SIGHUP || sig == SIGUSR1)) {
        if (sig == SIGHUP) reload(*engine);
        else if (cfg->log.file.empty()) continue;  // no log file to reopen
        else if (util::reopenLog()) util::logLine(util::LogLevel::Info, "junction: log file reopened (SIGUSR1)", util::LogStream::Out);
        else util::logLine(util::LogLevel::Error, "junction: cannot reopen the log file " + cfg->log.file + "; still writing the old one");
    }
    util::logLine(util::LogLevel::Info, "junction: stopping (signal " + std::to_string(sig) + ")", util::LogStream::Out);
    util::notifySystemd("STOPPING=1");
    StopWatchdog watchdog(set, std::chrono::seconds(10));
    watchdog.phase("the admin API's start (its accounts in the database)");
    adminStart.join();
    if (admin) {
        watchdog.phase("the admin API's requests in progress");
        admin->setReady(false);
        admin->stop();
    }
    watchdog.phase("the check of the Orthanc servers");
    orthancCheck.join();
    engine->stop([&](const std::string& what) { watchdog.phase(what); });
    for (const auto& c : engine->channels())
        util::logLine(util::LogLevel::Info,
                      "channel " + c.name + ": received " + std::to_string(c.counters.received) + ", sent " +
                          std::to_string(c.counters.sent) + ", filtered " + std::to_string(c.counters.filtered) +
                          ", errored " + std::to_string(c.counters.errored),
                      util::LogStream::Out, c.name);
    watchdog.phase("the store to close (its writer, journal and checkpoints)");
    engine.reset();
    return 0;
}

int cmdSchema(const Args& args) {
    if (wantsHelp(args)) {
        std::cout << "usage: junction schema [--markdown]\n\n"
                     "Prints the JSON Schema of channel files (docs/channel.schema.json); with\n"
                     "--markdown, the settings tables of docs/channels.md instead, each between its\n"
                     "marker comments. Both come from the declarations the channel files are read with.\n";
        return 0;
    }
    bool markdown = false;
    for (const auto& a : args) {
        if (a != "--markdown") {
            std::cerr << "junction schema: unexpected argument '" << a << "'\n";
            return 2;
        }
        markdown = true;
    }
    const core::ConnectorRegistry connectors = builtinConnectors();
    std::cout << (markdown ? core::channelSettingsMarkdown(connectors) : core::channelJsonSchema(connectors) + "\n");
    return 0;
}

}  // namespace junction::app
