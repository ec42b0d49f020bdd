// An HTTP/1.1 client for the connectors and scripts that talk to REST APIs
// (the `http` and `orthanc` connectors, the Lua `orthanc` and `http` modules):
// keep-alive, connect and read timeouts, TLS with a CA and verification, a
// bound on the response size. No POCO types here.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace junction::http {

struct Header {
    std::string name, value;
};

// The value of `name` (case-insensitive) in `headers`, "" when absent.
std::string headerValue(const std::vector<Header>& headers, std::string_view name);

struct TlsOptions {
    std::string ca;      // PEM file of the CAs to trust ("" = the system's)
    bool verify = true;  // check the server's certificate and name
    std::string cert, key;  // client certificate (optional)
};

struct ClientOptions {
    std::chrono::milliseconds connectTimeout{5000};
    std::chrono::milliseconds timeout{30000};  // for each send and each read
    std::size_t maxResponseBytes = 256u << 20;
    TlsOptions tls;
};

struct Request {
    std::string method = "GET";
    std::string url;  // http://host:port/path?query or https://...
    std::vector<Header> headers;
    std::string body;
    std::chrono::milliseconds timeout{0};  // for this request (0: the client's)
};

struct Response {
    int status = 0;
    std::string reason;
    std::vector<Header> headers;
    std::string body;
    std::string header(std::string_view name) const { return headerValue(headers, name); }
};

// A request's outcome: a response (any status), or no response (`error` says
// why: refused, timed out, TLS failure, bad URL, response too large).
struct Result {
    bool answered = false;
    Response response;
    std::string error;
};

// What an answer means for a delivery: 2xx sent; 429, 5xx and no answer are
// tried again; anything else (4xx, an unexpected 1xx/3xx) is an error.
enum class Outcome { Sent, Retry, Error };
Outcome classify(const Result& r);

class Client {
public:
    explicit Client(ClientOptions options = {});
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Sends `request` and reads the whole answer. A kept-alive connection the
    // server has closed meanwhile is reopened once. Safe to call from several
    // threads (one request at a time).
    Result send(const Request& request);
    // Closes the kept connection now (a later send opens a new one).
    void reset();
    // From another thread: a send waiting for its answer fails now ("aborted")
    // instead of at its timeout. A later send opens a new connection.
    void abort();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// "Basic base64(user:password)".
std::string basicAuth(const std::string& user, const std::string& password);

// A multipart body (RFC 2046): each part's headers and bytes, between
// boundary lines. Returns the body; `boundary` receives the random boundary
// for the Content-Type header ("multipart/related; type=\"application/dicom\";
// boundary=..." for STOW-RS).
struct BodyPart {
    std::vector<Header> headers;
    std::string_view data;
};
std::string multipartBody(const std::vector<BodyPart>& parts, std::string* boundary);

// A multipart/form-data body: parts with a name, an optional file name and
// content type, and their bytes ("multipart/form-data; boundary=...").
struct FormPart {
    std::string name;
    std::string data;
    std::string filename;     // "" for a plain field
    std::string contentType;  // "" for a plain field
};
std::string multipartBody(const std::vector<FormPart>& parts, std::string* boundary);

// Percent-encodes `s` for a query string value or a path segment.
std::string urlEncode(std::string_view s);

}  // namespace junction::http
