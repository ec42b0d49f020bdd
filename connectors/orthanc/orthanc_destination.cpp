// The `orthanc` destination: one REST call (or a few) on an Orthanc server per
// message: upload the DICOM instance(s) the message is or names, store the
// resources it names to a modality or peer, set their metadata or labels,
// delete them. Orthanc's JSON answer is the delivery's response; a refusal
// (4xx) is an error, no answer or a server error (5xx) is retried.
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <sstream>
#include <vector>

#include "connectors/dicom/store_json.h"
#include "connectors/orthanc/orthanc_common.h"
#include "engine/dicom/part10.h"

namespace junction::connectors::orthanc_connector {

namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;

struct DestinationSettings {
    std::string server;
    std::string action = "upload";
    std::string target;  // store_to_modality / store_to_peer
    std::string label;   // label: when the message names none
};

bool storesTo(const std::string& action) { return action == "store_to_modality" || action == "store_to_peer"; }

const config::Map<DestinationSettings>& destinationMap() {
    using S = DestinationSettings;
    static const config::Map<S> map(
        {
            {"server", &S::server, config::required, "the Orthanc server, as named in junction.yaml's orthanc section"},
            {"action", &S::action,
             config::oneOf({"upload", "store_to_modality", "store_to_peer", "set_metadata", "label", "delete"}),
             "what is done with each message (see Orthanc in channels.md)"},
            {"target", &S::target, config::byDefault("required with store_to_modality and store_to_peer"),
             "the modality or peer, as Orthanc's configuration names it"},
            {"label", &S::label, "action label: the label set when the message names none"},
        },
        [](S& s, const config::Node& n) {
            if (storesTo(s.action) && s.target.empty())
                n.find("action")->fail("action " + s.action + " needs target (the name Orthanc gives the " +
                                       (s.action == "store_to_peer" ? "peer)" : "modality)"));
            if (!s.target.empty() && !storesTo(s.action))
                n.find("target")->fail("target is for actions store_to_modality and store_to_peer");
            if (!s.label.empty() && s.action != "label") n.find("label")->fail("label is for action label");
        });
    return map;
}

// ---------------------------------------------------------------- the message

// The URL segment of a resource level: "Study", "study" and "studies" are "studies".
std::string levelPath(std::string level) {
    for (auto& c : level) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (level == "patient" || level == "patients") return "patients";
    if (level == "study" || level == "studies") return "studies";
    if (level == "series") return "series";
    if (level == "instance" || level == "instances") return "instances";
    return {};
}

struct Resource {
    std::string level;  // "studies", ... ("" when the message does not say)
    std::string id;     // Orthanc's identifier
};

Object::Ptr messageObject(const std::string& content, std::string& error) {
    try {
        Poco::Dynamic::Var v = Poco::JSON::Parser().parse(content);
        if (v.type() == typeid(Object::Ptr)) return v.extract<Object::Ptr>();
        error = "the message is not a JSON object";
    } catch (const Poco::Exception& e) {
        error = "the message is not JSON: " + e.displayText();
    }
    return nullptr;
}

// The resources a message names: "resources" (Orthanc identifiers, or objects
// with level and id), else "level" and "id", else an orthanc source's change
// ("change": ResourceType and ID), else an Orthanc resource itself (Type and ID).
bool resourcesOf(const Object& msg, bool needLevel, std::vector<Resource>& out, std::string& error) {
    std::string level = levelPath(msg.optValue<std::string>("level", ""));
    auto one = [&](const Object& o) {
        std::string lv = o.optValue<std::string>("level", o.optValue<std::string>("Type", o.optValue<std::string>("ResourceType", "")));
        out.push_back({lv.empty() ? level : levelPath(lv), o.optValue<std::string>("id", o.optValue<std::string>("ID", ""))});
    };
    if (Array::Ptr list = msg.getArray("resources")) {
        for (std::size_t i = 0; i < list->size(); ++i) {
            if (Object::Ptr o = list->getObject(static_cast<unsigned>(i))) one(*o);
            else out.push_back({level, list->getElement<std::string>(static_cast<unsigned>(i))});
        }
    } else if (msg.has("id")) {
        out.push_back({level, msg.optValue<std::string>("id", "")});
    } else if (Object::Ptr change = msg.getObject("change")) {
        one(*change);
    } else if (msg.has("ID")) {
        one(msg);
    }
    if (out.empty()) {
        error = "the message names no Orthanc resource (\"resources\": [...], or \"level\" and \"id\", or an orthanc "
                "source's \"change\")";
        return false;
    }
    for (const auto& r : out) {
        if (r.id.empty()) {
            error = "the message names a resource without its Orthanc id";
            return false;
        }
        if (needLevel && r.level.empty()) {
            error = "the message does not say the level of resource " + r.id +
                    " (\"level\": patient, study, series or instance)";
            return false;
        }
    }
    return true;
}

std::string scalarText(const Poco::Dynamic::Var& v) {
    if (v.isString()) return v.convert<std::string>();
    std::ostringstream out;
    Poco::JSON::Stringifier::stringify(v, out);
    return out.str();
}

// ---------------------------------------------------------------- destination

class OrthancDestination : public core::Destination {
public:
    OrthancDestination(DestinationSettings s, orthanc::Server& server) : s_(std::move(s)), server_(server) {}

