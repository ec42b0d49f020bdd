// The engine (engine.h): the store, the channels loaded from the channel
// folder, starting and stopping them, reloads and redeploys, prunes, and
// what the admin API and CLI ask of them.
#include "engine/core/engine.h"

#include <set>

#include "engine/core/channel.h"
#include "engine/util/file_text.h"
#include "engine/util/log.h"

namespace junction::core {

namespace {

// A channel's file text and its script's: what a reload compares. The file is
// read before it is parsed, so a change made meanwhile shows at the next reload.
std::string fingerprint(const std::string& fileText, const ChannelConfig& c) {
    return fileText + '\0' + (c.script.empty() ? std::string() : util::readFileText(c.script));
}

}  // namespace

const char* toString(ChannelState s) {
    switch (s) {
        case ChannelState::Stopped: return "stopped";
        case ChannelState::Running: return "running";
        case ChannelState::Paused: return "paused";
        case ChannelState::Failed: return "failed";
    }
    return "?";
}

SubmitResult SourceContext::submitAndWait(Inbound message) {
    std::mutex m;
    std::condition_variable cv;
    bool ready = false;
    SubmitResult result;
    submit(std::move(message), [&](SubmitResult r) {
        std::lock_guard<std::mutex> lock(m);
        result = std::move(r);
        ready = true;
        cv.notify_one();
    });
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return ready; });
    return result;
}

Engine::Engine(EngineOptions options, const ConnectorRegistry& connectors)
    : options_(std::move(options)), connectors_(connectors), globalMap_(std::make_shared<lua::SharedMap>()) {
    if (options_.config.store.type != "sqlite")
        throw std::runtime_error("store type '" + options_.config.store.type + "' is not available in this build");
    store_ = store::openSqliteStore(options_.config.store.path, options_.store);
    worklist_ = store::openSqliteWorklist(options_.config.store.path, options_.store.synchronousFull,
                                          options_.worklistBusyTimeoutMs);
    keyValues_ = store::openSqliteKeyValues(options_.config.store.path, options_.store.synchronousFull,
                                            options_.worklistBusyTimeoutMs);
    stats_ = std::make_unique<StatsRecorder>(
        // A write that waits long for the database is given up and made at the next one.
        store::openSqliteStats(options_.config.store.path, options_.store.synchronousFull, 1000),
        [this] { return channels(); });
    // A short wait for the database: events that cannot be written wait and are tried again.
    events_ = store::openSqliteEvents(options_.config.store.path, options_.store.synchronousFull, 1000);
    if (!options_.config.alerts.empty())
        alerts_ = std::make_unique<AlertMonitor>(
            options_.config.alerts,
            AlertSinks{[this] { return channels(); },
                       [this](const std::string& type, const std::string& channel, const std::string& text) {
                           recordEvent(type, channel, text);
                       }});
    for (const auto& c : options_.config.orthanc) {
        orthanc::ServerOptions o;
        o.name = c.name;
        o.url = c.url;
        o.username = c.username;
        o.password = c.password;
        o.timeout = c.timeout;
        o.tls.ca = c.tls.ca;
        o.tls.verify = c.tls.verify;
        orthanc_.add(std::move(o));
    }
}

void Engine::checkOrthancServers() {
    for (const auto& name : orthanc_.names()) {
        orthanc::Server& server = *orthanc_.find(name);
        std::string why = server.check();
        if (why.empty())
            util::logLine(util::LogLevel::Info, "orthanc server '" + name + "' (" + server.options().url + "): reachable",
                          util::LogStream::Out);
        else util::logLine(util::LogLevel::Warn, "junction: warning: " + why);
    }
}

Engine::~Engine() { stop(); }

store::MessageStore& Engine::store() { return *store_; }

void Engine::recordEvent(const std::string& type, const std::string& channel, const std::string& text,
                         const std::string& user, const std::string& address) {
    if (events_) events_->record({0, {}, type, channel, user, address, text});
}

std::vector<AlertStatus> Engine::alerts() const { return alerts_ ? alerts_->status() : std::vector<AlertStatus>{}; }

store::WorklistStore& Engine::worklist() { return *worklist_; }

