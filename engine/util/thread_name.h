#pragma once

#include <pthread.h>

#include <string>

namespace junction::util {

// Names the calling thread for top -H, perf and gdb. Linux keeps at most 15
// characters and refuses a longer name outright, so the name is cut first.
inline void nameThisThread(const std::string& name) { pthread_setname_np(pthread_self(), name.substr(0, 15).c_str()); }

}  // namespace junction::util
