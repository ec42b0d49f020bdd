// ZipWriter (zip_writer.h), after PKWARE's APPNOTE.TXT: local file header,
// data, then the central directory and its end record, little-endian.
#include "engine/admin/zip_writer.h"

#include <zlib.h>

#include <ctime>
#include <limits>
#include <stdexcept>

namespace junction::admin {

namespace {

void put16(std::string& out, std::uint32_t v) {
    out.push_back(static_cast<char>(v & 0xFF));
    out.push_back(static_cast<char>((v >> 8) & 0xFF));
}

void put32(std::string& out, std::uint32_t v) {
    put16(out, v & 0xFFFF);
    put16(out, v >> 16);
}

constexpr std::uint16_t kVersion = 20;     // 2.0: what a stored entry needs
constexpr std::uint16_t kUtf8Names = 0x0800;  // general purpose flag bit 11

}  // namespace

ZipWriter::ZipWriter(std::chrono::system_clock::time_point when) {
    std::time_t t = std::chrono::system_clock::to_time_t(when);
    std::tm tm{};
    localtime_r(&t, &tm);
    if (tm.tm_year < 80) tm = std::tm{0, 0, 0, 1, 0, 80, 0, 0, 0, 0, nullptr};  // DOS dates start in 1980
    dosTime_ = static_cast<std::uint16_t>((tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec / 2));
    dosDate_ = static_cast<std::uint16_t>(((tm.tm_year - 80) << 9) | ((tm.tm_mon + 1) << 5) | tm.tm_mday);
}

void ZipWriter::add(const std::string& name, std::string_view data) {
    constexpr std::uint64_t kMax = std::numeric_limits<std::uint32_t>::max();
    if (entries_ >= 0xFFFF || name.size() > 0xFFFF || out_.size() + data.size() + name.size() + 30 >= kMax)
        throw std::length_error("zip archive too large");
    auto crc = static_cast<std::uint32_t>(
        ::crc32_z(0L, reinterpret_cast<const Bytef*>(data.data()), data.size()));
    auto size = static_cast<std::uint32_t>(data.size());
    auto offset = static_cast<std::uint32_t>(out_.size());

    put32(out_, 0x04034b50);  // local file header
    put16(out_, kVersion);
    put16(out_, kUtf8Names);
    put16(out_, 0);  // stored
    put16(out_, dosTime_);
    put16(out_, dosDate_);
    put32(out_, crc);
    put32(out_, size);  // compressed
    put32(out_, size);  // uncompressed
    put16(out_, static_cast<std::uint32_t>(name.size()));
    put16(out_, 0);  // extra field
    out_ += name;
    out_.append(data.data(), data.size());

    put32(directory_, 0x02014b50);  // central directory header
    put16(directory_, (3u << 8) | kVersion);  // made by: UNIX
    put16(directory_, kVersion);
    put16(directory_, kUtf8Names);
    put16(directory_, 0);
    put16(directory_, dosTime_);
    put16(directory_, dosDate_);
    put32(directory_, crc);
    put32(directory_, size);
    put32(directory_, size);
    put16(directory_, static_cast<std::uint32_t>(name.size()));
    put16(directory_, 0);  // extra field
    put16(directory_, 0);  // comment
    put16(directory_, 0);  // disk
    put16(directory_, 0);  // internal attributes
    put32(directory_, 0100644u << 16);  // external: a regular file, rw-r--r--
    put32(directory_, offset);
    directory_ += name;
    ++entries_;
}

std::string ZipWriter::finish() {
    if (out_.size() + directory_.size() + 22 >= std::numeric_limits<std::uint32_t>::max())
        throw std::length_error("zip archive too large");
    auto offset = static_cast<std::uint32_t>(out_.size());
    auto size = static_cast<std::uint32_t>(directory_.size());
    std::string zip = std::move(out_);
    zip += directory_;
    put32(zip, 0x06054b50);  // end of central directory
    put16(zip, 0);
    put16(zip, 0);
    put16(zip, static_cast<std::uint32_t>(entries_));
    put16(zip, static_cast<std::uint32_t>(entries_));
    put32(zip, size);
    put32(zip, offset);
    put16(zip, 0);  // comment
    out_.clear();
    directory_.clear();
    entries_ = 0;
    return zip;
}

}  // namespace junction::admin
