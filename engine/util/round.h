#pragma once

#include <functional>

namespace junction::util {

// An event loop serves its peers in rounds: it handles every event that is
// ready, then waits for more. Work that gains from being done once for the
// whole round (the intake journal's fdatasync: one for every message the round
// took in) can be left to the end of the round, on the loop's own thread,
// instead of being handed to another thread and its answer handed back.
//
// A Round marks the calling thread as serving in rounds for its lifetime;
// end() runs what was deferred. Only the thread that made the Round defers.
class Round {
public:
    Round();
    ~Round();  // runs what is still deferred
    Round(const Round&) = delete;
    Round& operator=(const Round&) = delete;

    // Runs the deferred work, including work deferred while it runs. Returns
    // whether there was any.
    bool end();

    // Is the calling thread serving in rounds?
    static bool active();
    // Runs `work` at the end of the calling thread's round (call only when active()).
    static void defer(std::function<void()> work);

    // Work that must not run before the round's replies are out, such as
    // waking another thread (which could take the CPU before they leave): the
    // loop runs it with afterRepliesSent() once it has sent them. Call only when
    // active().
    static void afterReplies(std::function<void()> work);
    // Runs the work left for after the replies. Returns whether there was any.
    bool afterRepliesSent();
};

}  // namespace junction::util
