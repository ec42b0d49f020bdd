// The CLI's client of the running engine's admin API (api_client.h).
#include "engine/app/api_client.h"

#include <termios.h>
#include <unistd.h>

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <cstdlib>
#include <iostream>
#include <stdexcept>

#include "engine/config/engine_config.h"

namespace junction::app {

bool takeApiOptions(Args& args, ApiOptions& out, const char* cmd) {
    Args rest;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        std::string* target = a == "--config" ? nullptr
                              : a == "--url"  ? &out.url
                              : a == "--user" ? &out.user
                              : a == "--ca"   ? &out.ca
                                              : nullptr;
        if (a == "--insecure") {
            out.insecure = true;
        } else if (a == "--config" || target) {
            if (i + 1 >= args.size()) {
                std::cerr << "junction " << cmd << ": " << a << " needs a value\n";
                return false;
            }
            if (target) *target = args[++i];
            else out.config = args[++i];
        } else {
            rest.push_back(a);
        }
    }
    args = rest;
    return true;
}

std::string readPassword(const std::string& prompt) {
    std::string pw;
    if (::isatty(STDIN_FILENO)) {
        std::cerr << prompt << std::flush;
        termios old{};
        ::tcgetattr(STDIN_FILENO, &old);
        termios quiet = old;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
        std::getline(std::cin, pw);
        ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
        std::cerr << "\n";
    } else {
        std::getline(std::cin, pw);
    }
    if (!pw.empty() && pw.back() == '\r') pw.pop_back();
    return pw;
}

ApiClient::ApiClient(const ApiOptions& o) {
    url_ = o.url;
    if (url_.empty()) {
        auto cfg = config::loadEngineConfig(o.config);
        if (cfg.admin.port == 0) throw std::runtime_error("the admin API is off in the config (admin.port: 0)");
        std::string host = cfg.admin.bind == "0.0.0.0" || cfg.admin.bind.empty() ? "127.0.0.1"
                           : cfg.admin.bind == "::"                              ? "[::1]"
                                                                                 : cfg.admin.bind;
        bool tls = !cfg.admin.tls.cert.empty();
        url_ = std::string(tls ? "https" : "http") + "://" + host + ":" + std::to_string(cfg.admin.port);
        // A self-signed certificate of the engine's own config is the one to trust.
        if (tls && o.ca.empty()) clientOptions_.tls.ca = cfg.admin.tls.cert;
    }
    while (!url_.empty() && url_.back() == '/') url_.pop_back();
    if (!o.ca.empty()) clientOptions_.tls.ca = o.ca;
    clientOptions_.tls.verify = !o.insecure;
    clientOptions_.timeout = std::chrono::seconds(60);

    const char* token = std::getenv("JUNCTION_TOKEN");
    std::string user = !o.user.empty() ? o.user : std::getenv("JUNCTION_USER") ? std::getenv("JUNCTION_USER") : "";
    if (token && *token && user.empty()) {
        authorization_ = std::string("Bearer ") + token;
    } else if (!user.empty()) {
        const char* pw = std::getenv("JUNCTION_PASSWORD");
        authorization_ = http::basicAuth(user, pw ? pw : readPassword("password for " + user + ": "));
    } else {
        throw std::runtime_error(
            "no credentials: set JUNCTION_TOKEN to a token, or JUNCTION_USER (or --user) and JUNCTION_PASSWORD");
    }
}

http::Response ApiClient::call(const std::string& method, const std::string& path, const std::string& body) {
    http::Client client(clientOptions_);
    http::Request req{method, url_ + path, {{"Authorization", authorization_}}, body};
    if (!body.empty()) req.headers.push_back({"Content-Type", "application/json"});
    http::Result r = client.send(req);
    if (!r.answered) throw std::runtime_error("no answer from the engine's admin API at " + url_ + ": " + r.error);
    if (r.response.status >= 300) {
        std::string text = r.response.body;
        try {
            auto v = Poco::JSON::Parser().parse(text);
            if (v.type() == typeid(Poco::JSON::Object::Ptr)) {
                auto o = v.extract<Poco::JSON::Object::Ptr>();
                if (o->has("error")) text = o->getValue<std::string>("error");
            }
        } catch (const std::exception&) {
        }
        throw std::runtime_error(std::to_string(r.response.status) + ": " + text);
    }
    return r.response;
}

}  // namespace junction::app
