// Prometheus text format of the engine's figures (metrics.h).
#include "engine/admin/metrics.h"

#include <charconv>
#include <cstdio>
#include <functional>

namespace junction::admin {

namespace {

// A label value: backslash, double quote and line feed escaped.
std::string escape(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return buf;
}

class Family {
public:
    Family(std::string& out, const char* name, const char* type, const char* help) : out_(out), name_(name) {
        out_ += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    }
    // labels: {{"channel", "x"}, ...}
    void sample(std::initializer_list<std::pair<const char*, std::string>> labels, double value, const char* suffix = "") {
        out_ += name_;
        out_ += suffix;
        if (labels.size()) {
            out_ += '{';
            bool first = true;
            for (const auto& [k, v] : labels) {
                if (!first) out_ += ',';
                first = false;
                out_ += k;
                out_ += "=\"" + escape(v) + "\"";
            }
            out_ += '}';
        }
        out_ += ' ' + number(value) + '\n';
    }

private:
    std::string& out_;
    std::string name_;
};

const std::pair<const char*, std::uint64_t core::CountersSnapshot::*> kCounters[] = {
    {"received", &core::CountersSnapshot::received}, {"filtered", &core::CountersSnapshot::filtered},
    {"queued", &core::CountersSnapshot::queued},     {"sent", &core::CountersSnapshot::sent},
    {"errored", &core::CountersSnapshot::errored},   {"retried", &core::CountersSnapshot::retried},
};

// The histogram's boundaries: every other bucket of core::Histogram (powers
// of 2 µs, 1 µs to ~67 s), in seconds, as they are written.
struct Boundary {
    int lastBucket;  // buckets 0..lastBucket are below it
    std::string le;
};
const std::vector<Boundary>& boundaries() {
    static const std::vector<Boundary> b = [] {
        std::vector<Boundary> out;
        for (int k = 0; k < core::Histogram::kBuckets; k += 2)
            out.push_back({k, number(core::Histogram::bucketUpperUs(k) / 1e6)});
        return out;
    }();
    return b;
}

const core::PersistedStats& persistedOf(const std::map<core::StatsRecorder::Key, core::PersistedStats>& persisted,
                                        const std::string& channel, const std::string& destination) {
    static const core::PersistedStats none;
    auto it = persisted.find({channel, destination});
    return it == persisted.end() ? none : it->second;
}

// One histogram's samples: cumulative buckets, +Inf, sum and count. Appended
// piece by piece: with a hundred channels these are most of the answer.
void histogram(std::string& out, const std::string& name, const std::string& labels, const core::StatsFigures& f) {
    auto count = [&out](std::uint64_t v) {
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof buf, v);
        out.append(buf, r.ptr);
        out += '\n';
    };
    std::uint64_t cumulative = 0;
    std::size_t next = 0;
    const auto& b = f.latencyBuckets;
    for (const auto& boundary : boundaries()) {
        for (; next <= static_cast<std::size_t>(boundary.lastBucket); ++next)
            if (next < b.size()) cumulative += b[next];
        out += name;
        out += "_bucket{";
        out += labels;
        out += ",le=\"";
        out += boundary.le;
        out += "\"} ";
        count(cumulative);
    }
    out += name;
    out += "_bucket{";
    out += labels;
    out += ",le=\"+Inf\"} ";
    count(f.latencyCount);
    out += name + "_sum{" + labels + "} " + number(static_cast<double>(f.latencySumUs) / 1e6) + "\n";
    out += name + "_count{" + labels + "} ";
    count(f.latencyCount);
}

}  // namespace

std::string prometheusText(const std::vector<core::ChannelInfo>& channels,
                           const std::map<core::StatsRecorder::Key, core::PersistedStats>& persisted) {
    std::string out;
    out.reserve(4096 + channels.size() * 8192);
    {
        Family f(out, "junction_up", "gauge", "1 while the engine serves");
        f.sample({}, 1);
    }
    {
        Family f(out, "junction_messages_total", "counter",
                 "Messages of a channel by what became of them, since the channel was created");
        for (const auto& c : channels) {
            const auto& total = persistedOf(persisted, c.name, {}).total.counters;
            for (const auto& [status, field] : kCounters)
                f.sample({{"channel", c.name}, {"status", status}}, static_cast<double>(total.*field));
        }
    }
    {
        Family f(out, "junction_destination_messages_total", "counter",
                 "Deliveries of a destination by what became of them, since the destination was created");
        for (const auto& c : channels)
            for (const auto& d : c.destinations) {
                const auto& total = persistedOf(persisted, c.name, d.name).total.counters;
                for (const auto& [status, field] : kCounters)
                    f.sample({{"channel", c.name}, {"destination", d.name}, {"status", status}},
                             static_cast<double>(total.*field));
            }
    }
    {
        Family f(out, "junction_destination_queue_depth", "gauge", "Deliveries waiting in the store");
        for (const auto& c : channels)
            for (const auto& d : c.destinations)
                f.sample({{"channel", c.name}, {"destination", d.name}}, static_cast<double>(d.queued));
    }
    {
        Family f(out, "junction_destination_failing", "gauge", "1 while a destination's attempts fail");
        for (const auto& c : channels)
            for (const auto& d : c.destinations) f.sample({{"channel", c.name}, {"destination", d.name}}, d.failing ? 1 : 0);
    }
    {
        Family f(out, "junction_channel_state", "gauge", "1 for the state a channel is in");
        for (const auto& c : channels)
            for (auto s : {core::ChannelState::Stopped, core::ChannelState::Running, core::ChannelState::Paused,
                           core::ChannelState::Failed})
                f.sample({{"channel", c.name}, {"state", core::toString(s)}}, c.state == s ? 1 : 0);
    }
    {
        Family f(out, "junction_channel_back_pressure", "gauge", "1 while a channel's source is held by a full queue");
        for (const auto& c : channels) f.sample({{"channel", c.name}}, c.backPressure ? 1 : 0);
    }
    {
        Family f(out, "junction_channel_latency_seconds", "histogram",
                 "Time from receipt to processed, since the channel was created");
        for (const auto& c : channels)
            histogram(out, "junction_channel_latency_seconds", "channel=\"" + escape(c.name) + "\"",
                      persistedOf(persisted, c.name, {}).total);
    }
    {
        Family f(out, "junction_destination_latency_seconds", "histogram",
                 "Time from receipt to sent, since the destination was created");
        for (const auto& c : channels)
            for (const auto& d : c.destinations)
                histogram(out, "junction_destination_latency_seconds",
                          "channel=\"" + escape(c.name) + "\",destination=\"" + escape(d.name) + "\"",
                          persistedOf(persisted, c.name, d.name).total);
    }
    return out;
}

}  // namespace junction::admin
