// The Orthanc servers named in junction.yaml (`orthanc: { main: { url,
// username, password, timeout, tls } }`): REST calls with their credentials,
// over a small pool of kept-alive connections, and errors that name the
// server. Shared by the `orthanc` connectors and the Lua `orthanc` module.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/http/client.h"

namespace junction::orthanc {

struct ServerOptions {
    std::string name;  // as named in junction.yaml
    std::string url;   // e.g. http://127.0.0.1:8042 (no trailing slash needed)
    std::string username, password;  // empty: no authentication
    std::chrono::milliseconds timeout{30000};
    http::TlsOptions tls;
};

class Server {
public:
    explicit Server(ServerOptions options);
    ~Server();
    const ServerOptions& options() const { return o_; }

    // One REST call; `path` starts with '/' ("/system", "/changes?since=3").
    // `timeout` bounds this call below the server's own (0: the server's).
    http::Result call(const std::string& method, const std::string& path, const std::string& body = {},
                      const std::string& contentType = {}, std::chrono::milliseconds timeout = {},
                      const std::string& accept = "application/json");
    // "orthanc server 'main' (URL): GET /x: 404 Not Found" — for errors and logs.
    std::string describe(const std::string& method, const std::string& path, const http::Result& r) const;
    // Checks the URL and credentials (GET /system): "" when they work, else
    // why not ("... wrong username or password", "... connection refused").
    std::string check();

private:
    ServerOptions o_;
    std::string base_, auth_;
    std::mutex m_;
    std::vector<std::unique_ptr<http::Client>> idle_;
};

// Every configured server, by name.
class Servers {
public:
    void add(ServerOptions options);
    Server* find(const std::string& name) const;
    std::vector<std::string> names() const;
    bool empty() const { return servers_.empty(); }

private:
    std::map<std::string, std::unique_ptr<Server>> servers_;
};

}  // namespace junction::orthanc
