// junction run / junction validate
#include <csignal>
#include <iostream>
#include <map>
#include <optional>

#include "engine/app/commands.h"
#include "engine/config/engine_config.h"

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

// Loads the engine config and reads every channel file; prints problems.
// Returns the config and the number of channel files that failed.
std::optional<config::EngineConfig> loadAll(const ConfigArgs& a, const char* cmd, int& failures,
                                            std::map<std::string, std::string>& channels) {
    config::EngineConfig cfg;
    try {
        cfg = config::loadEngineConfig(a.config);
    } catch (const config::ConfigError& e) {
        std::cerr << "junction " << cmd << ": " << e.what() << "\n";
        return std::nullopt;
    }
    std::cout << "config: " << (cfg.file.empty() ? "built-in defaults" : cfg.file) << "\n"
              << "store: " << cfg.store.type << " "
              << (cfg.store.type == "sqlite" ? cfg.store.path : cfg.store.url) << "\n"
              << "channels: " << cfg.channelsDir << "\n"
              << "admin: " << cfg.admin.bind << ":" << cfg.admin.port << "\n";
    failures = 0;
    for (const auto& file : config::listChannelFiles(cfg)) {
        try {
            std::string name = config::readChannelName(file);
            auto [it, inserted] = channels.emplace(name, file);
            if (!inserted) {
                std::cerr << file << ": duplicate channel name '" << name << "' (also in " << it->second << ")\n";
                ++failures;
                continue;
            }
            std::cout << "channel " << name << ": " << file << "\n";
        } catch (const config::ConfigError& e) {
            std::cerr << e.what() << "\n";
            ++failures;
        }
    }
    return cfg;
}

}  // namespace

int cmdValidate(const Args& args) {
    if (wantsHelp(args)) {
        std::cout << "usage: junction validate [--config FILE]\n\n"
                     "Checks the engine config (default ./junction.yaml, else built-in defaults) and\n"
                     "every channel file, printing each problem with file:line. Exit 0 when all are valid.\n";
        return 0;
    }
    auto a = parseConfigArgs(args, "validate");
    if (!a.ok) return 2;
    int failures = 0;
    std::map<std::string, std::string> channels;
    auto cfg = loadAll(a, "validate", failures, channels);
    if (!cfg) return 1;
    std::cout << channels.size() << " channel(s) valid, " << failures << " invalid\n";
    return failures == 0 ? 0 : 1;
}

int cmdRun(const Args& args) {
    if (wantsHelp(args)) {
        std::cout << "usage: junction run [--config FILE]\n\n"
                     "Starts the engine with the engine config (default ./junction.yaml, else built-in\n"
                     "defaults) and the channels of its channel folder. Invalid channels are reported and\n"
                     "skipped. Stops on SIGINT or SIGTERM.\n";
        return 0;
    }
    auto a = parseConfigArgs(args, "run");
    if (!a.ok) return 2;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    int failures = 0;
    std::map<std::string, std::string> channels;
    auto cfg = loadAll(a, "run", failures, channels);
    if (!cfg) return 1;
    std::cout << "junction: running, " << channels.size() << " channel(s) loaded, " << failures
              << " skipped; stop with Ctrl-C" << std::endl;
    int sig = 0;
    sigwait(&set, &sig);
    std::cout << "junction: stopping (signal " << sig << ")" << std::endl;
    return 0;
}

}  // namespace junction::app
