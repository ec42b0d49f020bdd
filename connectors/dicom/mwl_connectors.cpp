// `dicom_mwl` source: a DICOM server answering Modality Worklist C-FIND from
// the engine's worklist, C-ECHO, and MPPS N-CREATE/N-SET, which update the
// worklist status and enter the channel as JSON messages.
#include "connectors/dicom/mwl_connectors.h"

#include <stdexcept>

#include "connectors/dicom/listen_setting.h"
#include "connectors/dicom/mwl_server.h"
#include "engine/store/worklist_store.h"

namespace junction::connectors {

namespace {

using config::Setting;
using T = config::Setting::Type;

class MwlSource : public core::Source {
public:
    MwlSource(dicom::MwlServerOptions options, store::WorklistStore& worklist)
        : options_(std::move(options)), worklist_(worklist) {}
    ~MwlSource() override { stop(); }

    void start(core::SourceContext& ctx) override {
        auto onMpps = [&ctx](const dicom::MppsEvent& ev) -> std::string {
            if (!ctx.waitUntilAccepting()) return "the channel is stopping";
            core::SubmitResult r = ctx.submitAndWait(
                core::Inbound{ev.json, "dicom_mwl " + ev.kind + " " + ev.callingAe + "@" + ev.peer});
            if (r.accepted) return {};
            return r.error.empty() ? std::string("not accepted") : r.error;
        };
        auto log = [&ctx](const std::string& level, const std::string& text) { ctx.log(level, text); };
        server_ = std::make_unique<dicom::MwlServer>(options_, worklist_, onMpps, log);
        server_->start();
    }

    void stop() override {
        if (server_) server_->stop();
        server_.reset();
    }

    std::string describe() const override {
        return "dicom_mwl " + options_.aeTitle + " " + options_.host + ":" + std::to_string(options_.port);
    }

private:
    dicom::MwlServerOptions options_;
    store::WorklistStore& worklist_;
    std::unique_ptr<dicom::MwlServer> server_;
};

class MwlSourceFactory : public core::SourceFactory {
public:
    std::vector<Setting> settings() const override {
        return {
            {T::String, "ae_title", false, "the called AE title modalities must use (default JUNCTION)"},
            {T::Int, "port", true, "TCP port to listen on", 1, 65535},
            dicomHostSetting(),
            {T::StringList, "allowed_aes", false, "calling AE titles allowed to connect (default: any)"},
            {T::Bytes, "max_pdu", false, "largest PDU received, 4KB to 128KB (default 16KB)"},
            {T::Bool, "include_finished", false, "also answer completed, discontinued and cancelled items (default false)"},
            {T::Int, "max_associations", false, "concurrent associations (default 32)", 1, 1000},
        };
    }

    void validate(const config::Node& conf, const core::BuildContext&) const override {
        if (auto n = conf.find("ae_title"))
            if (auto why = dicom::checkAeTitle(n->asString("ae_title")); !why.empty()) n->fail("ae_title: " + why);
        if (auto n = conf.find("allowed_aes"))
            for (const auto& ae : n->asStringList("allowed_aes"))
                if (auto why = dicom::checkAeTitle(ae); !why.empty()) n->fail("allowed_aes: '" + ae + "': " + why);
        readDicomHost(conf);
        if (auto n = conf.find("max_pdu")) {
            std::size_t b = n->asBytes("max_pdu");
            if (b < 4096 || b > 131072) n->fail("max_pdu must be between 4KB and 128KB", "e.g. max_pdu: 16KB");
        }
    }

    std::unique_ptr<core::Source> create(const config::Node& conf, const core::BuildContext& ctx) const override {
        validate(conf, ctx);
        dicom::MwlServerOptions o;
        if (auto n = conf.find("ae_title")) o.aeTitle = n->asString("ae_title");
        o.port = static_cast<int>(conf.find("port")->asInt("port", 1, 65535));
        o.host = readDicomHost(conf);
        if (auto n = conf.find("allowed_aes")) o.allowedAes = n->asStringList("allowed_aes");
        if (auto n = conf.find("max_pdu")) o.maxPdu = static_cast<std::uint32_t>(n->asBytes("max_pdu"));
        if (auto n = conf.find("include_finished")) o.includeFinished = n->asBool("include_finished");
        if (auto n = conf.find("max_associations")) o.maxAssociations = static_cast<int>(n->asInt("max_associations", 1, 1000));
        if (!ctx.worklist) throw std::runtime_error("dicom_mwl: no engine to serve the worklist from");
        return std::make_unique<MwlSource>(o, *ctx.worklist);
    }

    std::string defaultDataType() const override { return "json"; }

    int listenPort(const config::Node& conf) const override {
        auto p = conf.find("port");
        return p ? static_cast<int>(p->asInt("port", 1, 65535)) : 0;
    }
};

}  // namespace

std::unique_ptr<core::SourceFactory> dicomMwlSourceFactory() { return std::make_unique<MwlSourceFactory>(); }

}  // namespace junction::connectors
