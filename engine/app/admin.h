// The admin API at `junction run`: the accounts in the store's database, the
// first admin account, and the server on the configured port.
#pragma once

#include <memory>

#include "engine/config/engine_config.h"

namespace junction::core {
class Engine;
}

namespace junction::app {

class AdminService {
public:
    virtual ~AdminService() = default;
    // /ready answers 200 once this is true.
    virtual void setReady(bool ready) = 0;
    virtual void stop() = 0;
};

// Starts the admin API for `engine` as `config.admin` says; nothing when its
// port is 0. The first start (no user yet) makes the account `admin` with the
// password in JUNCTION_ADMIN_PASSWORD, or a generated one printed once. A port
// that cannot be opened is logged: the engine runs on without the API.
std::unique_ptr<AdminService> startAdmin(core::Engine& engine, const config::EngineConfig& config);

}  // namespace junction::app
