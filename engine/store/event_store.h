// The event log: what happened to the engine and who did what through its
// admin API (channels deployed, started, stopped, failed; connections opened,
// closed, refused; destinations retrying and recovered; prune runs; logins;
// every mutating API call; every view of a message's content). Kept in the
// store's database, in a table of its own, written by a thread of its own:
// record() only queues, so neither a channel's message path nor an API
// request waits for the database. Pruned by age.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace junction::store {

struct Event {
    std::int64_t id = 0;  // given when written; 0 before
    std::chrono::system_clock::time_point time{};  // default (epoch): when recorded
    std::string type;     // channel.started, login.failed, api.post, message.viewed ...
    std::string channel;  // "" when none
    std::string user;     // "" when none
    std::string address;  // the peer of an API request, "" when none
    std::string text;
};

// A page of events, newest first: those matching every field set.
struct EventQuery {
    std::string type{};     // exact, or a prefix ending in '.' ("channel." = every channel event)
    std::string channel{};
    std::string user{};
    std::int64_t beforeId = 0;  // 0 = from the newest
    int limit = 100;
};

class EventStore {
public:
    virtual ~EventStore() = default;
    // Queues `event` for writing (its time set now when unset); never waits
    // for the database. Events wait while the database cannot be written
    // (tried again every second); past a bound of queued events, new ones are
    // dropped and counted.
    virtual void record(Event event) = 0;
    // Waits until what was recorded before is written (at most 2 s: the
    // database may be locked by another program meanwhile).
    virtual void flush() = 0;
    // Written events (flushed first), newest first.
    virtual std::vector<Event> list(const EventQuery& query) = 0;
    // Removes events older than `before`; returns how many.
    virtual std::uint64_t prune(std::chrono::system_clock::time_point before) = 0;
    // Events dropped because the queue was full (the database too slow or failing).
    virtual std::uint64_t dropped() const = 0;
};

// The event table in the SQLite database at `path` (the message store's file),
// with a connection and a writer thread of its own. Throws std::runtime_error.
std::unique_ptr<EventStore> openSqliteEvents(const std::string& path, bool synchronousFull, int busyTimeoutMs = 10000);

}  // namespace junction::store
