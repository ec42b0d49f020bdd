// Writing the admin API's JSON answers: a small streaming writer that puts
// the commas and quotes (strings through util::appendJsonString, so that
// message content in any character set still makes valid JSON).
//
//   JsonWriter w;
//   w.beginObject().field("name", "ris").key("destinations").beginArray();
//   ... w.endArray().endObject();
//   std::string text = w.str();
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace junction::admin {

class JsonWriter {
public:
    JsonWriter& beginObject();
    JsonWriter& endObject();
    JsonWriter& beginArray();
    JsonWriter& endArray();
    JsonWriter& key(std::string_view name);
    JsonWriter& value(std::string_view s);
    JsonWriter& value(const char* s) { return value(std::string_view(s)); }
    JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
    JsonWriter& value(bool b);
    JsonWriter& value(std::int64_t n);
    JsonWriter& value(std::uint64_t n);
    JsonWriter& value(int n) { return value(static_cast<std::int64_t>(n)); }
    JsonWriter& value(double d);
    JsonWriter& null();
    // Text that is JSON already (a nested document).
    JsonWriter& raw(std::string_view json);
    template <class T>
    JsonWriter& field(std::string_view name, const T& v) {
        key(name);
        return value(v);
    }
    const std::string& str() const { return out_; }

private:
    void separate();
    std::string out_;
    std::vector<bool> first_;  // per open object/array: nothing written in it yet
    bool afterKey_ = false;
};

}  // namespace junction::admin
