// The engine's figures in Prometheus' text exposition format (0.0.4), what
// the admin API's /metrics answers.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/core/engine.h"

namespace junction::admin {

// Counters per channel and destination (junction_messages_total{channel,status},
// junction_destination_messages_total{channel,destination,status}) and latency
// histograms (_bucket/_sum/_count), all since each was created (`persisted`,
// core::StatsRecorder::figures), queue depths, channel states and back-pressure.
std::string prometheusText(const std::vector<core::ChannelInfo>& channels,
                           const std::map<core::StatsRecorder::Key, core::PersistedStats>& persisted);

}  // namespace junction::admin
