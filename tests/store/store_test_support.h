// Shared by the store tests: a temporary folder removed with everything in
// it, and an insert that waits for its id.
#pragma once

#include <catch2/catch.hpp>
#include <stdlib.h>

#include <filesystem>
#include <future>
#include <string>

#include "engine/store/message_store.h"

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

// Inserts `m` and waits until it is durable; its id.
inline store::MessageId insertSync(store::MessageStore& s, store::NewMessage m) {
    std::promise<store::MessageId> p;
    auto f = p.get_future();
    s.insert(std::move(m), [&](store::MessageId id, const std::string&) { p.set_value(id); });
    store::MessageId id = f.get();
    REQUIRE(id > 0);
    return id;
}

}  // namespace junction::testing
