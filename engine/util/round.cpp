#include "engine/util/round.h"

#include <utility>
#include <vector>

namespace junction::util {

namespace {
thread_local int roundDepth = 0;
thread_local std::vector<std::function<void()>> deferred;
}  // namespace

Round::Round() { ++roundDepth; }

Round::~Round() {
    end();
    --roundDepth;
}

bool Round::end() {
    bool any = false;
    while (!deferred.empty()) {
        std::vector<std::function<void()>> now;
        now.swap(deferred);
        for (auto& w : now) w();
        any = true;
    }
    return any;
}

bool Round::active() { return roundDepth > 0; }

void Round::defer(std::function<void()> work) { deferred.push_back(std::move(work)); }

}  // namespace junction::util
