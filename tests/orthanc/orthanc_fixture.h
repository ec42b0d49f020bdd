// A real Orthanc (the Debian package) for the tests of engine/orthanc and the
// orthanc connectors: started on free loopback ports with a temporary
// configuration (a user, a short StableAge, the DICOMweb plugin), stopped at
// the end.
#pragma once

#include <Poco/Net/ServerSocket.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "engine/http/client.h"

namespace orthanc_test {

inline int freePort() {
    Poco::Net::ServerSocket s(Poco::Net::SocketAddress("127.0.0.1", 0));
    return s.address().port();
}

class OrthancProcess {
public:
    explicit OrthancProcess(std::string user = "junction", std::string password = "secret", int stableAge = 2)
        : user_(std::move(user)), password_(std::move(password)) {
        char tmpl[] = "/tmp/junction-orthanc-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
        dir_ = tmpl;
        httpPort_ = freePort();
        dicomPort_ = freePort();
        std::ofstream(dir_ + "/orthanc.json")
            << "{\"Name\": \"test\", \"StorageDirectory\": \"" << dir_ << "/storage\", \"IndexDirectory\": \"" << dir_
            << "/index\", \"HttpPort\": " << httpPort_ << ", \"DicomPort\": " << dicomPort_
            << ", \"DicomAet\": \"ORTHANC\", \"RemoteAccessAllowed\": false, \"AuthenticationEnabled\": true,"
               " \"RegisteredUsers\": {\""
            << user_ << "\": \"" << password_ << "\"}, \"StableAge\": " << stableAge
            << ", \"Plugins\": [\"/usr/share/orthanc/plugins/libOrthancDicomWeb.so\"],"
               " \"DicomWeb\": {\"Enable\": true, \"Root\": \"/dicom-web/\"}, \"HttpThreadsCount\": 10}";
        start();
    }
    ~OrthancProcess() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    void start() {
        pid_ = ::fork();
        if (pid_ == 0) {
            std::string log = dir_ + "/orthanc.log";
            FILE* f = std::freopen(log.c_str(), "a", stdout);
            (void)f;
            ::dup2(::fileno(stdout), 2);
            std::string config = dir_ + "/orthanc.json";
            ::execl("/usr/sbin/Orthanc", "Orthanc", "--no-jobs", config.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        junction::http::Client c;
        for (int i = 0; i < 300; ++i) {
            auto r = c.send({"GET", url() + "/system", {{"Authorization", junction::http::basicAuth(user_, password_)}}, {}});
            if (r.answered && r.response.status == 200) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        throw std::runtime_error("Orthanc did not start (see " + dir_ + "/orthanc.log)");
    }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(httpPort_); }
    const std::string& user() const { return user_; }
    const std::string& password() const { return password_; }
    int dicomPort() const { return dicomPort_; }

private:
    std::string user_, password_, dir_;
    int httpPort_ = 0, dicomPort_ = 0;
    pid_t pid_ = -1;
};

}  // namespace orthanc_test
