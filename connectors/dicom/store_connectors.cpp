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

using namespace std::chrono_literals;
using util::jsonString;

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
        dicom::StoreServerOptions options = c_.server;
        options.event = [this](const std::string& type, const std::string& text) { ctx_->event(type, text); };
        server_ = std::make_unique<dicom::StoreServer>(
            options, [this](const dicom::ReceivedInstance& r) { return onInstance(r); },
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

    bool listens() const override { return true; }
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

// The server's options as a channel file sets them.
struct DicomSourceSettings : dicom::StoreServerOptions {
    std::chrono::milliseconds stableStudy{0};
};

const config::Map<DicomSourceSettings>& dicomSourceMap() {
    using S = DicomSourceSettings;
    static const config::Map<S> map{
        {"port", &S::port, config::required, config::range(1, 65535), "TCP port to listen on"},
        dicomHostEntry<S>(),
        {"ae_title", &S::aeTitle, aeTitleCheck("ae_title"), "the called AE title modalities must use"},
        {"allowed_aes", &S::allowedAEs, aeTitlesCheck("allowed_aes"), config::byDefault("any"),
         "calling AE titles accepted"},
        {"max_pdu", &S::maxPdu, config::bytes, config::range(4096, 131072), "largest PDU received"},
        {"storage_dir", &S::storageDir, config::path,
         config::check([](const std::string& dir) { return dir.empty() ? std::string("storage_dir is empty") : std::string(); }),
         config::byDefault("dicom/ beside the store database"), "where instances are written"},
        {"stable_study", &S::stableStudy,
         "also emit one message per study once no instance came for this long (0: off)"},
        {"max_associations", &S::maxAssociations, config::range(1, 1000), "concurrent associations"},
        {"timeout", &S::dimseTimeoutSeconds, config::seconds, config::atLeast(1s), "drop an association silent this long"},
        {"respond_after", &S::respondAfterHandler, config::choices<bool>({{"file", false}, {"message", true}}),
         "file: answer C-STORE once the instance is safely on disk, make the message right after; "
         "message: answer once the message is stored"},
        {"max_backlog", &S::maxBacklog, config::range(1, 1000000),
         "instances answered but not yet messages before new ones are refused"},
    };
    return map;
}

class DicomSourceFactory : public core::MappedSourceFactory<DicomSourceSettings> {
public:
    DicomSourceFactory() : MappedSourceFactory(dicomSourceMap()) {}
    std::string defaultDataType() const override { return "json"; }

protected:
    int port(const DicomSourceSettings& s) const override { return s.port; }
    std::unique_ptr<core::Source> build(DicomSourceSettings s, const core::BuildContext& ctx) const override {
        DicomSourceConfig c{s, s.stableStudy};
        if (c.server.storageDir.empty()) {
            std::string db = ctx.store ? ctx.store->path : std::string();
            c.server.storageDir = db.empty() ? (fs::path(ctx.baseDir) / "var" / "dicom").string()
                                             : (fs::path(db).parent_path() / "dicom").string();
        }
        if (ctx.store) c.server.syncFiles = ctx.store->synchronousFull;
        return std::make_unique<DicomSource>(c);
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

const config::Map<dicom::StoreClientOptions>& dicomDestinationMap() {
    using S = dicom::StoreClientOptions;
    static const config::Map<S> map{
        {"host", &S::host, config::required, "peer address"},
        {"port", &S::port, config::required, config::range(1, 65535), "peer port"},
        {"called_ae", &S::calledAE, config::required, aeTitleCheck("called_ae"), "the peer's AE title"},
        {"calling_ae", &S::callingAE, aeTitleCheck("calling_ae"), "Junction's AE title"},
        {"connect_timeout", &S::connectTimeoutSeconds, config::seconds, config::atLeast(1s),
         "give up a connection attempt after this long"},
        {"timeout", &S::timeoutSeconds, config::seconds, config::atLeast(1s), "association and response timeout"},
        {"max_pdu", &S::maxPdu, config::bytes, config::range(4096, 131072), "largest PDU received"},
    };
    return map;
}

class DicomDestinationFactory : public core::MappedDestinationFactory<dicom::StoreClientOptions> {
public:
    DicomDestinationFactory() : MappedDestinationFactory(dicomDestinationMap()) {}

protected:
    std::unique_ptr<core::Destination> build(dicom::StoreClientOptions o, const core::BuildContext&) const override {
        return std::make_unique<DicomDestination>(o);
    }
};

}  // namespace

std::unique_ptr<core::SourceFactory> dicomSourceFactory() { return std::make_unique<DicomSourceFactory>(); }
std::unique_ptr<core::DestinationFactory> dicomDestinationFactory() { return std::make_unique<DicomDestinationFactory>(); }

}  // namespace junction::connectors
