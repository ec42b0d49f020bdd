// junction: the command-line entry point.
#include <cstring>
#include <exception>
#include <iostream>
#include <string>

#include "engine/app/commands.h"

namespace {

const char* kUsage =
    "usage: junction <command> [options]\n"
    "\n"
    "commands:\n"
    "  run [--config FILE]          start the engine on the configured channels\n"
    "  validate [--config FILE]     check the engine config and channels, then exit\n"
    "  test CHANNEL --input FILE... dry-run a channel's scripts on sample messages\n"
    "  schema [--markdown]          print the JSON Schema of channel files (or the docs' settings tables)\n"
    "  messages [--channel C] ...   search the message store\n"
    "  channel list|show|start|stop|pause|resume|trigger|redeploy [NAME]\n"
    "                               control the running engine's channels (its admin API)\n"
    "  user list|add|passwd|role|remove|token ...  manage the admin API's users\n"
    "  hl7 parse FILE [--json]      print an HL7 v2 message as a tree of positions\n"
    "  hl7 send HOST:PORT FILE...   send HL7 messages over MLLP and print the ACKs\n"
    "  version                      print the version and the linked libraries\n"
    "\n"
    "Run 'junction <command> --help' for the options of a command.\n";

}  // namespace

namespace junction::app {

bool wantsHelp(const Args& args) {
    for (const auto& a : args)
        if (a == "-h" || a == "--help") return true;
    return false;
}

}  // namespace junction::app

int main(int argc, char** argv) {
    using namespace junction::app;
    Args args(argv + 1, argv + argc);
    if (args.empty()) {
        std::cerr << kUsage;
        return 2;
    }
    std::string cmd = args.front();
    Args rest(args.begin() + 1, args.end());
    try {
        if (cmd == "-h" || cmd == "--help" || cmd == "help") {
            std::cout << kUsage;
            return 0;
        }
        if (cmd == "run") return cmdRun(rest);
        if (cmd == "validate") return cmdValidate(rest);
        if (cmd == "test") return cmdTest(rest);
        if (cmd == "schema") return cmdSchema(rest);
        if (cmd == "messages") return cmdMessages(rest);
        if (cmd == "channel") return cmdChannel(rest);
        if (cmd == "user") return cmdUser(rest);
        if (cmd == "version" || cmd == "--version") return cmdVersion(rest);
        if (cmd == "hl7") {
            if (rest.empty() || rest[0] == "-h" || rest[0] == "--help") {
                std::cout << "usage: junction hl7 parse FILE [--json]\n"
                             "       junction hl7 send HOST:PORT FILE... [--timeout SECONDS] [--quiet]\n";
                return rest.empty() ? 2 : 0;
            }
            Args sub(rest.begin() + 1, rest.end());
            if (rest[0] == "parse") return cmdHl7Parse(sub);
            if (rest[0] == "send") return cmdHl7Send(sub);
            std::cerr << "junction hl7: unknown subcommand '" << rest[0] << "' (parse, send)\n";
            return 2;
        }
        std::cerr << "junction: unknown command '" << cmd << "'\n\n" << kUsage;
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "junction " << cmd << ": " << e.what() << "\n";
        return 1;
    }
}
