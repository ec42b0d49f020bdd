// Helpers shared by the files that implement Channel (channel.cpp,
// channel_intake.cpp, channel_delivery.cpp). Internal to engine/core.
#pragma once

#include <chrono>

namespace junction::core::detail {

inline std::chrono::microseconds since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t);
}

}  // namespace junction::core::detail
