// Durable keys and values that scripts keep across messages and restarts (the
// Lua `store` module): "this study's attachment was sent", a cursor of a
// polled API, a mapping learnt from one system for another. Kept in the
// store's database, each write committed before it returns.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace junction::store {

class KeyValueStore {
public:
    virtual ~KeyValueStore() = default;
    virtual std::optional<std::string> get(const std::string& key) = 0;
    virtual void put(const std::string& key, const std::string& value) = 0;
    // True when the key was there.
    virtual bool remove(const std::string& key) = 0;
    // Keys starting with `prefix`, in order, at most `limit`.
    virtual std::vector<std::string> keys(const std::string& prefix, std::size_t limit) = 0;
};

// Opens the key-value table in the SQLite database at `path` (the message
// store's file), creating it if needed. Throws std::runtime_error.
std::unique_ptr<KeyValueStore> openSqliteKeyValues(const std::string& path, bool synchronousFull,
                                                   int busyTimeoutMs = 10000);

}  // namespace junction::store
