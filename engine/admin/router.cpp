// The admin API's router (router.h): pattern matching by segments and the
// OpenAPI document written from the route table.
#include "engine/admin/router.h"

#include <set>
#include <stdexcept>

#include "engine/admin/json_writer.h"

namespace junction::admin {

const char* toString(Role r) {
    switch (r) {
        case Role::Public: return "public";
        case Role::Viewer: return "viewer";
        case Role::Operator: return "operator";
        case Role::Admin: return "admin";
    }
    return "public";
}

std::optional<Role> parseRole(std::string_view s) {
    if (s == "viewer") return Role::Viewer;
    if (s == "operator") return Role::Operator;
    if (s == "admin") return Role::Admin;
    return std::nullopt;
}

std::vector<std::string> pathSegments(std::string_view path) {
    std::vector<std::string> out;
    if (path.empty() || path.front() != '/') throw ApiError(400, "a path starts with /");
    std::size_t at = 1;
    if (path.size() == 1) return out;
    for (;;) {
        std::size_t slash = path.find('/', at);
        std::string_view seg = path.substr(at, slash == std::string_view::npos ? std::string_view::npos : slash - at);
        if (seg.empty() || seg == "." || seg == "..")
            throw ApiError(400, "the path has an empty, '.' or '..' segment");
        out.emplace_back(seg);
        if (slash == std::string_view::npos) break;
        at = slash + 1;
    }
    return out;
}

namespace {

bool isParam(const std::string& seg) { return seg.size() > 2 && seg.front() == '{' && seg.back() == '}'; }

bool matches(const std::vector<std::string>& pattern, const std::vector<std::string>& segs,
             std::map<std::string, std::string>* params) {
    if (pattern.size() != segs.size()) return false;
    for (std::size_t i = 0; i < segs.size(); ++i) {
        if (isParam(pattern[i])) {
            if (params) (*params)[pattern[i].substr(1, pattern[i].size() - 2)] = segs[i];
        } else if (pattern[i] != segs[i]) {
            return false;
        }
    }
    return true;
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

const char* reason(int status) {
    switch (status) {
        case 200: return "OK";
        case 201: return "Created";
        case 202: return "Accepted";
        case 204: return "No content";
        case 400: return "Bad request: malformed JSON, unknown or missing fields, wrong types";
        case 401: return "No or wrong credentials";
        case 403: return "The user's role is below the route's";
        case 404: return "Not found";
        case 409: return "Conflict with the current state";
        case 413: return "Body too large";
        case 422: return "The channel file or YAML is invalid (file:line:column)";
        case 429: return "Too many failed logins";
    }
    return "Answer";
}

// "post" + the path's words: POST /api/v1/channels/{name}/stop → postChannelsNameStop.
std::string operationId(const Route& r) {
    std::string id = lower(r.method);
    for (const auto& seg : pathSegments(r.pattern)) {
        if (seg == "api" || seg == "v1") continue;
        bool start = true;
        for (char c : seg) {
            if (c == '{' || c == '}') continue;
            if (c == '-' || c == '.' || c == '_') {
                start = true;
                continue;
            }
            id += start ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
            start = false;
        }
    }
    return id;
}

}  // namespace

void Router::add(Route route) {
    pathSegments(route.pattern);  // a well-formed pattern
    for (const auto& r : routes_)
        if (r.method == route.method && r.pattern == route.pattern)
            throw std::logic_error("route " + route.method + " " + route.pattern + " added twice");
    routes_.push_back(std::move(route));
}

void Router::add(std::vector<Route> routes) {
    for (auto& r : routes) add(std::move(r));
}

Router::Match Router::match(std::string_view method, std::string_view path) const {
    auto segs = pathSegments(path);
    Match m;
    // A literal segment wins over a {param} one (".../channels/redeploy" before ".../channels/{name}").
    int best = -1;
    for (const auto& r : routes_) {
        auto pattern = pathSegments(r.pattern);
        std::map<std::string, std::string> params;
        if (!matches(pattern, segs, &params)) continue;
        if (r.method != method) {
            m.otherMethod = true;
            continue;
        }
        int literal = 0;
        for (const auto& s : pattern) literal += isParam(s) ? 0 : 1;
        if (literal > best) {
            best = literal;
            m.route = &r;
            m.path = std::move(params);
        }
    }
    if (m.route) m.otherMethod = false;
    return m;
}

std::string Router::openApi(const std::string& version) const {
    JsonWriter w;
    w.beginObject().field("openapi", "3.0.3");
    w.key("info")
        .beginObject()
        .field("title", "Junction admin API")
        .field("version", version)
        .field("description", "Channels, messages, statistics, worklist and users of a running Junction engine. "
                              "Every route but /health and /ready needs HTTP basic credentials or a bearer token.")
        .endObject();
    w.key("components").beginObject();
    w.key("securitySchemes")
        .beginObject()
        .key("basic").beginObject().field("type", "http").field("scheme", "basic").endObject()
        .key("bearer").beginObject().field("type", "http").field("scheme", "bearer").endObject()
        .endObject();
    w.key("schemas").beginObject().key("Error");
    w.raw(object({{"error", string("what was wrong"), true}}).json());
    w.endObject().endObject();

    // Paths in the order their first route was added.
    std::vector<std::string> order;
    std::set<std::string> seen;
    for (const auto& r : routes_)
        if (seen.insert(r.pattern).second) order.push_back(r.pattern);
    w.key("paths").beginObject();
    for (const auto& pattern : order) {
        w.key(pattern).beginObject();
        for (const auto& r : routes_) {
            if (r.pattern != pattern) continue;
            w.key(lower(r.method)).beginObject();
            w.field("operationId", operationId(r)).field("summary", r.summary);
            w.key("tags").beginArray().value(r.area).endArray();
            w.field("x-junction-role", toString(r.role));
            w.key("security").beginArray();
            if (r.role != Role::Public) {
                w.beginObject().key("basic").beginArray().endArray().endObject();
                w.beginObject().key("bearer").beginArray().endArray().endObject();
            }
            w.endArray();
            w.key("parameters").beginArray();
            for (const auto& seg : pathSegments(r.pattern)) {
                if (!isParam(seg)) continue;
                w.beginObject()
                    .field("name", seg.substr(1, seg.size() - 2))
                    .field("in", "path")
                    .field("required", true)
                    .key("schema")
                    .raw(string().json())
                    .endObject();
            }
            for (const auto& p : r.query.properties) {
                w.beginObject().field("name", p.name).field("in", "query").field("required", p.required);
                if (!p.schema.description.empty()) w.field("description", p.schema.description);
                w.key("schema").raw(p.schema.json()).endObject();
            }
            w.endArray();
            if (r.request) {
                w.key("requestBody").beginObject().field("required", !r.bodyOptional).key("content").beginObject();
                w.key("application/json").beginObject().key("schema").raw(r.request->json()).endObject();
                w.endObject().endObject();
            }
            w.key("responses").beginObject();
            w.key(std::to_string(r.status)).beginObject().field("description", reason(r.status));
            if (r.status != 204) {
                w.key("content").beginObject().key(r.contentType).beginObject();
                if (r.contentType == "application/json") w.key("schema").raw(r.response.json());
                else w.key("schema").raw(string(r.response.description).json());
                w.endObject().endObject();
            }
            w.endObject();
            std::set<int> errors(r.errors.begin(), r.errors.end());
            errors.insert(400);
            if (r.role != Role::Public) errors.insert({401, 403, 429});
            if (r.request) errors.insert(413);
            for (int e : errors) {
                w.key(std::to_string(e)).beginObject().field("description", reason(e));
                w.key("content").beginObject().key("application/json").beginObject();
                w.key("schema").beginObject().field("$ref", "#/components/schemas/Error").endObject();
                w.endObject().endObject().endObject();
            }
            w.endObject();  // responses
            w.endObject();  // operation
        }
        w.endObject();
    }
    w.endObject().endObject();
    return w.str();
}

}  // namespace junction::admin
