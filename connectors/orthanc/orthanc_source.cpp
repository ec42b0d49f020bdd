// The `orthanc` source: follows an Orthanc server's changes (GET /changes),
// makes each change it keeps a JSON message with the resource it is about, and
// stores the change's sequence number with that message (Inbound::mark), so a
// restart goes on after the last change stored: none missed, none twice.
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "connectors/orthanc/orthanc_common.h"
#include "engine/util/loop_thread.h"

namespace junction::connectors::orthanc_connector {

namespace {

using namespace std::chrono_literals;
using Poco::JSON::Array;
using Poco::JSON::Object;

// ---------------------------------------------------------------- settings

struct SourceSettings {
    std::string server;
    std::vector<std::string> changes;  // empty: every change type
    std::string expand = "series";     // series | instances
    std::chrono::milliseconds pollInterval{1000};
    int limit = 100;
    std::string from = "now";  // now | start: where a source with no stored position begins
};

// The change types Orthanc's /changes reports.
const std::vector<std::string>& changeTypes() {
    static const std::vector<std::string> types{
        "NewInstance",      "NewSeries",        "NewStudy",          "NewPatient",      "NewChildInstance",
        "StableSeries",     "StableStudy",      "StablePatient",     "CompletedSeries", "Deleted",
        "UpdatedAttachment", "UpdatedMetadata", "ModifiedStudy",     "ModifiedSeries",  "ModifiedPatient",
        "AnonymizedStudy",  "AnonymizedSeries", "AnonymizedPatient",
    };
    return types;
}

// "" when every entry is a change type, else what is wrong with the first that is not.
std::string checkChangeTypes(const std::vector<std::string>& list) {
    for (const auto& t : list)
        if (std::find(changeTypes().begin(), changeTypes().end(), t) == changeTypes().end()) {
            std::string known;
            for (const auto& k : changeTypes()) known += (known.empty() ? "" : ", ") + k;
            return "changes: unknown Orthanc change type '" + t + "' (one of " + known + ")";
        }
    return {};
}

const config::Map<SourceSettings>& sourceMap() {
    using S = SourceSettings;
    static const config::Map<S> map{
        {"server", &S::server, config::required, "the Orthanc server, as named in junction.yaml's orthanc section"},
        {"changes", &S::changes, config::check(checkChangeTypes), config::byDefault("every change"),
         "change types made messages, e.g. [StableStudy]"},
        {"expand", &S::expand, config::oneOf({"series", "instances"}),
         "a study's message holds its series (series), and each series' instances too (instances)"},
        {"poll_interval", &S::pollInterval, config::range(100ms, 1h), "wait between polls once every change is read"},
        {"limit", &S::limit, config::range(1, 10000), "changes asked for per request"},
        {"from", &S::from, config::oneOf({"now", "start"}),
         "where a source with no stored position begins: now (changes after its start) or start (every change "
         "Orthanc has)"},
    };
    return map;
}

// ---------------------------------------------------------------- JSON

Poco::Dynamic::Var parseJson(const std::string& text) { return Poco::JSON::Parser().parse(text); }

std::string toJson(const Poco::Dynamic::Var& v) {
    std::ostringstream out;
    if (v.type() == typeid(Object::Ptr)) v.extract<Object::Ptr>()->stringify(out);
    else if (v.type() == typeid(Array::Ptr)) v.extract<Array::Ptr>()->stringify(out);
    else Poco::JSON::Stringifier::stringify(v, out);
    return out.str();
}

// The position stored with the messages: the server's name (a position of
// another server is no position here) and the sequence number.
std::string markValue(const std::string& server, std::int64_t seq) {
    Object o;
    o.set("server", server);
    o.set("seq", seq);
    return toJson(Poco::Dynamic::Var(Object::Ptr(new Object(o))));
}

std::optional<std::int64_t> markSeq(const std::string& value, const std::string& server) {
    try {
        auto v = parseJson(value);
        if (v.type() != typeid(Object::Ptr)) return std::nullopt;
        auto o = v.extract<Object::Ptr>();
        if (o->optValue<std::string>("server", "") != server || !o->has("seq")) return std::nullopt;
        return o->getValue<std::int64_t>("seq");
    } catch (const Poco::Exception&) {
        return std::nullopt;
    }
}

// ---------------------------------------------------------------- source

class OrthancSource : public core::Source {
public:
    OrthancSource(SourceSettings s, orthanc::Server& server) : s_(std::move(s)), server_(server) {
        kept_.insert(s_.changes.begin(), s_.changes.end());
    }
    ~OrthancSource() override { stop(); }

