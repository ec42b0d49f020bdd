// Reading a whole file (file_text.h).
#include "engine/util/file_text.h"

#include <fstream>
#include <sstream>

namespace junction::util {

std::string readFileText(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

}  // namespace junction::util
