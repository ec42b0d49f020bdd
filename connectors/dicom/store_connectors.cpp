// `dicom` source (C-STORE SCP + C-ECHO SCP) and destination (C-STORE SCU +
// C-ECHO SCU). The DICOM work is in store_server / store_client (DCMTK); this
// file maps channel settings and messages onto them.
#include "connectors/dicom/store_connectors.h"

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "connectors/dicom/listen_setting.h"
#include "connectors/dicom/store_client.h"
#include "connectors/dicom/store_json.h"
#include "connectors/dicom/store_server.h"
#include "engine/util/json_text.h"

namespace fs = std::filesystem;

namespace junction::connectors {

namespace {

using config::Setting;
using T = config::Setting::Type;

using util::jsonString;

std::string checkAe(const config::Node& n, const std::string& what) {
    std::string ae = n.asString(what);
    if (ae.empty() || ae.size() > 16) n.fail(what + " must be 1 to 16 characters", "e.g. JUNCTION");
    for (char c : ae)
        if (c == '\\' || static_cast<unsigned char>(c) < 0x20) n.fail(what + " has a character not allowed in an AE title");
    return ae;
}

std::uint32_t readMaxPdu(const config::Node& conf) {
    auto n = conf.find("max_pdu");
    if (!n) return 116794;
    std::size_t v = n->asBytes("max_pdu");
    if (v < 4096 || v > 131072) n->fail("max_pdu must be between 4KB and 128KB", "DICOM limits the PDU size; 116794 is usual");
    return static_cast<std::uint32_t>(v);
}

// ---------------------------------------------------------------- source

struct DicomSourceConfig {
    dicom::StoreServerOptions server;
    std::chrono::milliseconds stableStudy{0};
};

class DicomSource : public core::Source {
public:
    explicit DicomSource(DicomSourceConfig c) : c_(std::move(c)) {}
    ~DicomSource() override { stop(); }

    void start(core::SourceContext& ctx) override {
        ctx_ = &ctx;
        stopping_ = false;
        server_ = std::make_unique<dicom::StoreServer>(
            c_.server, [this](const dicom::ReceivedInstance& r) { return onInstance(r); },
            [this](const std::string& level, const std::string& text) { ctx_->log(level, text); });
        server_->start();
        if (c_.stableStudy.count() > 0) stableThread_ = std::thread([this] { stableLoop(); });
    }

    void stop() override {
        {
            std::lock_guard<std::mutex> lock(studiesMutex_);
            stopping_ = true;
        }
        studiesCv_.notify_all();
        if (server_) server_->stop();
        if (stableThread_.joinable()) stableThread_.join();
        server_.reset();
    }

    std::string describe() const override {
        return "dicom " + c_.server.aeTitle + " " + c_.server.host + ":" + std::to_string(c_.server.port);
    }

private:
    dicom::StoreOutcome onInstance(const dicom::ReceivedInstance& r) {
        if (stopping_ || !ctx_->waitUntilAccepting()) return {dicom::kStoreOutOfResources, "the channel is stopping"};
        std::string json = r.json;
        json.pop_back();  // the closing brace
        if (json.size() > 1) json += ",";
        if (!r.error.empty()) json += "\"error\":" + jsonString(r.error) + ",";
        json += "\"file\":" + jsonString(r.path) + ",\"CallingAE\":" + jsonString(r.callingAE) +
                ",\"CalledAE\":" + jsonString(r.calledAE) + ",\"RemoteAddress\":" + jsonString(r.peer) +
                ",\"TransferSyntaxUID\":" + jsonString(r.transferSyntaxUid) + "}";
        // An instance answered but unreadable afterwards is kept as an ERROR message.
        core::SubmitResult res =
            ctx_->submitAndWait(core::Inbound{std::move(json), "dicom " + r.callingAE + "@" + r.peer, r.error});
        if (!res.accepted) return {dicom::kStoreOutOfResources, res.error.empty() ? "not stored" : res.error};
        if (c_.stableStudy.count() > 0 && r.error.empty()) {
            std::lock_guard<std::mutex> lock(studiesMutex_);
            auto& s = studies_[r.studyUid];
            s.last = std::chrono::steady_clock::now();
            s.callingAE = r.callingAE;
            if (std::find(s.files.begin(), s.files.end(), r.path) == s.files.end()) s.files.push_back(r.path);
        }
        return {};
    }

    struct Study {
        std::chrono::steady_clock::time_point last;
        std::string callingAE;
        std::vector<std::string> files;
    };