    void start(core::SourceContext& ctx) override {
        ctx_ = &ctx;
        thread_.start([this] { loop(); });
    }

    void stop() override { thread_.stop(); }

    // Reads the changes now (a wait between polls, or a back-off, is cut short).
    bool trigger() override { return thread_.trigger(); }

    std::string describe() const override { return "orthanc " + s_.server + " /changes"; }

private:
    // What a step of the loop came to: more to read at once, nothing new
    // (wait poll_interval), or trouble (wait with back-off).
    enum class Step { More, Idle, Trouble, Stop };
    // A resource read for a change: the JSON, or gone (deleted since), or trouble.
    struct Fetched {
        enum class Kind { Ok, Gone, Trouble } kind = Kind::Ok;
        Poco::Dynamic::Var json;
        std::string error;
    };

    void loop() {
        constexpr auto kFirstBackoff = 1s, kMaxBackoff = 30s;
        std::chrono::milliseconds backoff = kFirstBackoff;
        while (thread_.running()) {
            if (!ctx_->waitUntilAccepting()) break;
            Step step = Step::Trouble;
            try {
                step = poll();
            } catch (const std::exception& e) {  // an answer Orthanc would not give: retried like an outage
                trouble(std::string("orthanc server '") + s_.server + "': " + e.what());
            }
            if (step == Step::Stop) break;
            std::chrono::milliseconds wait{0};
            if (step == Step::Trouble) {
                wait = backoff;
                backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
            } else {
                backoff = kFirstBackoff;
                if (step == Step::Idle) wait = s_.pollInterval;
            }
            if (thread_.waitFor(wait) == util::LoopThread::Wake::Trigger) backoff = kFirstBackoff;
        }
    }

    // One round: the server checked, the position known, one page of changes read.
    Step poll() {
        if (!checked_) {
            std::string error = server_.check();
            if (!error.empty()) return trouble(error);
            checked_ = true;
        }
        if (!position_) {
            Step s = establishPosition();
            if (s != Step::More) return s;
        }
        std::string path = "/changes?since=" + std::to_string(*position_) + "&limit=" + std::to_string(s_.limit);
        http::Result r = server_.call("GET", path);
        if (!r.answered || r.response.status != 200) return trouble(callError(server_, "GET", path, r));
        auto answer = parseJson(r.response.body).extract<Object::Ptr>();
        auto changes = answer->getArray("Changes");
        bool done = answer->optValue<bool>("Done", true);
        std::int64_t last = answer->optValue<std::int64_t>("Last", 0);
        recovered();
        if ((!changes || changes->size() == 0) && last < *position_) return restartBehind(last);

        std::int64_t readTo = *position_;  // every change up to here is handled (a message, or skipped)
        for (std::size_t i = 0; changes && i < changes->size(); ++i) {
            if (!thread_.running()) return Step::Stop;
            Object::Ptr change = changes->getObject(static_cast<unsigned>(i));
            if (!change) continue;
            std::int64_t seq = change->getValue<std::int64_t>("Seq");
            if (seq <= readTo) continue;
            std::string type = change->optValue<std::string>("ChangeType", "");
            if (!kept_.empty() && !kept_.count(type)) {
                readTo = seq;
                continue;
            }
            Fetched f = fetch(*change);
            if (f.kind == Fetched::Kind::Trouble) {
                saveSkipped(readTo);
                return trouble(f.error);
            }
            if (f.kind == Fetched::Kind::Gone) {
                ctx_->log("warn", "orthanc server '" + s_.server + "': change " + std::to_string(seq) + " (" + type + " " +
                                      change->optValue<std::string>("ID", "") + "): " + f.error + "; skipped");
                readTo = seq;
                continue;
            }
            if (!ctx_->waitUntilAccepting()) return Step::Stop;
            Object::Ptr message = new Object;
            message->set("change", change);
            message->set("server", s_.server);
            message->set("resource", f.json);
            core::SubmitResult res = ctx_->submitAndWait(core::Inbound{
                toJson(message), "orthanc " + s_.server + " change " + std::to_string(seq), {}, markValue(s_.server, seq)});
            if (!res.accepted) {
                saveSkipped(readTo);
                ctx_->log("error", "orthanc server '" + s_.server + "': change " + std::to_string(seq) +
                                       " not stored: " + res.error + "; read again shortly");
                return Step::Trouble;
            }
            position_ = readTo = seq;
        }
        if (!saveSkipped(readTo)) return Step::Trouble;
        return done ? Step::Idle : Step::More;
    }

