// A channel's scripted processing (pipeline.h): preprocessor, filter,
// transformer, routing and each destination's filter and transformer, the
// postprocessor and response scripts, and the search metadata of a message.
#include "engine/core/pipeline.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>

namespace junction::core {

std::optional<lua::Payload> makePayload(const std::string& dataType, std::string_view raw, std::string* error,
                                        std::size_t maxBytes) {
    lua::Payload p;
    auto type = lua::parseDataType(dataType);
    p.type = type ? *type : lua::DataType::Raw;
    if (p.type == lua::DataType::Hl7v2) {
        hl7::ParseOptions opts;
        if (maxBytes) opts.maxBytes = maxBytes;
        auto r = hl7::Message::parse(raw, opts);
        if (!r) {
            if (error) *error = "HL7 parse error " + r.error.describe();
            return std::nullopt;
        }
        p.hl7.emplace(std::move(*r.message));
    } else {
        p.text.assign(raw.data(), raw.size());
    }
    return p;
}

namespace {

// The first value of a DICOM JSON element ("00100020": {"vr": "LO", "Value": ["P1"]}).
std::string dicomJsonValue(const Poco::JSON::Object& dataset, const std::string& tag) {
    try {
        auto element = dataset.getObject(tag);
        if (!element) return {};
        auto values = element->getArray("Value");
        if (!values || values->size() == 0 || values->isNull(0)) return {};
        return values->get(0).convert<std::string>();
    } catch (const Poco::Exception&) {
        return {};
    }
}

// A DICOM source's message (its instance's tags as DICOM JSON): patient id
// (0010,0020) and accession number (0008,0050) as search columns.
store::Metadata dicomMetadataOf(const std::string& text) {
    store::Metadata m;
    if (text.find("\"00100020\"") == std::string::npos && text.find("\"00080050\"") == std::string::npos) return m;
    try {
        auto parsed = Poco::JSON::Parser().parse(text);
        auto dataset = parsed.extract<Poco::JSON::Object::Ptr>();
        if (!dataset) return m;
        m.patientId = dicomJsonValue(*dataset, "00100020");
        m.accession = dicomJsonValue(*dataset, "00080050");
    } catch (const Poco::Exception&) {
    } catch (const std::exception&) {
    }
    return m;
}

}  // namespace

store::Metadata metadataOf(const lua::Payload& payload) {
    store::Metadata m;
    if (payload.type == lua::DataType::Json) return dicomMetadataOf(payload.text);
    if (!payload.hl7) return m;
    const hl7::Message& msg = *payload.hl7;
    m.messageType = msg.messageType();
    m.controlId = msg.controlId();
    // Paths built once: parsing them per message cost more than the lookups.
    static const hl7::Path kPatientId = *hl7::Path::parse("PID-3.1");
    static const hl7::Path kAccession[] = {*hl7::Path::parse("OBR-18"), *hl7::Path::parse("ORC-3.1"),
                                           *hl7::Path::parse("IPC-1.1"), *hl7::Path::parse("OBR-3.1")};
    m.patientId = msg.get(kPatientId);
    for (const hl7::Path& path : kAccession) {
        m.accession = msg.get(path);
        if (!m.accession.empty()) break;
    }
    return m;
}

Pipeline::Pipeline(const ChannelConfig& config, std::shared_ptr<lua::SharedMap> channelMap,
                   std::shared_ptr<lua::SharedMap> globalMap, ScriptServices services)
    : config_(config), channelMap_(std::move(channelMap)), globalMap_(std::move(globalMap)), services_(services) {}

lua::Invocation Pipeline::invocation(lua::Payload& message, const std::string& destination,
                                     const std::shared_ptr<lua::SharedMap>& responseMap) const {
    lua::Invocation inv;
    inv.channel = config_.name;
    inv.destination = destination;
    inv.message = &message;
    inv.channelMap = channelMap_;
    inv.globalMap = globalMap_;
    inv.responseMap = responseMap;
    inv.worklist = services_.worklist;
    inv.orthanc = services_.orthanc;
    inv.keyValues = services_.keyValues;
    inv.vars = &config_.vars;
    return inv;
}

namespace {
void take(std::vector<lua::LogLine>& into, lua::Invocation& inv, const std::string& stage) {
    for (auto& l : inv.logs) {
        l.stage = stage;
        into.push_back(std::move(l));
    }
    inv.logs.clear();
}
}  // namespace

ProcessOutcome Pipeline::process(lua::Payload& message, lua::ScriptRuntime* rt,
                                 const std::shared_ptr<lua::SharedMap>& responseMap, bool keepTransformed) const {
    ProcessOutcome out;
    lua::Invocation inv = invocation(message, {}, responseMap);
    auto run = [&](const std::string& fn) -> bool {  // false: stop (error or filtered)
        if (fn.empty() || !rt) return true;
        lua::CallResult r = rt->call(fn, inv);
        const char* stage = fn == config_.preprocessor ? "source" : fn == config_.filter ? "filter" : "transform";
        take(out.logs, inv, stage);
        if (!r.ok) {
            out.status = store::Status::Error;
            out.error = r.error;
            out.errorStage = stage;
            out.interrupted = r.interrupted;
            return false;
        }
        if (r.returnedFalse && fn == config_.filter) inv.filtered = true;
        if (inv.filtered) {
            out.status = store::Status::Filtered;
            out.errorStage = stage;
            out.filterReason = inv.filterReason.empty() ? "filter " + fn + " returned false" : inv.filterReason;
            return false;
        }
        return true;
    };
    bool go = run(config_.preprocessor) && run(config_.filter) && run(config_.transform);
    out.ack = inv.ack;
    out.routed = inv.routed;
    out.routes = inv.routes;
    bool serialized = false;
    auto transformed = [&]() -> const std::string& {
        if (!serialized) out.transformed = message.serialize();
        serialized = true;
        return out.transformed;
    };
    if (keepTransformed) transformed();
    if (!go) return out;

    for (const auto& r : inv.routes) {
        bool known = std::any_of(config_.destinations.begin(), config_.destinations.end(),
                                 [&](const DestinationConfig& d) { return d.name == r; });
        if (!known) {
            out.status = store::Status::Error;
            out.error = "route(): no destination named '" + r + "' in channel " + config_.name;
            out.errorStage = "transform";
            return out;
        }
    }
    for (const auto& d : config_.destinations) {
        DestinationOutcome dout;
        dout.name = d.name;
        bool chosen = d.enabled && (!inv.routed || std::find(inv.routes.begin(), inv.routes.end(), d.name) != inv.routes.end());
        if (!chosen) {
            dout.kind = DestinationOutcome::Kind::NotRouted;
            dout.reason = d.enabled ? "not routed" : "destination disabled";
            out.destinations.push_back(std::move(dout));
            continue;
        }
        if (d.filter.empty() && d.transform.empty()) {
            dout.encoded = transformed();
            out.destinations.push_back(std::move(dout));
            continue;
        }
        lua::Payload copy = message;
        lua::Invocation dinv = invocation(copy, d.name, responseMap);
        bool ok = true;
        for (const std::string* fn : {&d.filter, &d.transform}) {
            if (fn->empty() || !ok) continue;
            lua::CallResult r = rt->call(*fn, dinv);
            take(out.logs, dinv, "destination:" + d.name);
            if (!r.ok) {
                dout.kind = DestinationOutcome::Kind::Error;
                dout.reason = r.error;
                if (r.interrupted) out.interrupted = true;
                ok = false;
            } else if (dinv.filtered || (r.returnedFalse && fn == &d.filter)) {
                dout.kind = DestinationOutcome::Kind::Filtered;
                dout.reason = dinv.filterReason.empty() ? "filter " + *fn + " returned false" : dinv.filterReason;
                ok = false;
            }
        }
        if (dinv.ack) out.ack = dinv.ack;
        if (ok) dout.encoded = copy.serialize();
        out.destinations.push_back(std::move(dout));
    }
    return out;
}

Pipeline::ResponseOutcome Pipeline::runScript(const std::string& function, lua::Invocation& inv,
                                              lua::ScriptRuntime* rt) const {
    ResponseOutcome out;
    if (function.empty() || !rt) return out;
    lua::CallResult r = rt->call(function, inv);
    out.ok = r.ok;
    out.error = r.error;
    out.ack = inv.ack;
    out.logs = std::move(inv.logs);
    return out;
}

Pipeline::ResponseOutcome Pipeline::response(const DestinationConfig& d, lua::Payload& message,
                                             const std::string& response, const std::string& status,
                                             lua::ScriptRuntime* rt,
                                             const std::shared_ptr<lua::SharedMap>& responseMap) const {
    if (responseMap) responseMap->setString(d.name, response);
    lua::Invocation inv = invocation(message, d.name, responseMap);
    inv.response = response;
    inv.responseStatus = status;
    return runScript(d.response, inv, rt);
}

Pipeline::ResponseOutcome Pipeline::postprocess(lua::Payload& message, lua::ScriptRuntime* rt,
                                                const std::shared_ptr<lua::SharedMap>& responseMap) const {
    lua::Invocation inv = invocation(message, {}, responseMap);
    return runScript(config_.postprocessor, inv, rt);
}

}  // namespace junction::core
