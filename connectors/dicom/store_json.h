// DICOM JSON (PS3.18 F.2) for stored instances: a dataset without its pixel
// data as JSON, and JSON edits (made by a Lua script) written back into a
// dataset before it is sent on. Plain types only; DCMTK stays in the .cpp.
#pragma once

#include <string>
#include <vector>

namespace junction::dicom {

struct JsonResult {
    bool ok = false;
    std::string json;   // a JSON object: "GGGGEEEE" keys, each {"vr":..,"Value":[..]}
    std::string error;
};

// The dataset of a DICOM file (no meta header, no pixel data) as DICOM JSON.
JsonResult datasetJsonFromFile(const std::string& path);

// Elements left out of the JSON (and never removed by an edit): pixel data
// (7FE0,0008/0009/0010) and what follows it (trailing padding), the file meta
// group and other binary values over 64 KiB.
constexpr std::size_t kMaxInlineBinaryBytes = 64 * 1024;

struct EditResult {
    bool ok = false;
    int changed = 0;  // elements replaced, added or removed
    std::string error;
};

// Compares the message JSON (`messageJson`, an object as produced by
// datasetJsonFromFile plus any non-tag keys, which are ignored) with the
// dataset of `inPath` and writes `outPath` with the differences applied:
// changed or new tags are set, tags missing from the JSON are removed. Values
// are compared by meaning (numbers as numbers), so a JSON round trip through
// Lua changes nothing. Pixel data is copied as it is.
EditResult applyJsonToFile(const std::string& inPath, const std::string& messageJson, const std::string& outPath);

// The Part-10 bytes to send of `path` as the message `messageJson` describes
// the instance (a `dicom` source's message, possibly edited by a script), into
// `bytes`: the file's own bytes when the message changes no tag (or is
// empty), else the file written again with the `changed` changes applied.
EditResult part10Bytes(const std::string& path, const std::string& messageJson, std::string& bytes);

}  // namespace junction::dicom

namespace junction::dicom {

// The files a channel message names: "file" (one instance) or "files" (a
// study, as the stable-study message lists them). False with `error` when the
// message is no JSON object or names no file.
bool messageFiles(const std::string& messageJson, std::vector<std::string>& files, bool& single, std::string& error);

}  // namespace junction::dicom