BuildContext Engine::buildContext(const ChannelConfig& c) {
    return {c.name, c.baseDir, c.workers, c.dataType, worklist_.get(), this,
            StoreFacts{options_.config.store.path, options_.store.synchronousFull}, &orthanc_};
}

Channel* Engine::find(const std::string& name) const {
    auto it = channels_.find(name);
    return it == channels_.end() ? nullptr : it->second.get();
}

void Engine::check(const ChannelConfig& c) const {
    if (c.script.empty()) return;
    std::string err;
    auto rt = lua::ScriptRuntime::load(c.script, options_.limits, &err);
    if (!rt) throw config::ConfigError(c.file, 0, 0, "script " + err);
    config::ConfigProblems problems;
    auto need = [&](const std::string& fn, const std::string& key, const config::Mark& m) {
        if (fn.empty() || rt->hasFunction(fn)) return;
        problems.attempt([&] {
            throw config::ConfigError(m.file, m.line, m.column,
                                      key + ": function '" + fn + "' is not defined in " + c.script,
                                      "define 'function " + fn + "(msg) ... end' in the script");
        });
    };
    for (auto [fn, key] : {std::pair{&c.preprocessor, "preprocessor"}, std::pair{&c.filter, "filter"},
                           std::pair{&c.transform, "transform"}, std::pair{&c.postprocessor, "postprocessor"}}) {
        auto at = c.functionMarks.find(key);
        need(*fn, key, at != c.functionMarks.end() ? at->second : config::Mark{c.file, 0, 0});
    }
    for (const auto& d : c.destinations)
        for (auto [fn, key] : {std::pair{&d.filter, "filter"}, std::pair{&d.transform, "transform"},
                               std::pair{&d.response, "response"}}) {
            const config::Node* n = d.settings.find(key);
            need(*fn, "destination " + d.name + " " + key, n ? n->mark : d.mark);
        }
    problems.finish();
}

void Engine::addChannel(ChannelConfig channel) {
    check(channel);
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    if (find(channel.name))
        throw config::ConfigError(channel.file, 1, 1, "duplicate channel name '" + channel.name + "'",
                                  "also in " + find(channel.name)->config().file);
    auto* factory = connectors_.source(channel.sourceType);
    int port = factory ? factory->listenPort(channel.sourceSettings) : 0;
    if (port && port == options_.config.admin.port)
        throw config::ConfigError(channel.file, channel.sourceSettings.mark.line, channel.sourceSettings.mark.column,
                                  "port " + std::to_string(port) + " is the admin port");
    for (const auto& [name, other] : channels_) {
        auto* of = connectors_.source(other->config().sourceType);
        if (port && of && of->listenPort(other->config().sourceSettings) == port)
            throw config::ConfigError(channel.file, channel.sourceSettings.mark.line,
                                      channel.sourceSettings.mark.column,
                                      "port " + std::to_string(port) + " is already used by channel " + name,
                                      other->config().file);
    }
    std::string name = channel.name, file = channel.file;
    channels_.emplace(name, std::make_shared<Channel>(std::move(channel), *this));
    recordEvent("channel.deployed", name, file);
}

std::vector<LoadProblem> Engine::loadChannels() {
    std::vector<LoadProblem> problems;
    for (const auto& file : config::listChannelFiles(options_.config)) {
        try {
            auto [c, fp] = readChannel(file);
            std::string name = c.name;
            addChannel(std::move(c));
            fingerprints_[name] = std::move(fp);
        } catch (const config::ConfigError& e) {
            problems.push_back({file, e.what()});
        } catch (const std::exception& e) {
            problems.push_back({file, file + ": " + e.what()});
        }
    }
    return problems;
}

