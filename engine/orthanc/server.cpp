// Orthanc servers (server.h): authenticated REST calls over pooled clients.
#include "engine/orthanc/server.h"

#include <stdexcept>

namespace junction::orthanc {

Server::Server(ServerOptions options) : o_(std::move(options)) {
    base_ = o_.url;
    while (!base_.empty() && base_.back() == '/') base_.pop_back();
    if (!o_.username.empty() || !o_.password.empty()) auth_ = http::basicAuth(o_.username, o_.password);
}

Server::~Server() = default;

http::Result Server::call(const std::string& method, const std::string& path, const std::string& body,
                          const std::string& contentType, std::chrono::milliseconds timeout, const std::string& accept) {
    std::unique_ptr<http::Client> client;
    {
        std::lock_guard<std::mutex> lock(m_);
        if (!idle_.empty()) {
            client = std::move(idle_.back());
            idle_.pop_back();
        }
    }
    if (!client) {
        http::ClientOptions co;
        co.timeout = o_.timeout;
        co.connectTimeout = std::min(o_.timeout, std::chrono::milliseconds(5000));
        co.tls = o_.tls;
        client = std::make_unique<http::Client>(co);
    }
    http::Request r;
    r.method = method;
    r.url = base_ + path;
    if (!auth_.empty()) r.headers.push_back({"Authorization", auth_});
    if (!contentType.empty()) r.headers.push_back({"Content-Type", contentType});
    if (!accept.empty()) r.headers.push_back({"Accept", accept});
    r.body = body;
    if (timeout.count() > 0 && timeout < o_.timeout) r.timeout = timeout;
    http::Result res = client->send(r);
    std::lock_guard<std::mutex> lock(m_);
    if (idle_.size() < 8) idle_.push_back(std::move(client));
    return res;
}

std::string Server::describe(const std::string& method, const std::string& path, const http::Result& r) const {
    std::string text = "orthanc server '" + o_.name + "' (" + base_ + "): " + method + " " + path + ": ";
    if (!r.answered) {
        // The client's error names the URL already: keep only the reason.
        auto colon = r.error.rfind(": ");
        return text + (colon == std::string::npos ? r.error : r.error.substr(colon + 2));
    }
    text += std::to_string(r.response.status) + " " + r.response.reason;
    if (r.response.status == 401) text += " (wrong username or password)";
    else if (r.response.status == 403) text += " (the user may not do this)";
    return text;
}

std::string Server::check() {
    http::Result r = call("GET", "/system");
    if (r.answered && r.response.status == 200 && r.response.body.find("\"Version\"") != std::string::npos) return {};
    if (r.answered && r.response.status == 200) return "orthanc server '" + o_.name + "' (" + base_ + "): GET /system: not an Orthanc answer";
    return describe("GET", "/system", r);
}

void Servers::add(ServerOptions options) {
    std::string name = options.name;
    if (!servers_.emplace(name, std::make_unique<Server>(std::move(options))).second)
        throw std::invalid_argument("orthanc server '" + name + "' named twice");
}

Server* Servers::find(const std::string& name) const {
    auto it = servers_.find(name);
    return it == servers_.end() ? nullptr : it->second.get();
}

std::vector<std::string> Servers::names() const {
    std::vector<std::string> out;
    for (const auto& [k, v] : servers_) out.push_back(k);
    return out;
}

}  // namespace junction::orthanc