    core::SendResult send(const core::Outbound& m) override {
        answers_.clear();
        if (s_.action == "upload") return upload(m.content);
        std::string error;
        Object::Ptr msg = messageObject(m.content, error);
        std::vector<Resource> resources;
        if (!msg || !resourcesOf(*msg, !storesTo(s_.action), resources, error)) return core::SendResult::fail(error);
        if (storesTo(s_.action)) return store(resources);
        for (const auto& r : resources) {
            std::string base = "/" + r.level + "/" + r.id;
            std::optional<core::SendResult> failed;
            if (s_.action == "delete") failed = call("DELETE", base);
            else if (s_.action == "set_metadata") failed = setMetadata(*msg, base);
            else failed = setLabels(*msg, base);
            if (failed) return *failed;
        }
        return core::SendResult::ok(response());
    }

    std::string describe() const override {
        return "orthanc " + s_.server + " " + s_.action + (s_.target.empty() ? "" : " " + s_.target);
    }

private:
    core::SendResult upload(const std::string& content) {
        // A DICOM file itself (Part 10: "DICM" after the 128-byte preamble), or a
        // message naming files (a dicom source's), its tag edits applied to one.
        if (dicom::isPart10(content)) {
            if (auto failed = call("POST", "/instances", content, "application/dicom")) return *failed;
            return core::SendResult::ok(response());
        }
        std::vector<std::string> files;
        bool single = true;
        std::string error;
        if (!dicom::messageFiles(content, files, single, error))
            return core::SendResult::fail("the message is no DICOM file and names none: " + error);
        for (const auto& f : files) {
            std::string bytes;
            dicom::EditResult r = dicom::part10Bytes(f, single ? content : std::string(), bytes);
            if (!r.ok) return core::SendResult::fail(r.error);
            if (auto failed = call("POST", "/instances", bytes, "application/dicom")) return *failed;
        }
        return core::SendResult::ok(response());
    }

    core::SendResult store(const std::vector<Resource>& resources) {
        Object body;
        Array::Ptr ids = new Array;
        for (const auto& r : resources) ids->add(r.id);
        body.set("Resources", ids);
        body.set("Synchronous", true);
        std::ostringstream text;
        body.stringify(text);
        std::string path = std::string(s_.action == "store_to_peer" ? "/peers/" : "/modalities/") +
                           http::urlEncode(s_.target) + "/store";
        if (auto failed = call("POST", path, text.str(), "application/json")) return *failed;
        return core::SendResult::ok(response());
    }

    std::optional<core::SendResult> setMetadata(const Object& msg, const std::string& base) {
        Object::Ptr metadata = msg.getObject("metadata");
        if (!metadata || metadata->size() == 0)
            return core::SendResult::fail("the message has no \"metadata\" to set ({\"metadata\": {\"NAME\": \"value\"}})");
        for (const auto& [name, value] : *metadata)
            if (auto failed = call("PUT", base + "/metadata/" + http::urlEncode(name), scalarText(value), "text/plain"))
                return failed;
        return std::nullopt;
    }

