// Prometheus text format of the engine's figures (metrics.h).
#include "engine/admin/metrics.h"

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

}  // namespace

std::string prometheusText(const std::vector<core::ChannelInfo>& channels) {
    std::string out;
    {
        Family f(out, "junction_up", "gauge", "1 while the engine serves");
        f.sample({}, 1);
    }
    {
        Family f(out, "junction_messages_total", "counter", "Messages of a channel by what became of them, since the start");
        for (const auto& c : channels)
            for (const auto& [status, field] : kCounters) f.sample({{"channel", c.name}, {"status", status}}, static_cast<double>(c.counters.*field));
    }
    {
        Family f(out, "junction_destination_messages_total", "counter",
                 "Deliveries of a destination by what became of them, since the start");
        for (const auto& c : channels)
            for (const auto& d : c.destinations)
                for (const auto& [status, field] : kCounters)
                    f.sample({{"channel", c.name}, {"destination", d.name}, {"status", status}},
                             static_cast<double>(d.counters.*field));
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
        Family f(out, "junction_channel_latency_seconds", "summary", "Time from receipt to processed");
        for (const auto& c : channels) {
            const auto& h = c.latency;
            for (auto [q, v] : {std::pair{"0.5", h.p50Us}, std::pair{"0.9", h.p90Us}, std::pair{"0.99", h.p99Us}})
                f.sample({{"channel", c.name}, {"quantile", q}}, v / 1e6);
            f.sample({{"channel", c.name}}, h.meanUs * static_cast<double>(h.count) / 1e6, "_sum");
            f.sample({{"channel", c.name}}, static_cast<double>(h.count), "_count");
        }
    }
    return out;
}

}  // namespace junction::admin