    void stableLoop() {
        auto tick = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(500), c_.stableStudy / 4 + std::chrono::milliseconds(10));
        std::unique_lock<std::mutex> lock(studiesMutex_);
        while (!stopping_) {
            studiesCv_.wait_for(lock, tick, [&] { return stopping_.load(); });
            if (stopping_) break;
            auto now = std::chrono::steady_clock::now();
            std::vector<std::pair<std::string, Study>> ready;
            for (auto it = studies_.begin(); it != studies_.end();) {
                if (now - it->second.last >= c_.stableStudy) {
                    ready.emplace_back(it->first, std::move(it->second));
                    it = studies_.erase(it);
                } else {
                    ++it;
                }
            }
            lock.unlock();
            for (auto& [uid, s] : ready) {
                std::string json = "{\"event\":\"study-stable\",\"StudyInstanceUID\":" + jsonString(uid) +
                                   ",\"CallingAE\":" + jsonString(s.callingAE) +
                                   ",\"instances\":" + std::to_string(s.files.size()) + ",\"files\":[";
                for (std::size_t i = 0; i < s.files.size(); ++i) json += (i ? "," : "") + jsonString(s.files[i]);
                json += "]}";
                core::SubmitResult res = ctx_->submitAndWait(core::Inbound{json, "dicom stable study " + uid});
                if (!res.accepted) {
                    ctx_->log("warn", "dicom: stable-study message for " + uid + " not stored: " + res.error);
                    std::lock_guard<std::mutex> again(studiesMutex_);
                    if (!stopping_) {
                        auto& back = studies_[uid];
                        back.files.insert(back.files.end(), s.files.begin(), s.files.end());
                        back.callingAE = s.callingAE;
                        back.last = std::chrono::steady_clock::now();
                    }
                }
            }
            lock.lock();
        }
    }

    DicomSourceConfig c_;
    core::SourceContext* ctx_ = nullptr;
    std::unique_ptr<dicom::StoreServer> server_;
    std::atomic<bool> stopping_{false};
    std::mutex studiesMutex_;
    std::condition_variable studiesCv_;
    std::map<std::string, Study> studies_;
    std::thread stableThread_;
};

class DicomSourceFactory : public core::SourceFactory {
public:
    std::vector<Setting> settings() const override {
        return {
            {T::Int, "port", true, "TCP port to listen on", 1, 65535},
            dicomHostSetting(),
            {T::String, "ae_title", false, "the called AE title modalities must use (default JUNCTION)"},
            {T::StringList, "allowed_aes", false, "calling AE titles accepted (default: any)"},
            {T::Bytes, "max_pdu", false, "largest PDU received (default 116794)"},
            {T::String, "storage_dir", false, "where instances are written (default: dicom/ beside the store database)"},
            {T::Duration, "stable_study", false, "also emit one message per study once no instance came for this long (0 = off)"},
            {T::Int, "max_associations", false, "concurrent associations (default 32)", 1, 1000},
            {T::Duration, "timeout", false, "drop an association silent this long (default 60s)"},
            {T::String, "respond_after", false,
             "file: answer C-STORE once the instance is safely on disk, make the message right after (default); "
             "message: answer once the message is stored",
             0, 0, {"file", "message"}},
            {T::Int, "max_backlog", false, "instances answered but not yet messages before new ones are refused (default 1000)",
             1, 1000000},
        };
    }
    std::string defaultDataType() const override { return "json"; }
    int listenPort(const config::Node& conf) const override {
        auto p = conf.find("port");
        return p ? static_cast<int>(p->asInt("port", 1, 65535)) : 0;
    }
    void validate(const config::Node& conf, const core::BuildContext& ctx) const override { read(conf, ctx); }
    std::unique_ptr<core::Source> create(const config::Node& conf, const core::BuildContext& ctx) const override {
        return std::make_unique<DicomSource>(read(conf, ctx));
    }

private:
    static DicomSourceConfig read(const config::Node& conf, const core::BuildContext& ctx) {
        DicomSourceConfig c;
        c.server.port = static_cast<int>(conf.find("port")->asInt("port", 1, 65535));
        c.server.host = readDicomHost(conf);
        if (auto n = conf.find("ae_title")) c.server.aeTitle = checkAe(*n, "ae_title");
        if (auto n = conf.find("allowed_aes")) c.server.allowedAEs = n->asStringList("allowed_aes");
        c.server.maxPdu = readMaxPdu(conf);
        if (auto n = conf.find("stable_study")) c.stableStudy = n->asDuration("stable_study");
        if (auto n = conf.find("max_associations"))
            c.server.maxAssociations = static_cast<int>(n->asInt("max_associations", 1, 1000));
        if (auto n = conf.find("timeout")) {
            auto t = n->asDuration("timeout");
            if (t.count() < 1000) n->fail("timeout must be at least 1s");
            c.server.dimseTimeoutSeconds = static_cast<int>(t.count() / 1000);
        }
        if (auto n = conf.find("respond_after")) c.server.respondAfterHandler = n->asString("respond_after") == "message";
        if (auto n = conf.find("max_backlog")) c.server.maxBacklog = static_cast<int>(n->asInt("max_backlog", 1, 1000000));
        std::string dir;
        if (auto n = conf.find("storage_dir")) {
            dir = n->asString("storage_dir");
            if (dir.empty()) n->fail("storage_dir is empty");
        }
        if (dir.empty()) {
            std::string db = ctx.store ? ctx.store->path : std::string();
            dir = db.empty() ? (fs::path(ctx.baseDir) / "var" / "dicom").string()
                             : (fs::path(db).parent_path() / "dicom").string();
        } else if (fs::path(dir).is_relative()) {
            dir = (fs::path(ctx.baseDir) / dir).lexically_normal().string();
        }
        c.server.storageDir = dir;
        if (ctx.store) c.server.syncFiles = ctx.store->synchronousFull;
        return c;
    }
};

// ---------------------------------------------------------------- destination

core::SendResult toSendResult(const dicom::StoreSendResult& r) {
    switch (r.kind) {
    case dicom::StoreSendResult::Kind::Ok: return core::SendResult::ok(r.detail);
    case dicom::StoreSendResult::Kind::Retry: return core::SendResult::retry(r.detail);
    default: return core::SendResult::fail(r.detail);
    }
}

class DicomDestination : public DicomStoreDestination {
public:
    explicit DicomDestination(dicom::StoreClientOptions o) : client_(std::move(o)) {}

