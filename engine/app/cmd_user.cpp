// junction user list|add|passwd|remove|token: the admin API's accounts, kept
// in the store's database (works with the engine running or not).
#include <unistd.h>

#include <iostream>

#include "engine/admin/accounts.h"
#include "engine/app/api_client.h"
#include "engine/app/commands.h"
#include "engine/config/engine_config.h"

namespace junction::app {

namespace {

const char* kUserUsage =
    "usage: junction user list\n"
    "       junction user add NAME --role admin|operator|viewer\n"
    "       junction user passwd NAME\n"
    "       junction user role NAME admin|operator|viewer\n"
    "       junction user remove NAME\n"
    "       junction user token NAME [--label TEXT]\n"
    "options: [--config FILE]\n\n"
    "Manages the users of the admin API in the store's database. add and passwd ask for the\n"
    "password at the terminal (or read the first line of stdin). token makes a bearer token for\n"
    "the user and prints it (only now; revoke it with DELETE /api/v1/tokens/ID).\n"
    "Roles: viewer reads; operator also starts, stops, triggers and changes the worklist;\n"
    "admin may do everything (users, redeploy).\n";

std::string newPasswordFromUser(const std::string& name) {
    std::string pw = readPassword("new password for " + name + ": ");
    if (::isatty(STDIN_FILENO) && readPassword("again: ") != pw) throw admin::ApiError(400, "the passwords differ");
    return pw;
}

}  // namespace

int cmdUser(const Args& argsIn) {
    Args args = argsIn;
    if (args.empty() || wantsHelp(args)) {
        (args.empty() ? std::cerr : std::cout) << kUserUsage;
        return args.empty() ? 2 : 0;
    }
    ApiOptions o;
    if (!takeApiOptions(args, o, "user")) return 2;
    std::string role, label;
    Args rest;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--role" && i + 1 < args.size()) role = args[++i];
        else if (args[i] == "--label" && i + 1 < args.size()) label = args[++i];
        else rest.push_back(args[i]);
    }
    if (rest.empty()) {
        std::cerr << kUserUsage;
        return 2;
    }
    const std::string verb = rest[0];
    std::size_t want = verb == "list" ? 1 : verb == "role" ? 3 : 2;
    if (rest.size() != want || (verb == "add" && role.empty())) {
        std::cerr << kUserUsage;
        return 2;
    }
    auto cfg = config::loadEngineConfig(o.config);
    auto users = store::openSqliteUsers(cfg.store.path);
    admin::Accounts accounts(*users);
    try {
        if (verb == "list") {
            for (const auto& u : accounts.users()) std::cout << u.name << " " << u.role << "\n";
        } else if (verb == "add") {
            accounts.addUser(rest[1], role, newPasswordFromUser(rest[1]));
            std::cout << "user " << rest[1] << " added (" << role << ")\n";
        } else if (verb == "passwd") {
            if (!accounts.user(rest[1])) throw admin::ApiError(404, "no user '" + rest[1] + "'");
            accounts.setPassword(rest[1], newPasswordFromUser(rest[1]));
            std::cout << "password of " << rest[1] << " changed\n";
        } else if (verb == "role") {
            accounts.setRole(rest[1], rest[2]);
            std::cout << "user " << rest[1] << " is " << rest[2] << "\n";
        } else if (verb == "remove") {
            accounts.removeUser(rest[1]);
            std::cout << "user " << rest[1] << " removed, with their tokens\n";
        } else if (verb == "token") {
            auto [id, token] = accounts.createToken(rest[1], label);
            std::cout << token << "\n";
            std::cerr << "token " << id << " of " << rest[1] << " (shown only now)\n";
        } else {
            std::cerr << "junction user: unknown subcommand '" << verb << "'\n" << kUserUsage;
            return 2;
        }
    } catch (const admin::ApiError& e) {
        std::cerr << "junction user " << verb << ": " << e.what() << "\n";
        return 1;
    }
    return 0;
}

}  // namespace junction::app