std::uint64_t Engine::pruneNow() {
    std::vector<std::pair<std::string, std::chrono::milliseconds>> ages;
    {
        std::lock_guard<std::recursive_mutex> lock(mutex_);
        for (const auto& [name, ch] : channels_)
            if (ch->config().pruneAfter.count() > 0) ages.emplace_back(name, ch->config().pruneAfter);
    }
    std::uint64_t removed = 0;
    for (const auto& [name, age] : ages) {
        try {
            removed += store_->prune(name, store::Clock::now() - age);
        } catch (const std::exception& e) {
            util::logLine(util::LogLevel::Error, "[" + name + "] pruning failed: " + e.what(), util::LogStream::Err, name);
        }
    }
    std::uint64_t events = 0;
    try {
        events = events_->prune(std::chrono::system_clock::now() - options_.config.events.keep);
    } catch (const std::exception& e) {
        util::logLine(util::LogLevel::Error, std::string("junction: pruning the event log failed: ") + e.what());
    }
    recordEvent("prune", "", "removed " + std::to_string(removed) + " message(s) and " + std::to_string(events) +
                                 " event(s)");
    return removed;
}

void Engine::start() {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    if (!pruner_.joinable()) {
        prunerStop_ = false;
        pruner_ = std::thread([this] {
            std::unique_lock<std::mutex> lock(prunerMutex_);
            while (!prunerStop_) {
                lock.unlock();
                pruneNow();
                lock.lock();
                prunerCv_.wait_for(lock, std::chrono::hours(1), [&] { return prunerStop_; });
            }
        });
    }
    started_ = true;
    stats_->start();
    if (alerts_) alerts_->start();
    for (auto& [name, ch] : channels_) {
        if (!ch->config().enabled) continue;
        try {
            ch->start();
        } catch (const std::exception& e) {
            util::logLine(util::LogLevel::Error, "[" + name + "] failed to start: " + e.what(), util::LogStream::Err, name);
        }
    }
}

void Engine::stop(const std::function<void(const std::string&)>& progress) {
    auto next = [&](const std::string& what) {
        if (progress) progress(what);
    };
    {
        std::lock_guard<std::mutex> lock(prunerMutex_);
        prunerStop_ = true;
    }
    prunerCv_.notify_all();
    next("the pruner (a prune run in progress)");
    if (pruner_.joinable()) pruner_.join();
    // Before the lock: its thread reads the channels, under that lock.
    next("the statistics (a write in progress)");
    if (stats_) stats_->stop();
    next("the alerts (a webhook in progress)");
    if (alerts_) alerts_->stop();
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    for (auto& [name, ch] : channels_) {
        next("channel " + name + " (its source, workers and deliveries)");
        ch->stop();
    }
    next("the store (writing what it holds to the database)");
    if (store_) store_->flush();
    next("the statistics (their last write)");
    if (stats_ && !stats_->finalFlush())
        util::logLine(util::LogLevel::Warn, "junction: the last statistics were not written (the database stayed busy)");
    started_ = false;
}

bool Engine::startChannel(const std::string& name) {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    Channel* ch = find(name);
    if (!ch) return false;
    ch->start();
    return true;
}

bool Engine::stopChannel(const std::string& name) {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    Channel* ch = find(name);
    if (!ch) return false;
    ch->stop();
    return true;
}

bool Engine::pauseChannel(const std::string& name) {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    Channel* ch = find(name);
    if (!ch) return false;
    ch->pause();
    return true;
}

bool Engine::triggerChannel(const std::string& name) {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    Channel* ch = find(name);
    return ch && ch->trigger();
}

bool Engine::resumeChannel(const std::string& name) {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    Channel* ch = find(name);
    if (!ch) return false;
    ch->resume();
    return true;
}

void Engine::redeployChannel(const std::string& name) {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    Channel* ch = find(name);
    if (!ch) throw std::runtime_error("no channel named " + name);
    auto [fresh, fp] = readChannel(ch->config().file);
    if (fresh.name != name)
        throw config::ConfigError(fresh.file, 1, 1, "the channel was renamed to '" + fresh.name + "'",
                                  "a redeploy keeps the name; add it as a new channel instead");
    check(fresh);
    replaceChannel(name, std::move(fresh));
    fingerprints_[name] = std::move(fp);
}

std::pair<ChannelConfig, std::string> Engine::readChannel(const std::string& file) const {
    std::string text = util::readFileText(file);
    ChannelConfig c = parseChannelFile(file, options_.config.baseDir, connectors_);
    std::string fp = fingerprint(text, c);
    return {std::move(c), std::move(fp)};
}

