// junction channel list|show|start|stop|pause|resume|trigger|redeploy: a
// running engine's channels, through its admin API.
#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <iomanip>
#include <iostream>

#include "engine/app/api_client.h"
#include "engine/app/commands.h"
#include "engine/http/client.h"

namespace junction::app {

namespace {

const char* kChannelUsage =
    "usage: junction channel list\n"
    "       junction channel show NAME\n"
    "       junction channel start|stop|pause|resume|trigger NAME\n"
    "       junction channel redeploy [NAME]\n"
    "options: [--config FILE] [--url URL] [--user NAME] [--ca FILE] [--insecure]\n\n"
    "Asks the running engine (its admin API, found in junction.yaml or at --url). trigger runs the\n"
    "channel's source now (a schedule source makes a run); redeploy re-reads the channel's file and\n"
    "script, or without NAME the whole channel folder. Credentials: JUNCTION_TOKEN (a bearer token),\n"
    "or JUNCTION_USER (or --user) with JUNCTION_PASSWORD (else asked for at the terminal).\n";

Poco::JSON::Object::Ptr parseObject(const std::string& text) {
    return Poco::JSON::Parser().parse(text).extract<Poco::JSON::Object::Ptr>();
}

std::string str(const Poco::JSON::Object::Ptr& o, const std::string& key) {
    return o->has(key) && !o->isNull(key) ? o->get(key).convert<std::string>() : std::string();
}

void printChannelLine(const Poco::JSON::Object::Ptr& c) {
    auto counters = c->getObject("counters");
    std::uint64_t queued = 0;
    auto dests = c->getArray("destinations");
    for (std::size_t i = 0; i < dests->size(); ++i) queued += dests->getObject(static_cast<unsigned>(i))->getValue<std::uint64_t>("queued");
    std::cout << std::left << std::setw(24) << str(c, "name") << " " << std::setw(8) << str(c, "state") << " "
              << std::setw(10) << str(c->getObject("source"), "type") << " received " << str(counters, "received")
              << ", sent " << str(counters, "sent") << ", filtered " << str(counters, "filtered") << ", errored "
              << str(counters, "errored") << ", queued " << queued;
    if (!str(c, "error").empty()) std::cout << " (" << str(c, "error") << ")";
    std::cout << "\n";
}

void printReload(const Poco::JSON::Object::Ptr& r) {
    for (const char* key : {"added", "redeployed", "removed"}) {
        auto names = r->getArray(key);
        for (std::size_t i = 0; i < names->size(); ++i)
            std::cout << "channel " << names->getElement<std::string>(static_cast<unsigned>(i)) << ": " << key << "\n";
    }
    auto problems = r->getArray("problems");
    for (std::size_t i = 0; i < problems->size(); ++i)
        std::cerr << str(problems->getObject(static_cast<unsigned>(i)), "error") << "\n";
    std::cout << "redeployed " << r->getArray("redeployed")->size() << ", added " << r->getArray("added")->size()
              << ", removed " << r->getArray("removed")->size() << ", unchanged " << str(r, "unchanged") << ", "
              << problems->size() << " invalid (running versions kept)\n";
}

}  // namespace

int cmdChannel(const Args& argsIn) {
    Args args = argsIn;
    if (args.empty() || wantsHelp(args)) {
        (args.empty() ? std::cerr : std::cout) << kChannelUsage;
        return args.empty() ? 2 : 0;
    }
    ApiOptions o;
    if (!takeApiOptions(args, o, "channel")) return 2;
    if (args.empty()) {
        std::cerr << kChannelUsage;
        return 2;
    }
    const std::string verb = args[0];
    const bool needsName = verb != "list" && verb != "redeploy";
    const bool takesName = verb != "list";
    if ((needsName && args.size() != 2) || (!takesName && args.size() != 1) || args.size() > 2) {
        std::cerr << kChannelUsage;
        return 2;
    }
    static const std::vector<std::string> kActions = {"start", "stop", "pause", "resume", "trigger", "redeploy"};
    if (verb != "list" && verb != "show" && std::find(kActions.begin(), kActions.end(), verb) == kActions.end()) {
        std::cerr << "junction channel: unknown subcommand '" << verb << "'\n" << kChannelUsage;
        return 2;
    }
    ApiClient api(o);
    if (verb == "list") {
        auto channels = parseObject(api.call("GET", "/api/v1/channels").body)->getArray("channels");
        for (std::size_t i = 0; i < channels->size(); ++i) printChannelLine(channels->getObject(static_cast<unsigned>(i)));
        return 0;
    }
    if (verb == "redeploy" && args.size() == 1) {
        printReload(parseObject(api.call("POST", "/api/v1/channels/redeploy").body));
        return 0;
    }
    const std::string path = "/api/v1/channels/" + http::urlEncode(args[1]);
    if (verb == "show") {
        auto c = parseObject(api.call("GET", path).body);
        printChannelLine(c);
        auto dests = c->getArray("destinations");
        for (std::size_t i = 0; i < dests->size(); ++i) {
            auto d = dests->getObject(static_cast<unsigned>(i));
            std::cout << "  destination " << str(d, "name") << " (" << str(d, "type") << "): " << str(d, "state")
                      << ", queued " << str(d, "queued") << ", sent " << str(d->getObject("counters"), "sent");
            if (!str(d, "last_error").empty()) std::cout << ", last error: " << str(d, "last_error");
            std::cout << "\n";
        }
        std::cout << "file: " << str(c, "file") << "\n";
        if (!str(c, "script_file").empty()) std::cout << "script: " << str(c, "script_file") << "\n";
        return 0;
    }
    auto c = parseObject(api.call("POST", path + "/" + verb).body);
    std::cout << "channel " << str(c, "name") << ": " << (verb == "trigger" ? "triggered, " : "") << str(c, "state")
              << "\n";
    return 0;
}

}  // namespace junction::app
