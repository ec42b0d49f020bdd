// Users, tokens, authentication and the failed-login limit of the admin API
// (accounts.h).
#include "engine/admin/accounts.h"

#include <algorithm>

namespace junction::admin {

std::chrono::seconds FailureLimiter::refusedFor(const std::string& key, int limit, std::chrono::seconds window,
                                                Clock::time_point now) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = failures_.find(key);
    if (it == failures_.end()) return std::chrono::seconds(0);
    auto& times = it->second;
    while (!times.empty() && now - times.front() >= window) times.pop_front();
    if (times.empty()) {
        failures_.erase(it);
        return std::chrono::seconds(0);
    }
    if (static_cast<int>(times.size()) < limit) return std::chrono::seconds(0);
    auto left = std::chrono::ceil<std::chrono::seconds>(times.front() + window - now);
    return std::max(left, std::chrono::seconds(1));
}

void FailureLimiter::fail(const std::string& key, Clock::time_point now) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& times = failures_[key];
    times.push_back(now);
    if (times.size() > 1000) times.pop_front();  // more than any limit
    // Keys of addresses that came once and left: dropped now and then.
    if (++sinceSweep_ >= 10000) {
        sinceSweep_ = 0;
        for (auto i = failures_.begin(); i != failures_.end();)
            i = !i->second.empty() && now - i->second.back() < std::chrono::hours(24) ? std::next(i) : failures_.erase(i);
    }
}

void FailureLimiter::clear(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    failures_.erase(key);
}

namespace {

void checkName(const std::string& name) {
    bool ok = !name.empty() && name.size() <= 64;
    for (char c : name)
        ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '@' || c == '-');
    if (!ok) throw ApiError(400, "a user name is 1 to 64 of the characters A-Z a-z 0-9 . _ @ -");
}

std::string checkRole(const std::string& role) {
    auto r = parseRole(role);
    if (!r) throw ApiError(400, "role '" + role + "' is none of admin, operator, viewer");
    return toString(*r);
}

// The host of "ip:port" or "[ipv6]:port" (an address without a port as it is).
std::string host(const std::string& address) {
    if (!address.empty() && address.front() == '[') {
        auto end = address.find(']');
        return end == std::string::npos ? address : address.substr(1, end - 1);
    }
    auto colon = address.rfind(':');
    return colon != std::string::npos && address.find(':') == colon ? address.substr(0, colon) : address;
}

}  // namespace

Accounts::Accounts(store::UserStore& store, int iterations, LoginLimits limits)
    : store_(store),
      iterations_(iterations),
      limits_(limits),
      cacheKey_(newToken()),
      unknownUserHash_("pbkdf2-sha256$" + std::to_string(iterations) + "$AAAAAAAAAAAAAAAAAAAAAA==$" +
                       "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=") {}

void Accounts::checkPassword(const std::string& password) const {
    if (password.size() < 8) throw ApiError(400, "a password has at least 8 characters");
    if (password.size() > 1024) throw ApiError(400, "a password has at most 1024 characters");
}

std::size_t Accounts::admins() {
    auto all = store_.users();
    return static_cast<std::size_t>(std::count_if(all.begin(), all.end(), [](const auto& u) { return u.role == "admin"; }));
}

void Accounts::addUser(const std::string& name, const std::string& role, const std::string& password) {
    checkName(name);
    std::string r = checkRole(role);
    checkPassword(password);
    if (!store_.addUser({name, r, hashPassword(password, iterations_), {}}))
        throw ApiError(409, "user '" + name + "' exists already");
}

void Accounts::setPassword(const std::string& name, const std::string& password) {
    checkPassword(password);
    if (!store_.setPasswordHash(name, hashPassword(password, iterations_)))
        throw ApiError(404, "no user '" + name + "'");
}

void Accounts::setRole(const std::string& name, const std::string& role) {
    std::string r = checkRole(role);
    auto u = store_.user(name);
    if (!u) throw ApiError(404, "no user '" + name + "'");
    if (u->role == "admin" && r != "admin" && admins() <= 1)
        throw ApiError(409, "'" + name + "' is the last admin; make another user admin first");
    store_.setRole(name, r);
}

void Accounts::removeUser(const std::string& name) {
    auto u = store_.user(name);
    if (!u) throw ApiError(404, "no user '" + name + "'");
    if (u->role == "admin" && admins() <= 1)
        throw ApiError(409, "'" + name + "' is the last admin; make another user admin first");
    store_.removeUser(name);
    std::lock_guard<std::mutex> lock(cacheMu_);
    verified_.erase(name);
}

