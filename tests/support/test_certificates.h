// Certificates for the TLS tests, made with the openssl command in a
// temporary folder: `script` runs there with two shell functions,
//   ca NAME CN               a self-signed CA (NAME.pem, NAME.key)
//   issue NAME CN CA EXT     a certificate NAME.pem/.key signed by CA, with the
//                            extensions EXT (printf text, e.g. "subjectAltName=IP:127.0.0.1\n")
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace test_support {

class Certificates {
public:
    explicit Certificates(const std::string& script) {
        char dir[] = "/tmp/junction-tls-XXXXXX";
        if (!::mkdtemp(dir)) throw std::runtime_error("mkdtemp failed");
        dir_ = dir;
        std::string run = "cd " + dir_ + R"( && {
set -e
ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout $1.key -out $1.pem -subj "/CN=$2"; }
issue() {
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.csr -subj "/CN=$2"
  printf "$4" > $1.ext
  openssl x509 -req -in $1.csr -CA $3.pem -CAkey $3.key -CAcreateserial -days 2 -extfile $1.ext -out $1.pem
}
)" + script + "\n} >/dev/null 2>&1";
        if (std::system(run.c_str()) != 0) throw std::runtime_error("openssl could not make the test certificates");
    }
    ~Certificates() {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    Certificates(const Certificates&) = delete;
    Certificates& operator=(const Certificates&) = delete;
    // The path of a file made by the script.
    std::string operator()(const std::string& file) const { return dir_ + "/" + file; }

private:
    std::string dir_;
};

}  // namespace test_support
