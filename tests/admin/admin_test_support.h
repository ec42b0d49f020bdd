// The admin API tests' engine: two channels (a schedule source that runs only
// when triggered, and a file source), the accounts (admin, operator, viewer,
// each with a password and a bearer token) and the admin server on a free
// loopback port; requests go over real HTTP.
#pragma once

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <map>
#include <memory>
#include <string>

#include "engine/admin/accounts.h"
#include "engine/admin/admin_server.h"
#include "engine/core/engine.h"
#include "engine/http/client.h"
#include "tests/core/test_support.h"
#include "tests/support/connectors.h"

namespace junction::testing {

inline const char* kScheduleChannel =
    "channel: sched\n"
    "description: runs when asked\n"
    "source: { type: schedule, interval: 1h, run_at_start: false }\n"
    "script: sched.lua\n"
    "transform: run\n"
    "destinations: []\n";
inline const char* kScheduleScript = "function run(msg) end\n";
inline const char* kFileChannel =
    "channel: files\n"
    "source: { type: file, directory: in, poll_interval: 100ms }\n"
    "destinations:\n"
    "  - { name: out, type: file, directory: out }\n";

// Few PBKDF2 rounds: these tests make many accounts (one test checks the default).
inline constexpr int kTestIterations = 1000;

struct AdminFixture {
    TempDir dir;
    std::unique_ptr<core::Engine> engine;
    std::unique_ptr<store::UserStore> users;
    std::unique_ptr<admin::Accounts> accounts;
    std::unique_ptr<admin::AdminServer> server;
    std::map<admin::Role, std::string> tokens;  // a token per role
    http::Client client;

    explicit AdminFixture(admin::LoginLimits limits = {}, std::size_t maxBody = 1u << 20) {
        dir.write("channels/sched.yaml", kScheduleChannel);
        dir.write("sched.lua", kScheduleScript);
        dir.write("channels/files.yaml", kFileChannel);
        core::EngineOptions o;
        o.config.baseDir = dir.str();
        o.config.channelsDir = dir.str() + "/channels";
        o.config.store.path = dir.str() + "/var/junction.db";
        o.config.admin.port = 0;
        o.store.synchronousFull = false;
        engine = std::make_unique<core::Engine>(o, connectorRegistry());
        auto problems = engine->loadChannels();
        if (!problems.empty()) throw std::runtime_error(problems.front().error);
        engine->start();
        users = store::openSqliteUsers(o.config.store.path);
        accounts = std::make_unique<admin::Accounts>(*users, kTestIterations, limits);
        for (auto [role, name] : {std::pair{admin::Role::Admin, "admin"}, std::pair{admin::Role::Operator, "op"},
                                  std::pair{admin::Role::Viewer, "view"}}) {
            accounts->addUser(name, admin::toString(role), std::string(name) + "-password");
            tokens[role] = accounts->createToken(name, "tests").second;
        }
        admin::AdminOptions ao;
        ao.port = 0;
        ao.maxBodyBytes = maxBody;
        ao.version = "test";
        server = std::make_unique<admin::AdminServer>(*engine, *accounts, ao);
        server->start();
        server->setReady(true);
    }
    ~AdminFixture() {
        client.reset();  // a kept-alive connection would hold the server's stop up
        server->stop();
        engine->stop();
    }

    std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(server->port()) + path; }

    // A request with a bearer token ("" = none), a JSON body when not empty.
    http::Response call(const std::string& method, const std::string& path, const std::string& token = {},
                        const std::string& body = {}, std::vector<http::Header> headers = {}) {
        if (!token.empty()) headers.push_back({"Authorization", "Bearer " + token});
        if (!body.empty() && http::headerValue(headers, "Content-Type").empty())
            headers.push_back({"Content-Type", "application/json"});
        http::Result r = client.send({method, url(path), headers, body});
        if (!r.answered) throw std::runtime_error(method + " " + path + ": no answer: " + r.error);
        return r.response;
    }
    http::Response as(admin::Role role, const std::string& method, const std::string& path, const std::string& body = {}) {
        return call(method, path, tokens.at(role), body);
    }
};

inline Poco::JSON::Object::Ptr jsonObject(const std::string& text) {
    return Poco::JSON::Parser().parse(text).extract<Poco::JSON::Object::Ptr>();
}

// The {"error": "..."} of an answer ("" when the body is not such an object).
inline std::string jsonErrorText(const http::Response& r) {
    try {
        auto o = jsonObject(r.body);
        return o->has("error") ? o->getValue<std::string>("error") : std::string();
    } catch (const std::exception&) {
        return {};
    }
}

}  // namespace junction::testing
