// Secrets of the admin API: passwords hashed with PBKDF2-HMAC-SHA256 (a
// random salt per password, the iteration count kept in the hash so that it
// can grow), random bearer tokens kept as their SHA-256, and comparisons in
// constant time. OpenSSL underneath; none of its types here.
#pragma once

#include <string>
#include <string_view>

namespace junction::admin {

// OWASP's 2023 figure for PBKDF2-HMAC-SHA256.
inline constexpr int kPasswordIterations = 600000;

// "pbkdf2-sha256$<iterations>$<salt, base64>$<hash, base64>"
std::string hashPassword(std::string_view password, int iterations = kPasswordIterations);
// Whether `password` is the one `stored` (a hashPassword result) was made from.
bool verifyPassword(std::string_view password, std::string_view stored);

// A new bearer token: "jt_" and 43 characters of base64url (32 random bytes).
std::string newToken();
// A new password for a generated account: 24 characters of base64url.
std::string newPassword();
// SHA-256 of `text`, in lowercase hex (how tokens are kept).
std::string sha256Hex(std::string_view text);
// Decodes standard base64 (with padding); false when `text` is not base64.
bool decodeBase64(std::string_view text, std::string& out);
// Equality without an early exit (so that timing tells nothing).
bool sameSecret(std::string_view a, std::string_view b);

}  // namespace junction::admin
