// An event loop's rounds (round.h): the work left for the end of the current
// round and for after its replies, kept per thread and run by Round.
#include "engine/util/round.h"

#include <utility>
#include <vector>

namespace junction::util {

namespace {
thread_local int roundDepth = 0;
thread_local std::vector<std::function<void()>> deferred;
thread_local std::vector<std::function<void()>> late;  // after the round's replies

bool runAll(std::vector<std::function<void()>>& list) {
    bool any = false;
    while (!list.empty()) {
        std::vector<std::function<void()>> now;
        now.swap(list);
        for (auto& w : now) w();
        any = true;
    }
    return any;
}
}  // namespace

Round::Round() { ++roundDepth; }

Round::~Round() {
    while (end() || afterRepliesSent()) {
    }
    --roundDepth;
}

bool Round::end() { return runAll(deferred); }

bool Round::afterRepliesSent() { return runAll(late); }

void Round::afterReplies(std::function<void()> work) { late.push_back(std::move(work)); }

bool Round::active() { return roundDepth > 0; }

void Round::defer(std::function<void()> work) { deferred.push_back(std::move(work)); }

}  // namespace junction::util
