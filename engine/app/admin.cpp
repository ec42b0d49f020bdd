// The admin API's start at `junction run` (admin.h): accounts, first admin,
// server.
#include "engine/app/admin.h"

#include <cstdlib>
#include <iostream>

#include "engine/admin/admin_server.h"
#include "engine/core/engine.h"
#include "engine/util/log.h"

namespace junction::app {

namespace {

class Service : public AdminService {
public:
    Service(core::Engine& engine, const config::EngineConfig& config)
        : users_(store::openSqliteUsers(config.store.path)), accounts_(*users_) {
        const char* env = std::getenv("JUNCTION_ADMIN_PASSWORD");
        if (auto generated = accounts_.ensureAdmin(env ? env : "")) {
            std::cout << "junction: admin API: made the user 'admin' with the password " << *generated
                      << " (shown only now; change it with `junction user passwd admin`)" << std::endl;
        }
        admin::AdminOptions o;
        o.bind = config.admin.bind;
        o.port = config.admin.port;
        o.tlsCert = config.admin.tls.cert;
        o.tlsKey = config.admin.tls.key;
        o.version = JUNCTION_VERSION;
        o.sessionTimeout = config.admin.sessionTimeout;
        server_ = std::make_unique<admin::AdminServer>(engine, accounts_, o);
        server_->start();
        util::logLine(util::LogLevel::Info,
                      std::string("junction: admin API on ") + (o.tlsCert.empty() ? "http" : "https") + "://" + o.bind +
                          ":" + std::to_string(server_->port()) + "/api/v1 (console at /)",
                      util::LogStream::Out);
    }
    void setReady(bool ready) override { server_->setReady(ready); }
    void stop() override { server_->stop(); }

private:
    std::unique_ptr<store::UserStore> users_;
    admin::Accounts accounts_;
    std::unique_ptr<admin::AdminServer> server_;
};

}  // namespace

std::unique_ptr<AdminService> startAdmin(core::Engine& engine, const config::EngineConfig& config) {
    if (config.admin.port == 0) return nullptr;
    try {
        return std::make_unique<Service>(engine, config);
    } catch (const std::exception& e) {
        util::logLine(util::LogLevel::Error,
                      std::string("junction: admin API not started: ") + e.what() + " (the channels run without it)");
        return nullptr;
    }
}

}  // namespace junction::app
