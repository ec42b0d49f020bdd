// Password hashes, tokens and digests of the admin API (password.h), with OpenSSL.
#include "engine/admin/password.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <charconv>
#include <stdexcept>
#include <vector>

namespace junction::admin {

namespace {

std::string randomBytes(std::size_t n) {
    std::string out(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
        throw std::runtime_error("no random bytes from OpenSSL");
    return out;
}

std::string base64(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string base64url(std::string_view bytes) {
    std::string s = base64(bytes);
    while (!s.empty() && s.back() == '=') s.pop_back();
    for (auto& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
    return s;
}

}  // namespace

bool decodeBase64(std::string_view text, std::string& out) {
    if (text.size() % 4 != 0) return false;
    out.assign(3 * text.size() / 4 + 1, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
    if (n < 0) return false;
    std::size_t len = static_cast<std::size_t>(n);
    for (std::size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) --len;  // EVP_DecodeBlock keeps padding's zeros
    out.resize(len);
    return true;
}

namespace {

std::string pbkdf2(std::string_view password, std::string_view salt, int iterations, std::size_t length) {
    std::string out(length, '\0');
    if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                          reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()), iterations,
                          EVP_sha256(), static_cast<int>(length), reinterpret_cast<unsigned char*>(out.data())) != 1)
        throw std::runtime_error("PBKDF2 failed in OpenSSL");
    return out;
}

}  // namespace

std::string hashPassword(std::string_view password, int iterations) {
    std::string salt = randomBytes(16);
    return "pbkdf2-sha256$" + std::to_string(iterations) + "$" + base64(salt) + "$" +
           base64(pbkdf2(password, salt, iterations, 32));
}

bool verifyPassword(std::string_view password, std::string_view stored) {
    std::vector<std::string_view> parts;
    for (std::size_t at = 0;;) {
        auto d = stored.find('$', at);
        parts.push_back(stored.substr(at, d == std::string_view::npos ? std::string_view::npos : d - at));
        if (d == std::string_view::npos) break;
        at = d + 1;
    }
    if (parts.size() != 4 || parts[0] != "pbkdf2-sha256") return false;
    int iterations = 0;
    auto [end, ec] = std::from_chars(parts[1].data(), parts[1].data() + parts[1].size(), iterations);
    if (ec != std::errc() || end != parts[1].data() + parts[1].size() || iterations < 1) return false;
    std::string salt, hash;
    if (!decodeBase64(parts[2], salt) || !decodeBase64(parts[3], hash) || hash.empty()) return false;
    return sameSecret(pbkdf2(password, salt, iterations, hash.size()), hash);
}

std::string newToken() { return "jt_" + base64url(randomBytes(32)); }

std::string newPassword() { return base64url(randomBytes(18)); }

std::string sha256Hex(std::string_view text) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(text.data(), text.size(), md, &n, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("SHA-256 failed in OpenSSL");
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < n; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 15];
    }
    return out;
}

bool sameSecret(std::string_view a, std::string_view b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace junction::admin
