// sd_notify without libsystemd: a datagram to $NOTIFY_SOCKET (a path, or an
// abstract socket when it starts with '@').
#include "engine/util/systemd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace junction::util {

bool notifySystemd(const std::string& state) {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (!path || !*path) return false;
    std::size_t len = std::strlen(path);
    sockaddr_un addr{};
    if (len >= sizeof addr.sun_path) return false;
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path, len);
    if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    auto size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
    ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), size);
    ::close(fd);
    return n == static_cast<ssize_t>(state.size());
}

}  // namespace junction::util
