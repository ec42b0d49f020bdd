// The engine's figures in Prometheus' text exposition format (0.0.4), what
// the admin API's /metrics answers.
#pragma once

#include <string>
#include <vector>

#include "engine/core/engine.h"

namespace junction::admin {

// Counters per channel and destination (junction_messages_total{channel,status},
// junction_destination_messages_total{channel,destination,status}), queue
// depths, channel states, back-pressure and latency summaries.
std::string prometheusText(const std::vector<core::ChannelInfo>& channels);

}  // namespace junction::admin