    // Where a source begins: the stored position, or where `from` says (then
    // stored at once, so that a restart goes on from there).
    Step establishPosition() {
        std::optional<std::string> stored = ctx_->sourceMark();
        std::optional<std::int64_t> seq = stored ? markSeq(*stored, s_.server) : std::nullopt;
        if (seq) {
            position_ = *seq;
            ctx_->log("info", "following the changes of orthanc server '" + s_.server + "' after change " +
                                  std::to_string(*seq) + " (the stored position)");
            return Step::More;
        }
        if (stored)
            ctx_->log("warn", "the stored position " + *stored + " is not one of orthanc server '" + s_.server +
                                  "'; starting from: " + s_.from);
        return begin("from: " + s_.from);
    }

    // The server's last change is before the stored position: a new or reset
    // Orthanc. Its changes are followed again from where `from` says.
    Step restartBehind(std::int64_t last) {
        ctx_->log("warn", "orthanc server '" + s_.server + "' has no change after " + std::to_string(last) +
                              ", before the stored position " + std::to_string(*position_) +
                              " (a new or reset Orthanc?); following it from: " + s_.from);
        return begin("from: " + s_.from + ", after a reset");
    }

    Step begin(const std::string& why) {
        std::int64_t seq = 0;
        if (s_.from == "now") {
            http::Result r = server_.call("GET", "/changes?last");
            if (!r.answered || r.response.status != 200) return trouble(callError(server_, "GET", "/changes?last", r));
            seq = parseJson(r.response.body).extract<Object::Ptr>()->optValue<std::int64_t>("Last", 0);
        }
        if (!storeMark(seq)) return Step::Trouble;
        position_ = seq;
        ctx_->log("info", "following the changes of orthanc server '" + s_.server + "' after change " +
                              std::to_string(seq) + " (" + why + ")");
        return Step::More;
    }

    // Changes read past without a message (filtered, deleted): their position
    // is stored alone, so a restart does not read them again.
    bool saveSkipped(std::int64_t readTo) {
        if (!position_ || readTo <= *position_) return true;
        if (!storeMark(readTo)) return false;
        position_ = readTo;
        return true;
    }

    bool storeMark(std::int64_t seq) {
        std::promise<core::SubmitResult> p;
        auto f = p.get_future();
        ctx_->submitMark(markValue(s_.server, seq), [&](core::SubmitResult r) { p.set_value(std::move(r)); });
        core::SubmitResult r = f.get();
        if (!r.accepted) ctx_->log("error", "orthanc server '" + s_.server + "': " + r.error);
        return r.accepted;
    }