void Engine::startIfWanted(Channel& ch, bool wasRunning) {
    if (!(started_ || wasRunning) || !ch.config().enabled) return;
    try {
        ch.start();
    } catch (const std::exception& e) {
        util::logLine(util::LogLevel::Error, "[" + ch.config().name + "] failed to start: " + e.what(),
                      util::LogStream::Err, ch.config().name);
    }
}

void Engine::replaceChannel(const std::string& name, ChannelConfig fresh) {
    std::shared_ptr<Channel> old = channels_.at(name);
    bool wasRunning = old->state() == ChannelState::Running || old->state() == ChannelState::Paused;
    old->stop();  // queued deliveries stay in the store
    stats_->restarted(name);  // what it counted is written; its successor counts from zero
    channels_.erase(name);
    try {
        addChannel(std::move(fresh));
    } catch (...) {
        channels_.emplace(name, old);
        if (wasRunning) old->start();
        throw;
    }
    startIfWanted(*find(name), wasRunning);
}

ReloadResult Engine::reloadChannels() {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    ReloadResult result;
    struct Fresh {
        ChannelConfig config;
        std::string fingerprint;
    };
    std::vector<Fresh> fresh;
    std::set<std::string> brokenFiles;
    for (const auto& file : config::listChannelFiles(options_.config)) {
        try {
            auto [c, fp] = readChannel(file);
            check(c);
            fresh.push_back({std::move(c), std::move(fp)});
        } catch (const config::ConfigError& e) {
            result.problems.push_back({file, e.what()});
            brokenFiles.insert(file);
        } catch (const std::exception& e) {
            result.problems.push_back({file, file + ": " + e.what()});
            brokenFiles.insert(file);
        }
    }
    // Gone first, so that a renamed channel's port is free for its new name.
    std::set<std::string> named;
    for (const auto& f : fresh) named.insert(f.config.name);
    for (auto it = channels_.begin(); it != channels_.end();) {
        const std::string& file = it->second->config().file;
        if (named.count(it->first) || brokenFiles.count(file)) {
            ++it;
            continue;
        }
        it->second->stop();
        result.removed.push_back(it->first);
        fingerprints_.erase(it->first);
        it = channels_.erase(it);
    }
    std::set<std::string> done;
    for (auto& f : fresh) {
        std::string name = f.config.name, file = f.config.file;
        try {
            if (!done.insert(name).second)
                throw config::ConfigError(file, 1, 1, "duplicate channel name '" + name + "'",
                                          "another file of the folder names it too");
            if (find(name)) {
                auto known = fingerprints_.find(name);
                if (known != fingerprints_.end() && known->second == f.fingerprint &&
                    find(name)->config().file == file) {
                    ++result.unchanged;
                    continue;
                }
                replaceChannel(name, std::move(f.config));
                result.redeployed.push_back(name);
            } else {
                addChannel(std::move(f.config));
                startIfWanted(*find(name));
                result.added.push_back(name);
            }
            fingerprints_[name] = std::move(f.fingerprint);
        } catch (const std::exception& e) {
            result.problems.push_back({file, e.what()});
        }
    }
    return result;
}

std::vector<ChannelInfo> Engine::channels() const {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    std::vector<ChannelInfo> out;
    for (const auto& [name, ch] : channels_) out.push_back(ch->info());
    return out;
}

std::optional<ChannelInfo> Engine::channel(const std::string& name) const {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    Channel* ch = find(name);
    if (!ch) return std::nullopt;
    return ch->info();
}

bool Engine::submitTo(const std::string& name, Inbound message, std::function<void(SubmitResult)> done) {
    std::shared_ptr<Channel> ch;
    {
        std::lock_guard<std::recursive_mutex> lock(mutex_);
        auto it = channels_.find(name);
        if (it == channels_.end() || it->second->state() != ChannelState::Running) return false;
        ch = it->second;  // stays alive even if the channel is redeployed meanwhile
    }
    ch->submit(std::move(message), std::move(done));
    return true;
}

}  // namespace junction::core
