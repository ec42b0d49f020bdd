// `file` source (poll a directory) and destination (write one file per message).
#include "connectors/file/file_connectors.h"

#include <chrono>
#include <filesystem>
#include <fnmatch.h>
#include <fstream>
#include <sstream>

#include "engine/core/message_template.h"
#include "engine/hl7/batch.h"
#include "engine/util/loop_thread.h"

namespace fs = std::filesystem;

namespace junction::connectors {

namespace {

// ---------------------------------------------------------------- source

struct FileSourceConfig {
    std::string directory;
    std::string pattern = "*";
    std::chrono::milliseconds pollInterval{1000};
    std::chrono::milliseconds minAge{0};
    std::string afterRead = "move";  // move | delete
    std::string moveTo;              // default <directory>/processed
    std::string errorDir;            // default <directory>/error
    bool splitBatches = true;
    std::string dataType = "hl7v2";  // the channel's
};

const config::Map<FileSourceConfig>& fileSourceMap() {
    using S = FileSourceConfig;
    static const config::Map<S> map{
        {"directory", &S::directory, config::required, config::path, "folder to poll"},
        {"pattern", &S::pattern, "glob of file names to read"},
        {"poll_interval", &S::pollInterval, "time between polls"},
        {"min_age", &S::minAge, "skip files modified more recently than this"},
        {"after_read", &S::afterRead, config::oneOf({"move", "delete"}), "what happens to a file once stored"},
        {"move_to", &S::moveTo, config::path, config::byDefault("DIRECTORY/processed"), "folder for read files"},
        {"error_dir", &S::errorDir, config::path, config::byDefault("DIRECTORY/error"),
         "folder for files that could not be stored"},
        {"split_batches", &S::splitBatches, "split HL7 batch files into messages"},
    };
    return map;
}

class FileSource : public core::Source {
public:
    explicit FileSource(FileSourceConfig c) : c_(std::move(c)) {}
    ~FileSource() override { stop(); }

    void start(core::SourceContext& ctx) override {
        std::error_code ec;
        fs::create_directories(c_.directory, ec);
        if (!fs::is_directory(c_.directory))
            throw std::runtime_error("cannot use directory " + c_.directory + ": " + ec.message());
        if (c_.afterRead == "move") fs::create_directories(c_.moveTo, ec);
        fs::create_directories(c_.errorDir, ec);
        ctx_ = &ctx;
        thread_.start([this] { loop(); });
    }

    void stop() override { thread_.stop(); }

    std::string describe() const override { return "file " + c_.directory + "/" + c_.pattern; }

private:
    void loop() {
        while (thread_.running()) {
            pollOnce();
            thread_.waitFor(c_.pollInterval);
        }
    }

    void pollOnce() {
        std::vector<fs::path> files;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(c_.directory, ec)) {
            if (!e.is_regular_file(ec)) continue;
            std::string name = e.path().filename().string();
            if (name.empty() || name[0] == '.') continue;  // hidden and temporary files
            if (fnmatch(c_.pattern.c_str(), name.c_str(), 0) != 0) continue;
            if (c_.minAge.count() > 0) {
                auto age = fs::file_time_type::clock::now() - fs::last_write_time(e.path(), ec);
                if (age < c_.minAge) continue;
            }
            files.push_back(e.path());
        }
        std::sort(files.begin(), files.end());
        for (const auto& f : files) {
            if (!thread_.running()) return;
            if (!ctx_->waitUntilAccepting()) return;
            readFile(f);
        }
    }

    void readFile(const fs::path& path) {
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            ctx_->log("warn", "cannot read " + path.string());
            return;
        }
        std::stringstream buf;
        buf << in.rdbuf();
        std::string text = buf.str();
        std::vector<std::string> messages;
        if (c_.dataType == "hl7v2" && c_.splitBatches && hl7::isBatch(text)) {
            for (auto m : hl7::splitMessages(text)) messages.emplace_back(m);
        } else {
            messages.push_back(std::move(text));
        }
        bool allStored = true;
        for (auto& m : messages) {
            core::SubmitResult r = ctx_->submitAndWait(core::Inbound{std::move(m), "file " + path.string()});
            if (!r.accepted) {
                allStored = false;
                ctx_->log("error", path.string() + ": " + r.error);
            }
        }
        std::error_code ec;
        if (!allStored) {
            fs::rename(path, fs::path(c_.errorDir) / path.filename(), ec);
            return;
        }
        // Everything is durable in the store: now the file may go.
        if (c_.afterRead == "delete") {
            fs::remove(path, ec);
        } else {
            fs::path target = fs::path(c_.moveTo) / path.filename();
            if (fs::exists(target)) target += "." + std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
            fs::rename(path, target, ec);
        }
        if (ec) ctx_->log("error", "cannot move/delete " + path.string() + ": " + ec.message());
    }

