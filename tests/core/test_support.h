// Helpers for engine tests: temporary directories, free ports, an in-test
// MLLP peer that records what it receives.
#pragma once

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "connectors/mllp/framing.h"
#include "tests/support/msh10.h"

namespace junction::testing {

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        static std::atomic<int> n{0};
        path = std::filesystem::temp_directory_path() /
               ("junction-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    std::string str() const { return path.string(); }
    std::string write(const std::string& name, const std::string& text) const {
        auto p = path / name;
        std::filesystem::create_directories(p.parent_path());
        std::ofstream(p, std::ios::binary) << text;
        return p.string();
    }
};

inline std::string readFile(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

inline int freePort() {
    Poco::Net::ServerSocket s(Poco::Net::SocketAddress("127.0.0.1", 0));
    return s.address().port();
}

// Waits until `cond` holds or `timeout` passes; returns cond().
inline bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return cond();
}

// An MLLP peer on loopback: records every message and answers with `reply`
// (by default aa(), an AA echoing MSH-10). Set `silent` to accept and never answer.
class MllpPeer {
public:
    std::function<std::string(const std::string&)> reply;
    std::atomic<bool> silent{false};

    // `reply` given here is in place before the first connection is accepted.
    explicit MllpPeer(int port = 0, std::function<std::string(const std::string&)> answer = {})
        : reply(std::move(answer)), socket_(Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(port))) {
        thread_ = std::thread([this] { acceptLoop(); });
    }
    // The default answer: an AA echoing the message's MSH-10.
    static std::string aa(const std::string& msg) {
        return "MSH|^~\\&|PEER|PEER|||20260101000000||ACK|A" + controlId(msg) + "|P|2.5.1\rMSA|AA|" + controlId(msg) + "\r";
    }
    ~MllpPeer() {
        stop_ = true;
        socket_.close();
        if (thread_.joinable()) thread_.join();
        for (auto& t : conns_)
            if (t.joinable()) t.join();
    }
    int port() const { return socket_.address().port(); }
    std::vector<std::string> received() {
        std::lock_guard<std::mutex> lock(m_);
        return received_;
    }
    std::size_t count() {
        std::lock_guard<std::mutex> lock(m_);
        return received_.size();
    }
    std::size_t connections() const { return connections_.load(); }
    static std::string controlId(const std::string& msg) { return junction::testing::msh10(msg); }

private:
    void acceptLoop() {
        socket_.setReceiveTimeout(Poco::Timespan(0, 100000));
        while (!stop_) {
            try {
                Poco::Net::StreamSocket s = socket_.acceptConnection();
                connections_++;
                conns_.emplace_back([this, s]() mutable { serve(s); });
            } catch (...) {
            }
        }
    }
    void serve(Poco::Net::StreamSocket s) {
        mllp::FrameDecoder dec(64u << 20);
        char buf[65536];
        s.setReceiveTimeout(Poco::Timespan(0, 100000));
        // Each ACK leaves at once, not after the previous one's TCP ACK: with
        // Nagle on, a pipelined window waits a delayed ACK (40 ms) for its answers.
        s.setNoDelay(true);
        while (!stop_) {
            int n;
            try {
                n = s.receiveBytes(buf, sizeof buf);
            } catch (const Poco::TimeoutException&) {
                continue;
            } catch (...) {
                return;
            }
            if (n <= 0) return;
            dec.feed(buf, static_cast<std::size_t>(n));
            mllp::FrameDecoder::Event ev;
            while (dec.next(ev)) {
                if (ev.isError) return;
                {
                    std::lock_guard<std::mutex> lock(m_);
                    received_.push_back(ev.payload);
                }
                if (silent) continue;
                std::string ack = reply ? reply(ev.payload) : aa(ev.payload);
                std::string framed = mllp::frame(ack);
                try {
                    s.sendBytes(framed.data(), static_cast<int>(framed.size()));
                } catch (...) {
                    return;
                }
            }
        }
    }
    Poco::Net::ServerSocket socket_;
    std::thread thread_;
    std::vector<std::thread> conns_;
    std::atomic<bool> stop_{false};
    std::atomic<std::size_t> connections_{0};
    std::mutex m_;
    std::vector<std::string> received_;
};

}  // namespace junction::testing
