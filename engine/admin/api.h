// The admin API's vocabulary: roles, routes, the request a handler gets, the
// answer it gives, and the error it throws for a 4xx. No POCO types here.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "engine/admin/schema.h"
#include "engine/http/server.h"

namespace junction::admin {

// What a route needs. Each role may do what the roles below it may.
enum class Role { Public, Viewer, Operator, Admin };
const char* toString(Role r);
std::optional<Role> parseRole(std::string_view s);  // "viewer", "operator", "admin"

// An answer other than success: its status and a text for {"error": ...}.
class ApiError : public std::runtime_error {
public:
    ApiError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
    int status() const { return status_; }

private:
    int status_;
};

// Who sent a request (after authentication).
struct Principal {
    std::string user;
    Role role = Role::Public;
    std::int64_t tokenId = 0;  // 0: by password (HTTP basic)
};

struct ApiRequest {
    const http::ServerRequest& http;
    Principal principal;
    std::map<std::string, std::string> path;  // {name} of the route's pattern → the segment
    Fields query;                             // checked against the route's query schema
    Fields body;                              // checked against the route's request schema
    const std::string& pathParam(const std::string& name) const { return path.at(name); }
};

struct ApiResponse {
    int status = 200;
    std::string body{};
    std::string contentType = "application/json";
    std::vector<http::Header> headers{};
};

struct Route {
    std::string method{};   // GET POST PUT DELETE
    std::string pattern{};  // "/api/v1/channels/{name}/stop"
    Role role = Role::Viewer;
    std::string area{};   // "channels", "messages", ... (the OpenAPI tag)
    std::string summary{};
    Schema query = object({});                 // query parameters (scalar properties)
    std::optional<Schema> request{};             // JSON body (an object of scalars), none: no body
    bool bodyOptional = false;                 // with `request`: the body may be left out (no fields)
    Schema response = object({});              // the success answer's JSON
    int status = 200;                          // the success status
    std::string contentType = "application/json";  // of the success answer
    std::vector<int> errors{};                 // 4xx statuses the handler itself may answer
    std::function<ApiResponse(const ApiRequest&)> handler{};
};

}  // namespace junction::admin
