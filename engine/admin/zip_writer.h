// A zip archive in memory with stored (uncompressed) entries: what the
// message export answers. Each entry carries its CRC-32 and sizes in its local
// header (no data descriptors), then a central directory; no ZIP64, so an
// archive stays under 4 GiB and 65,535 entries (add throws past those).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace junction::admin {

class ZipWriter {
public:
    // Entries are dated `when` (local time, as zip tools show it).
    explicit ZipWriter(std::chrono::system_clock::time_point when = std::chrono::system_clock::now());
    // Adds a file `name` (a relative path with '/' separators) holding `data`.
    void add(const std::string& name, std::string_view data);
    // The archive (the writer is left empty).
    std::string finish();
    std::size_t entries() const { return entries_; }

private:
    std::string out_, directory_;
    std::size_t entries_ = 0;
    std::uint16_t dosTime_ = 0, dosDate_ = 0;
};

}  // namespace junction::admin