    // The resource a change is about, as the message carries it.
    Fetched fetch(const Object& change) {
        std::string type = change.optValue<std::string>("ChangeType", "");
        std::string level = change.optValue<std::string>("ResourceType", "");
        std::string id = change.optValue<std::string>("ID", "");
        Fetched out;
        if (type == "Deleted" || id.empty()) return out;  // nothing to read: "resource": null
        std::string base = level == "Patient" ? "/patients/" : level == "Study" ? "/studies/"
                           : level == "Series" ? "/series/" : level == "Instance" ? "/instances/" : "";
        if (base.empty()) return out;
        if (!get(base + id, out)) return out;
        Object::Ptr resource = out.json.extract<Object::Ptr>();
        if (level == "Study") {
            Fetched series;
            if (!get(base + id + "/series", series)) return series;
            Array::Ptr list = series.json.extract<Array::Ptr>();
            if (s_.expand == "instances") {
                Fetched instances;
                if (!get(base + id + "/instances", instances)) return instances;
                std::map<std::string, Array::Ptr> bySeries;
                Array::Ptr all = instances.json.extract<Array::Ptr>();
                for (std::size_t i = 0; i < all->size(); ++i) {
                    Object::Ptr instance = all->getObject(static_cast<unsigned>(i));
                    auto& a = bySeries[instance->optValue<std::string>("ParentSeries", "")];
                    if (!a) a = new Array;
                    a->add(instance);
                }
                for (std::size_t i = 0; i < list->size(); ++i) {
                    Object::Ptr one = list->getObject(static_cast<unsigned>(i));
                    auto it = bySeries.find(one->optValue<std::string>("ID", ""));
                    one->set("Instances", it != bySeries.end() ? it->second : Array::Ptr(new Array));
                }
            }
            resource->set("Series", list);
        } else if (level == "Series" && s_.expand == "instances") {
            Fetched instances;
            if (!get(base + id + "/instances", instances)) return instances;
            resource->set("Instances", instances.json);
        }
        return out;
    }

    // GET `path` into `out` (false, with out's kind and error, when it is not there).
    bool get(const std::string& path, Fetched& out) {
        http::Result r = server_.call("GET", path);
        if (r.answered && r.response.status == 200) {
            out.json = parseJson(r.response.body);
            return true;
        }
        out.kind = r.answered && r.response.status == 404 ? Fetched::Kind::Gone : Fetched::Kind::Trouble;
        out.error = out.kind == Fetched::Kind::Gone ? "GET " + path + ": 404, the resource was deleted before it was read"
                                                    : callError(server_, "GET", path, r);
        return false;
    }

    // An outage is logged once when it begins and once when it ends, not at every poll.
    Step trouble(const std::string& error) {
        if (!troubled_) {
            troubled_ = true;
            troubleSince_ = std::chrono::steady_clock::now();
            failures_ = 0;
            ctx_->log("error", error + "; trying again with back-off (1s doubling up to 30s)");
        }
        ctx_->setProblem(error);
        ++failures_;
        return Step::Trouble;
    }

    void recovered() {
        if (!troubled_) return;
        troubled_ = false;
        ctx_->setProblem("");
        auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - troubleSince_);
        ctx_->log("info", "orthanc server '" + s_.server + "' answers again (after " + std::to_string(failures_) +
                              " failed attempt(s), " + std::to_string(secs.count()) + "s); following its changes after " +
                              std::to_string(position_.value_or(0)));
    }

    SourceSettings s_;
    orthanc::Server& server_;
    std::set<std::string> kept_;  // change types made messages (empty: all)
    core::SourceContext* ctx_ = nullptr;
    util::LoopThread thread_;
    // The source's thread only:
    bool checked_ = false;                  // GET /system answered with these credentials
    std::optional<std::int64_t> position_;  // the last change handled and stored
    bool troubled_ = false;
    std::chrono::steady_clock::time_point troubleSince_;
    int failures_ = 0;
};

class SourceFactory : public core::MappedSourceFactory<SourceSettings> {
public:
    SourceFactory() : MappedSourceFactory(sourceMap()) {}
    std::string defaultDataType() const override { return "json"; }

protected:
    std::unique_ptr<core::Source> build(SourceSettings s, const core::BuildContext& ctx) const override {
        orthanc::Server& server = serverNamed(ctx, s.server, "source (orthanc)");
        return std::make_unique<OrthancSource>(std::move(s), server);
    }
};

}  // namespace

std::unique_ptr<core::SourceFactory> sourceFactory() { return std::make_unique<SourceFactory>(); }

}  // namespace junction::connectors::orthanc_connector
