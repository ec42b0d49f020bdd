// The CLI's side of the admin API: where the running engine's API is (from
// junction.yaml or --url), the credentials to send (JUNCTION_TOKEN, or a user
// and password), and one call that returns the answer's JSON or says what
// went wrong.
#pragma once

#include <optional>
#include <string>

#include "engine/app/commands.h"
#include "engine/http/client.h"

namespace junction::app {

struct ApiOptions {
    std::optional<std::string> config;  // --config FILE
    std::string url;                    // --url: http(s)://host:port
    std::string user;                   // --user, or JUNCTION_USER
    std::string ca;                     // --ca: PEM file of the CA to trust
    bool insecure = false;              // --insecure: no certificate check
};

// Takes the options above out of `args` (leaving the others); false, with a
// message on stderr, when one lacks its value.
bool takeApiOptions(Args& args, ApiOptions& out, const char* cmd);

class ApiClient {
public:
    // Throws std::runtime_error when the config cannot be read or no
    // credentials are given.
    explicit ApiClient(const ApiOptions& options);
    // The answer to `method path` (with a JSON body when not empty). Throws
    // std::runtime_error naming the API's error ({"error": ...}) or why there
    // was no answer.
    http::Response call(const std::string& method, const std::string& path, const std::string& body = {});
    const std::string& url() const { return url_; }

private:
    std::string url_;
    std::string authorization_;
    http::ClientOptions clientOptions_;
};

// A password typed at the terminal (not echoed), or the first line of stdin
// when it is not a terminal.
std::string readPassword(const std::string& prompt);

}  // namespace junction::app
