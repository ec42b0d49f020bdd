// The admin API's routes: a table per area (channels, messages, stats,
// worklist, users) added to one router, which finds the route of a request
// (method and path pattern with {name} segments) and writes the OpenAPI
// document from the same table.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "engine/admin/api.h"

namespace junction::admin {

class Router {
public:
    // Adds a route; throws std::logic_error for a method and pattern already added.
    void add(Route route);
    void add(std::vector<Route> routes);
    const std::vector<Route>& routes() const { return routes_; }

    struct Match {
        const Route* route = nullptr;              // null: no route
        std::map<std::string, std::string> path;   // the {name} segments
        bool otherMethod = false;                  // the path has routes, not for this method (405)
    };
    // The route of `method` and `path`. Throws ApiError 400 for a path with
    // empty, "." or ".." segments.
    Match match(std::string_view method, std::string_view path) const;

    // The OpenAPI 3.0 document of every route.
    std::string openApi(const std::string& version) const;

private:
    std::vector<Route> routes_;
};

// The segments of a path ("/a/b" → a, b); throws ApiError 400 for empty,
// "." or ".." segments.
std::vector<std::string> pathSegments(std::string_view path);

}  // namespace junction::admin