    FileSourceConfig c_;
    core::SourceContext* ctx_ = nullptr;
    util::LoopThread thread_;
};

class FileSourceFactory : public core::MappedSourceFactory<FileSourceConfig> {
public:
    FileSourceFactory() : MappedSourceFactory(fileSourceMap()) {}

protected:
    std::unique_ptr<core::Source> build(FileSourceConfig c, const core::BuildContext& ctx) const override {
        if (c.moveTo.empty()) c.moveTo = (fs::path(c.directory) / "processed").string();
        if (c.errorDir.empty()) c.errorDir = (fs::path(c.directory) / "error").string();
        c.dataType = ctx.dataType;
        return std::make_unique<FileSource>(c);
    }
};

// ---------------------------------------------------------------- destination

std::string sanitize(std::string name) {
    for (char& c : name)
        if (c == '/' || c == '\\' || c == '\0' || c == '\r' || c == '\n') c = '_';
    if (name.empty() || name == "." || name == "..") name = "_";
    return name;
}

class FileDestination : public core::Destination {
public:
    FileDestination(std::string dir, const std::string& tmpl, bool append)
        : dir_(std::move(dir)), template_(tmpl), append_(append) {}

    core::SendResult send(const core::Outbound& m) override {
        std::error_code ec;
        fs::create_directories(dir_, ec);
        std::string name = sanitize(template_.expand(m));
        fs::path target = fs::path(dir_) / name;
        if (append_) {
            std::ofstream out(target, std::ios::binary | std::ios::app);
            out << m.content;
            out.flush();
            if (!out) return core::SendResult::retry("cannot append to " + target.string());
            return core::SendResult::ok(target.string());
        }
        // Write to a hidden temporary file, then rename: readers never see half a file.
        fs::path tmp = fs::path(dir_) / ("." + name + ".tmp");
        {
            std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
            out << m.content;
            out.flush();
            if (!out) return core::SendResult::retry("cannot write " + tmp.string());
        }
        fs::rename(tmp, target, ec);
        if (ec) return core::SendResult::retry("cannot rename to " + target.string() + ": " + ec.message());
        return core::SendResult::ok(target.string());
    }

    std::string describe() const override { return "file " + dir_ + "/" + template_.text(); }

private:
    std::string dir_;
    core::MessageTemplate template_;
    bool append_;
};

struct FileDestinationSettings {
    std::string directory;
    std::string filename = "${id}.hl7";
    bool append = false;
};

const config::Map<FileDestinationSettings>& fileDestinationMap() {
    using S = FileDestinationSettings;
    static const config::Map<S> map{
        {"directory", &S::directory, config::required, config::path, "folder to write to"},
        {"filename", &S::filename, config::check([](const std::string& t) { return core::MessageTemplate::check(t); }),
         std::string("name template; fields: ") + core::MessageTemplate::kFields},
        {"append", &S::append, "append every message to one file"},
    };
    return map;
}

class FileDestinationFactory : public core::MappedDestinationFactory<FileDestinationSettings> {
public:
    FileDestinationFactory() : MappedDestinationFactory(fileDestinationMap()) {}

protected:
    std::unique_ptr<core::Destination> build(FileDestinationSettings s, const core::BuildContext&) const override {
        return std::make_unique<FileDestination>(s.directory, s.filename, s.append);
    }
};

}  // namespace

void registerFile(core::ConnectorRegistry& registry) {
    registry.addSource("file", std::make_unique<FileSourceFactory>());
    registry.addDestination("file", std::make_unique<FileDestinationFactory>());
}

}  // namespace junction::connectors
