// The console's files (engine/admin/console/), built into the binary: CMake
// writes their bytes into a generated source (console/embed.cmake) at build
// time, so that the engine serves them without a file on disk.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "engine/http/server.h"

namespace junction::admin {

struct ConsoleAsset {
    std::string_view name;         // "index.html", "console.js", ...
    std::string_view contentType;  // "text/html; charset=utf-8", ...
    std::string_view etag;         // "\"<sha-256 of the bytes, first 16 hex>\""
    std::string_view body;
};

// The asset of that name; null when there is none.
const ConsoleAsset* findConsoleAsset(std::string_view name);

// GET / (the console's page) and GET /console/<name>, with the content type,
// an ETag (304 for a matching If-None-Match), revalidation on every load and
// a Content-Security-Policy of 'self' only; nothing for any other request.
std::optional<http::ServerResponse> consoleResponse(const http::ServerRequest& request);

}  // namespace junction::admin