std::optional<std::string> Accounts::ensureAdmin(const std::string& password) {
    if (!store_.users().empty()) return std::nullopt;
    std::string pw = password.empty() ? newPassword() : password;
    addUser("admin", "admin", pw);
    if (password.empty()) return pw;
    return std::nullopt;
}

std::pair<std::int64_t, std::string> Accounts::createToken(const std::string& user, const std::string& label) {
    if (!store_.user(user)) throw ApiError(404, "no user '" + user + "'");
    if (label.size() > 200) throw ApiError(400, "a token's label has at most 200 characters");
    std::string token = newToken();
    return {store_.addToken(user, label, sha256Hex(token)), token};
}

bool Accounts::passwordMatches(const store::UserRecord& user, const std::string& password) {
    const std::string digest = sha256Hex(cacheKey_ + password);
    {
        std::lock_guard<std::mutex> lock(cacheMu_);
        auto it = verified_.find(user.name);
        if (it != verified_.end() && it->second.first == user.passwordHash && sameSecret(it->second.second, digest))
            return true;
    }
    if (!verifyPassword(password, user.passwordHash)) return false;
    std::lock_guard<std::mutex> lock(cacheMu_);
    verified_[user.name] = {user.passwordHash, digest};
    return true;
}

Accounts::Outcome Accounts::authenticate(const std::string& authorization, const std::string& address,
                                         FailureLimiter::Clock::time_point now) {
    using Kind = Outcome::Kind;
    Outcome out;
    if (authorization.empty()) return out;
    const std::string addrKey = "address " + host(address);
    auto limited = [&](std::chrono::seconds s) {
        out.kind = Kind::Limited;
        out.retryAfter = s;
        return out;
    };
    if (auto s = limiter_.refusedFor(addrKey, limits_.perAddress, limits_.window, now); s.count() > 0) return limited(s);
    auto space = authorization.find(' ');
    std::string scheme = authorization.substr(0, space);
    std::string credentials = space == std::string::npos ? "" : authorization.substr(space + 1);
    for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.kind = Kind::Invalid;
    if (scheme == "bearer") {
        auto t = credentials.empty() ? std::nullopt : store_.useToken(sha256Hex(credentials));
        auto u = t ? store_.user(t->user) : std::nullopt;
        auto role = u ? parseRole(u->role) : std::nullopt;
        if (!role) {
            limiter_.fail(addrKey, now);
            return out;
        }
        out.kind = Kind::Ok;
        out.principal = {u->name, *role, t->id};
        return out;
    }
    if (scheme != "basic") return out;
    std::string decoded;
    if (!decodeBase64(credentials, decoded) || decoded.find(':') == std::string::npos) {
        limiter_.fail(addrKey, now);
        return out;
    }
    return checkLogin(decoded.substr(0, decoded.find(':')), decoded.substr(decoded.find(':') + 1), addrKey, now);
}

Accounts::Outcome Accounts::login(const std::string& name, const std::string& password, const std::string& address,
                                  FailureLimiter::Clock::time_point now) {
    const std::string addrKey = "address " + host(address);
    if (auto s = limiter_.refusedFor(addrKey, limits_.perAddress, limits_.window, now); s.count() > 0)
        return {Outcome::Kind::Limited, {}, s};
    return checkLogin(name, password, addrKey, now);
}

Accounts::Outcome Accounts::checkLogin(const std::string& name, const std::string& password, const std::string& addrKey,
                                       FailureLimiter::Clock::time_point now) {
    using Kind = Outcome::Kind;
    const std::string userKey = "user " + name;
    if (auto s = limiter_.refusedFor(userKey, limits_.perUser, limits_.window, now); s.count() > 0)
        return {Kind::Limited, {}, s};
    auto u = store_.user(name);
    auto role = u ? parseRole(u->role) : std::nullopt;
    // An unknown name costs the same PBKDF2 run as a wrong password: timing tells no names.
    if (!u) verifyPassword(password, unknownUserHash_);
    if (!role || !passwordMatches(*u, password)) {
        limiter_.fail(userKey, now);
        limiter_.fail(addrKey, now);
        return {Kind::Invalid, {}, {}};
    }
    limiter_.clear(userKey);
    return {Kind::Ok, {u->name, *role, 0}, {}};
}

}  // namespace junction::admin
