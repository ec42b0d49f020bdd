// Tells systemd about the service's state (sd_notify's protocol: one datagram
// to the unix socket named by $NOTIFY_SOCKET), without linking libsystemd.
#pragma once

#include <string>

namespace junction::util {

// Sends `state` (e.g. "READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...").
// Returns false when no manager asked for it ($NOTIFY_SOCKET unset) or the send failed.
bool notifySystemd(const std::string& state);

}  // namespace junction::util