    std::optional<core::SendResult> setLabels(const Object& msg, const std::string& base) {
        std::vector<std::string> labels;
        if (Array::Ptr list = msg.getArray("labels"))
            for (std::size_t i = 0; i < list->size(); ++i) labels.push_back(list->getElement<std::string>(static_cast<unsigned>(i)));
        else if (msg.has("label")) labels.push_back(msg.getValue<std::string>("label"));
        else if (!s_.label.empty()) labels.push_back(s_.label);
        if (labels.empty())
            return core::SendResult::fail("the message names no label (\"labels\": [...] or \"label\") and the destination has none");
        for (const auto& label : labels) {
            std::string path = base + "/labels/" + http::urlEncode(label);
            if (auto failed = call("PUT", path)) {
                // Orthanc knows labels since 1.12; an older one has no such path.
                if (failed->kind == core::SendResult::Kind::Error && failed->error.find(": 404 ") != std::string::npos)
                    failed->error += versionNote();
                return failed;
            }
        }
        return std::nullopt;
    }

    // " (labels need Orthanc 1.12 or later; server 'x' runs 1.10.1)" when it is older, else "".
    std::string versionNote() {
        http::Result r = server_.call("GET", "/system");
        if (!r.answered || r.response.status != 200) return {};
        std::string error;
        Object::Ptr system = messageObject(r.response.body, error);
        std::string version = system ? system->optValue<std::string>("Version", "") : "";
        int major = 0, minor = 0;
        if (std::sscanf(version.c_str(), "%d.%d", &major, &minor) != 2 || major > 1 || (major == 1 && minor >= 12)) return {};
        return " (labels need Orthanc 1.12 or later; server '" + s_.server + "' runs " + version + ")";
    }

    // One call; its answer is kept for the response. Nothing when it succeeded,
    // else the send's result: retried without an answer, on a server error, on
    // 429 and on refused credentials (fixed on the server's side); an error otherwise.
    std::optional<core::SendResult> call(const std::string& method, const std::string& path, const std::string& body = {},
                                         const std::string& contentType = {}) {
        http::Result r = server_.call(method, path, body, contentType);
        if (r.answered) answers_.push_back(r.response.body);
        if (r.answered && r.response.status >= 200 && r.response.status < 300) return std::nullopt;
        std::string error = callError(server_, method, path, r);
        std::string answer = r.answered ? r.response.body : std::string();
        bool later = !r.answered || r.response.status >= 500 || r.response.status == 429 ||
                     r.response.status == 401 || r.response.status == 403;
        return later ? core::SendResult::retry(error, answer) : core::SendResult::fail(error, answer);
    }

    // Orthanc's answer; several (a study's files, several metadata) as a JSON array.
    std::string response() const {
        if (answers_.size() == 1) return answers_.front();
        std::string out = "[";
        for (std::size_t i = 0; i < answers_.size(); ++i) {
            std::string a = answers_[i];
            while (!a.empty() && (a.back() == '\n' || a.back() == ' ')) a.pop_back();
            out += (i ? "," : "") + (a.empty() ? std::string("null") : a);
        }
        return out + "]";
    }

    DestinationSettings s_;
    orthanc::Server& server_;
    std::vector<std::string> answers_;  // of the message being sent
};

class DestinationFactory : public core::MappedDestinationFactory<DestinationSettings> {
public:
    DestinationFactory() : MappedDestinationFactory(destinationMap()) {}

protected:
    std::unique_ptr<core::Destination> build(DestinationSettings s, const core::BuildContext& ctx) const override {
        orthanc::Server& server = serverNamed(ctx, s.server, "destination (orthanc)");
        return std::make_unique<OrthancDestination>(std::move(s), server);
    }
};

}  // namespace

std::unique_ptr<core::DestinationFactory> destinationFactory() { return std::make_unique<DestinationFactory>(); }

}  // namespace junction::connectors::orthanc_connector
