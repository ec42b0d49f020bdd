// A whole file read into a string (a channel file, a script).
#pragma once

#include <string>

namespace junction::util {

// The file's bytes; "" when it cannot be read.
std::string readFileText(const std::string& path);

}  // namespace junction::util
