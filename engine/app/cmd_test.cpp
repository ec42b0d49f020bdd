// junction test CHANNEL --input FILE... : an Iguana-style dry run of a
// channel's scripts on sample input, without storing or sending anything.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "engine/app/commands.h"
#include "engine/app/connectors.h"
#include "engine/config/engine_config.h"
#include "engine/core/channel_config.h"
#include "engine/core/pipeline.h"
#include "engine/hl7/batch.h"

namespace junction::app {

namespace {

const char* kTestUsage =
    "usage: junction test CHANNEL --input FILE... [--config FILE]\n\n"
    "Runs the channel's preprocessor, filter, transformer and each destination's filter and\n"
    "transformer on every message of the input files, without storing or sending, and prints\n"
    "the route taken and the output per destination. CHANNEL is a channel name from the\n"
    "channel folder or a path to a channel file. Exit 1 when a script fails.\n";

std::string shown(std::string s) {
    for (char& c : s)
        if (c == '\r') c = '\n';
    if (!s.empty() && s.back() != '\n') s += '\n';
    return s;
}

const char* kindName(core::DestinationOutcome::Kind k) {
    switch (k) {
        case core::DestinationOutcome::Kind::Queued: return "would send";
        case core::DestinationOutcome::Kind::Filtered: return "filtered";
        case core::DestinationOutcome::Kind::NotRouted: return "not routed";
        case core::DestinationOutcome::Kind::Error: return "ERROR";
    }
    return "?";
}

}  // namespace

int cmdTest(const Args& args) {
    if (wantsHelp(args)) {
        std::cout << kTestUsage;
        return 0;
    }
    std::string channel;
    std::vector<std::string> inputs;
    std::optional<std::string> configFile;
    bool inInputs = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        if (a == "--input") {
            inInputs = true;
        } else if (a == "--config" && i + 1 < args.size()) {
            configFile = args[++i];
            inInputs = false;
        } else if (!a.empty() && a[0] == '-') {
            std::cerr << "junction test: unknown option " << a << "\n";
            return 2;
        } else if (inInputs) {
            inputs.push_back(a);
        } else if (channel.empty()) {
            channel = a;
        } else {
            inputs.push_back(a);
        }
    }
    if (channel.empty() || inputs.empty()) {
        std::cerr << kTestUsage;
        return 2;
    }
    core::ChannelConfig cc;
    try {
        auto cfg = config::loadEngineConfig(configFile);
        std::string file;
        if (std::filesystem::is_regular_file(channel)) {
            file = channel;
        } else {
            for (const auto& f : config::listChannelFiles(cfg)) {
                try {
                    if (config::readChannelName(f) == channel) file = f;
                } catch (const config::ConfigError&) {
                }
            }
        }
        if (file.empty()) {
            std::cerr << "junction test: no channel named '" << channel << "' in " << cfg.channelsDir << "\n";
            return 2;
        }
        cc = core::parseChannelFile(file, cfg.baseDir, builtinConnectors());
    } catch (const config::ConfigError& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
    std::unique_ptr<lua::ScriptRuntime> rt;
    if (!cc.script.empty()) {
        std::string err;
        rt = lua::ScriptRuntime::load(cc.script, lua::Limits{}, &err);
        if (!rt) {
            std::cerr << "junction test: " << err << "\n";
            return 1;
        }
    }
    auto channelMap = std::make_shared<lua::SharedMap>();
    auto globalMap = std::make_shared<lua::SharedMap>();
    core::Pipeline pipeline(cc, channelMap, globalMap);
    int failures = 0, count = 0;
    for (const auto& input : inputs) {
        std::ifstream in(input, std::ios::binary);
        if (!in) {
            std::cerr << "junction test: cannot read " << input << "\n";
            ++failures;
            continue;
        }
        std::stringstream buf;
        buf << in.rdbuf();
        std::string text = buf.str();
        std::vector<std::string> messages;
        if (cc.dataType == "hl7v2") {
            for (auto m : hl7::splitMessages(text)) messages.emplace_back(m);
            if (messages.empty()) messages.push_back(text);
        } else {
            messages.push_back(text);
        }
        for (std::size_t k = 0; k < messages.size(); ++k) {
            ++count;
            std::cout << "== " << input << (messages.size() > 1 ? " #" + std::to_string(k + 1) : "") << "\n";
            std::string err;
            auto payload = core::makePayload(cc.dataType, messages[k], &err);
            if (!payload) {
                std::cout << "status: ERROR (" << err << ")\n";
                ++failures;
                continue;
            }
            auto responseMap = std::make_shared<lua::SharedMap>();
            auto out = pipeline.process(*payload, rt.get(), responseMap);
            for (const auto& l : out.logs)
                std::cout << "log " << (l.level == lua::LogLine::Error ? "error" : l.level == lua::LogLine::Warn ? "warn" : "info")
                          << " " << l.where << ": " << l.text << "\n";
            std::cout << "status: " << store::toString(out.status);
            if (out.status == store::Status::Error) std::cout << " (" << out.error << ")";
            if (out.status == store::Status::Filtered) std::cout << " (" << out.filterReason << ")";
            std::cout << "\n";
            if (out.status == store::Status::Error) {
                ++failures;
                continue;
            }
            if (out.status == store::Status::Filtered) continue;
            std::string route;
            for (const auto& r : out.routes) route += (route.empty() ? "" : ", ") + r;
            std::cout << "route: " << (out.routed ? route : "all destinations") << "\n";
            for (const auto& d : out.destinations) {
                std::cout << "-- " << d.name << ": " << kindName(d.kind);
                if (!d.reason.empty() && d.reason != kindName(d.kind)) std::cout << " (" << d.reason << ")";
                std::cout << "\n";
                if (d.kind == core::DestinationOutcome::Kind::Queued) std::cout << shown(d.encoded);
                if (d.kind == core::DestinationOutcome::Kind::Error) ++failures;
            }
        }
    }
    std::cout << count << " message(s), " << failures << " error(s)\n";
    return failures == 0 ? 0 : 1;
}

}  // namespace junction::app