    core::SendResult send(const core::Outbound& m) override {
        std::vector<std::string> files;
        bool single = true;
        std::string error;
        if (!dicom::messageFiles(m.content, files, single, error)) return core::SendResult::fail(error);
        std::string responses;
        for (const auto& f : files) {
            // One instance: the message's tags (as a script left them) go with it.
            dicom::StoreSendResult r = client_.send(f, single ? m.content : std::string());
            if (r.kind != dicom::StoreSendResult::Kind::Ok) return toSendResult(r);
            if (!responses.empty()) responses += "\n";
            responses += r.detail;
        }
        return core::SendResult::ok(responses);
    }

    core::SendResult echo() override { return toSendResult(client_.echo()); }
    std::uint64_t associationsOpened() const override { return client_.associationsOpened(); }
    void stop() override { client_.close(); }
    void abort() override { client_.abort(); }
    std::string describe() const override {
        const auto& o = client_.options();
        return "dicom " + o.calledAE + "@" + o.host + ":" + std::to_string(o.port);
    }

private:
    dicom::StoreClient client_;
};

class DicomDestinationFactory : public core::DestinationFactory {
public:
    std::vector<Setting> settings() const override {
        return {
            {T::String, "host", true, "peer address"},
            {T::Int, "port", true, "peer port", 1, 65535},
            {T::String, "called_ae", true, "the peer's AE title"},
            {T::String, "calling_ae", false, "Junction's AE title (default JUNCTION)"},
            {T::Duration, "connect_timeout", false, "default 5s"},
            {T::Duration, "timeout", false, "association and response timeout (default 30s)"},
            {T::Bytes, "max_pdu", false, "largest PDU received (default 116794)"},
        };
    }
    void validate(const config::Node& conf, const core::BuildContext&) const override { read(conf); }
    std::unique_ptr<core::Destination> create(const config::Node& conf, const core::BuildContext&) const override {
        return std::make_unique<DicomDestination>(read(conf));
    }

private:
    static dicom::StoreClientOptions read(const config::Node& conf) {
        dicom::StoreClientOptions o;
        o.host = conf.find("host")->asString("host");
        o.port = static_cast<int>(conf.find("port")->asInt("port", 1, 65535));
        o.calledAE = checkAe(*conf.find("called_ae"), "called_ae");
        if (auto n = conf.find("calling_ae")) o.callingAE = checkAe(*n, "calling_ae");
        auto seconds = [](const config::Node& n, const std::string& what) {
            auto t = n.asDuration(what);
            if (t.count() < 1000) n.fail(what + " must be at least 1s");
            return static_cast<int>(t.count() / 1000);
        };
        if (auto n = conf.find("connect_timeout")) o.connectTimeoutSeconds = seconds(*n, "connect_timeout");
        if (auto n = conf.find("timeout")) o.timeoutSeconds = seconds(*n, "timeout");
        o.maxPdu = readMaxPdu(conf);
        return o;
    }
};

}  // namespace

std::unique_ptr<core::SourceFactory> dicomSourceFactory() { return std::make_unique<DicomSourceFactory>(); }
std::unique_ptr<core::DestinationFactory> dicomDestinationFactory() { return std::make_unique<DicomDestinationFactory>(); }

}  // namespace junction::connectors
