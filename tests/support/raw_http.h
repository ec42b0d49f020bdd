// Tests of HTTP servers: a request sent as it is, byte for byte (no client
// cleans up its path or headers), and everything the server answers until it
// closes the connection or stays silent for 5 s.
#pragma once

#include <Poco/Net/StreamSocket.h>

#include <string>

namespace test_support {

inline std::string rawExchange(int port, const std::string& request) {
    Poco::Net::StreamSocket s(Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(port)));
    s.setReceiveTimeout(Poco::Timespan(5, 0));
    s.sendBytes(request.data(), static_cast<int>(request.size()));
    std::string out;
    char buf[4096];
    try {
        for (int n; (n = s.receiveBytes(buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    } catch (const Poco::Exception&) {
    }
    return out;
}

}  // namespace test_support
