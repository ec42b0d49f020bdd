// The SQLite event log (event_store.h): a table `events` in the store's
// database, one connection of its own; record() queues, a writer thread
// writes what is queued in one transaction at a time.
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "engine/store/event_store.h"
#include "engine/store/sqlite/sqlite_db.h"
#include "engine/util/log.h"
#include "engine/util/thread_name.h"

namespace junction::store {

namespace {

using sqlite::Stmt;
using sqlite::Use;
using SysClock = std::chrono::system_clock;

constexpr std::size_t kMaxQueued = 10000;

std::int64_t toMs(SysClock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

class SqliteEvents final : public EventStore {
public:
    SqliteEvents(const std::string& path, bool synchronousFull, int busyTimeoutMs) {
        db_ = sqlite::openBeside(path, "event log", synchronousFull, busyTimeoutMs);
        try {
            sqlite::exec(db_,
                         "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                         "time INTEGER NOT NULL, type TEXT NOT NULL, channel TEXT NOT NULL DEFAULT '', "
                         "user TEXT NOT NULL DEFAULT '', address TEXT NOT NULL DEFAULT '', "
                         "text TEXT NOT NULL DEFAULT '')");
            sqlite::exec(db_, "CREATE INDEX IF NOT EXISTS events_time ON events (time)");
            insert_ = Stmt(db_, "INSERT INTO events (time, type, channel, user, address, text) VALUES (?, ?, ?, ?, ?, ?)");
            prune_ = Stmt(db_, "DELETE FROM events WHERE time < ?");
            anyBefore_ = Stmt(db_, "SELECT 1 FROM events WHERE time < ? LIMIT 1");
        } catch (const std::exception& e) {
            close();
            throw std::runtime_error(std::string("event log ") + path + ": " + e.what());
        }
        writer_ = std::thread([this] {
            util::nameThisThread("events");
            writeLoop();
        });
    }

    ~SqliteEvents() override {
        {
            std::lock_guard<std::mutex> lock(queueMutex_);
            stop_ = true;
        }
        queueCv_.notify_all();
        if (writer_.joinable()) writer_.join();
        close();
    }

    void record(Event event) override {
        if (event.time == SysClock::time_point{}) event.time = SysClock::now();
        {
            std::lock_guard<std::mutex> lock(queueMutex_);
            if (queue_.size() >= kMaxQueued) {
                ++dropped_;
                return;
            }
            queue_.push_back(std::move(event));
            ++queuedSeq_;
        }
        queueCv_.notify_all();
    }

    void flush() override {
        std::unique_lock<std::mutex> lock(queueMutex_);
        std::uint64_t target = queuedSeq_;
        // Bounded: while the database is locked by another program, a reader gets what is written.
        queueCv_.wait_for(lock, std::chrono::seconds(2), [&] { return doneSeq_ >= target || stop_; });
    }

    std::vector<Event> list(const EventQuery& q) override {
        flush();
        std::string sql = "SELECT id, time, type, channel, user, address, text FROM events WHERE 1";
        std::vector<std::string> texts;
        if (!q.type.empty()) {
            if (q.type.back() == '.') {
                sql += " AND substr(type, 1, ?) = ?";
                texts.push_back(q.type);
            } else {
                sql += " AND type = ?";
            }
            texts.push_back(q.type);
        }
        if (!q.channel.empty()) {
            sql += " AND channel = ?";
            texts.push_back(q.channel);
        }
        if (!q.user.empty()) {
            sql += " AND user = ?";
            texts.push_back(q.user);
        }
        if (q.beforeId > 0) sql += " AND id < ?";
        sql += " ORDER BY id DESC LIMIT ?";
        std::lock_guard<std::mutex> lock(dbMutex_);
        Stmt s(db_, sql);
        Use u(s);
        int i = 1;
        for (std::size_t k = 0; k < texts.size(); ++k) {
            if (k == 0 && !q.type.empty() && q.type.back() == '.') u.int64(i++, static_cast<std::int64_t>(q.type.size()));
            else u.text(i++, texts[k]);
        }
        if (q.beforeId > 0) u.int64(i++, q.beforeId);
        u.int64(i, q.limit);
        std::vector<Event> out;
        while (u.step()) {
            Event e;
            e.id = u.int64(0);
            e.time = SysClock::time_point(std::chrono::milliseconds(u.int64(1)));
            e.type = u.str(2);
            e.channel = u.str(3);
            e.user = u.str(4);
            e.address = u.str(5);
            e.text = u.str(6);
            out.push_back(std::move(e));
        }
        return out;
    }

    std::uint64_t prune(SysClock::time_point before) override {
        flush();
        std::lock_guard<std::mutex> lock(dbMutex_);
        {
            // Nothing old: no write (and no write lock) at all.
            Use any(anyBefore_);
            any.int64(1, toMs(before));
            if (!any.step()) return 0;
        }
        Use u(prune_);
        u.int64(1, toMs(before)).run();
        return static_cast<std::uint64_t>(u.changes());
    }

    std::uint64_t dropped() const override {
        std::lock_guard<std::mutex> lock(queueMutex_);
        return dropped_;
    }

private:
    // Writes what is queued; while the database cannot be written (another
    // program holds it locked), the events wait in the queue and the write is
    // tried again every second; at the stop they are given up.
    void writeLoop() {
        std::unique_lock<std::mutex> lock(queueMutex_);
        std::deque<Event> batch;
        bool failing = false;
        for (;;) {
            queueCv_.wait(lock, [&] { return stop_ || !queue_.empty() || !batch.empty(); });
            if (queue_.empty() && batch.empty() && stop_) return;
            while (!queue_.empty() && batch.size() < kMaxQueued) {
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
            lock.unlock();
            std::string error;
            try {
                write(batch);
            } catch (const std::exception& e) {
                error = e.what();
            }
            lock.lock();
            if (error.empty() || stop_) {
                if (!error.empty()) {
                    util::logLine(util::LogLevel::Error, "junction: event log: " + error + " (" +
                                                             std::to_string(batch.size()) + " event(s) lost at the stop)");
                    dropped_ += batch.size();
                } else if (failing) {
                    util::logLine(util::LogLevel::Info, "junction: event log: written again");
                }
                failing = false;
                doneSeq_ += batch.size();
                batch.clear();
                queueCv_.notify_all();
                continue;
            }
            if (!failing) util::logLine(util::LogLevel::Warn, "junction: event log: " + error + " (kept, tried again)");
            failing = true;
            queueCv_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_; });
        }
    }

    void write(const std::deque<Event>& batch) {
        std::lock_guard<std::mutex> lock(dbMutex_);
        sqlite::exec(db_, "BEGIN IMMEDIATE");
        try {
            for (const auto& e : batch) {
                Use u(insert_);
                u.int64(1, toMs(e.time)).text(2, e.type).text(3, e.channel).text(4, e.user).text(5, e.address);
                u.text(6, e.text).run();
            }
            sqlite::exec(db_, "COMMIT");
        } catch (...) {
            sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
            throw;
        }
    }

    void close() {
        insert_.reset();
        prune_.reset();
        anyBefore_.reset();
        if (db_) sqlite3_close_v2(db_);
        db_ = nullptr;
    }

    std::mutex dbMutex_;
    sqlite3* db_ = nullptr;
    Stmt insert_, prune_, anyBefore_;
    mutable std::mutex queueMutex_;
    std::condition_variable queueCv_;
    std::deque<Event> queue_;
    std::uint64_t queuedSeq_ = 0, doneSeq_ = 0, dropped_ = 0;
    bool stop_ = false;
    std::thread writer_;
};

}  // namespace

std::unique_ptr<EventStore> openSqliteEvents(const std::string& path, bool synchronousFull, int busyTimeoutMs) {
    return std::make_unique<SqliteEvents>(path, synchronousFull, busyTimeoutMs);
}

}  // namespace junction::store
