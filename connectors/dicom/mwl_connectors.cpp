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
        dicom::MwlServerOptions options = options_;
        options.event = [&ctx](const std::string& type, const std::string& text) { ctx.event(type, text); };
        server_ = std::make_unique<dicom::MwlServer>(options, worklist_, onMpps, log);
        server_->start();
    }

    void stop() override {
        if (server_) server_->stop();
        server_.reset();
    }

    bool listens() const override { return true; }
    std::string describe() const override {
        return "dicom_mwl " + options_.aeTitle + " " + options_.host + ":" + std::to_string(options_.port);
    }

private:
    dicom::MwlServerOptions options_;
    store::WorklistStore& worklist_;
    std::unique_ptr<dicom::MwlServer> server_;
};

const config::Map<dicom::MwlServerOptions>& mwlSourceMap() {
    using S = dicom::MwlServerOptions;
    static const config::Map<S> map{
        {"ae_title", &S::aeTitle, aeTitleCheck("ae_title"), "the called AE title modalities must use"},
        {"port", &S::port, config::required, config::range(1, 65535), "TCP port to listen on"},
        dicomHostEntry<S>(),
        {"allowed_aes", &S::allowedAes, aeTitlesCheck("allowed_aes"), config::byDefault("any"),
         "calling AE titles allowed to connect"},
        {"max_pdu", &S::maxPdu, config::bytes, config::range(4096, 131072), "largest PDU received"},
        {"include_finished", &S::includeFinished, "also answer completed, discontinued and cancelled items"},
        {"max_associations", &S::maxAssociations, config::range(1, 1000), "concurrent associations"},
    };
    return map;
}

class MwlSourceFactory : public core::MappedSourceFactory<dicom::MwlServerOptions> {
public:
    MwlSourceFactory() : MappedSourceFactory(mwlSourceMap()) {}

    std::string defaultDataType() const override { return "json"; }

protected:
    int port(const dicom::MwlServerOptions& o) const override { return o.port; }
    std::unique_ptr<core::Source> build(dicom::MwlServerOptions o, const core::BuildContext& ctx) const override {
        if (!ctx.worklist) throw std::runtime_error("dicom_mwl: no engine to serve the worklist from");
        return std::make_unique<MwlSource>(o, *ctx.worklist);
    }
};

}  // namespace

std::unique_ptr<core::SourceFactory> dicomMwlSourceFactory() { return std::make_unique<MwlSourceFactory>(); }

}  // namespace junction::connectors
