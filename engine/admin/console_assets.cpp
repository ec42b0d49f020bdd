// Serving the console's built-in files (console_assets.h).
#include "engine/admin/console_assets.h"

#include <string>

namespace junction::admin {

// Written by console/embed.cmake.
extern const ConsoleAsset kConsoleAssets[];
extern const std::size_t kConsoleAssetCount;

const ConsoleAsset* findConsoleAsset(std::string_view name) {
    for (std::size_t i = 0; i < kConsoleAssetCount; ++i)
        if (kConsoleAssets[i].name == name) return &kConsoleAssets[i];
    return nullptr;
}

std::optional<http::ServerResponse> consoleResponse(const http::ServerRequest& request) {
    if (request.method != "GET") return std::nullopt;
    constexpr std::string_view prefix = "/console/";
    std::string_view path = request.path;
    const ConsoleAsset* asset = path == "/" ? findConsoleAsset("index.html")
                                : path.substr(0, prefix.size()) == prefix ? findConsoleAsset(path.substr(prefix.size()))
                                                                           : nullptr;
    if (!asset) return std::nullopt;
    std::vector<http::Header> headers{
        {"ETag", std::string(asset->etag)},
        {"Cache-Control", "no-cache"},
        {"Content-Security-Policy",
         "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"},
        {"X-Content-Type-Options", "nosniff"},
        {"Referrer-Policy", "no-referrer"},
    };
    if (request.header("If-None-Match") == asset->etag) return http::ServerResponse{304, "", std::move(headers), ""};
    return http::ServerResponse{200, std::string(asset->contentType), std::move(headers), std::string(asset->body)};
}

}  // namespace junction::admin
