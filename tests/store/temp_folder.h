// A temporary folder for a store test, removed with everything in it.
#pragma once

#include <catch2/catch.hpp>
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace junction::testing {

struct TempFolder {
    std::string path;
    explicit TempFolder(const char* what) {
        std::string tmpl = std::string("/tmp/junction-") + what + "-XXXXXX";
        char* p = mkdtemp(tmpl.data());
        REQUIRE(p != nullptr);
        path = p;
    }
    ~TempFolder() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string db() const { return path + "/store.db"; }
};

}  // namespace junction::testing
