// The store's SQLite VFS: the database and its WAL are sent to the disk as
// they are written, and what is written reads back, through it and without it.
#include <catch2/catch.hpp>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "engine/store/sqlite/paced_vfs.h"

using junction::store::sqlite::pacedVfs;
using junction::store::sqlite::pacedWritebacks;

namespace {

struct Db {
    sqlite3* db = nullptr;
    Db(const std::string& path, const char* vfs) {
        REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) == SQLITE_OK);
    }
    ~Db() { sqlite3_close_v2(db); }
    void exec(const char* sql) { REQUIRE(sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK); }
    sqlite3_int64 number(const char* sql) {
        sqlite3_stmt* s = nullptr;
        REQUIRE(sqlite3_prepare_v2(db, sql, -1, &s, nullptr) == SQLITE_OK);
        REQUIRE(sqlite3_step(s) == SQLITE_ROW);
        sqlite3_int64 v = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        return v;
    }
};

}  // namespace

TEST_CASE("the store's VFS starts the write-back of the database and its WAL as they are written", "[store][vfs]") {
    char tmpl[] = "/tmp/junction-vfs-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    std::string dir = tmpl, path = dir + "/paced.db";
    {
        Db w(path, pacedVfs());
        w.exec("PRAGMA journal_mode = WAL");
        w.exec("CREATE TABLE t (n INTEGER PRIMARY KEY, b BLOB NOT NULL)");
        auto before = pacedWritebacks();
        // 2 MB into the WAL: a write-back every 256 KB.
        w.exec("BEGIN");
        w.exec("WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 32)"
               " INSERT INTO t SELECT n, randomblob(65536) FROM k");
        w.exec("COMMIT");
        auto afterWal = pacedWritebacks();
        CHECK(afterWal - before >= 6);
        // The checkpoint copies them into the database: as many again.
        w.exec("PRAGMA wal_checkpoint(TRUNCATE)");
        CHECK(pacedWritebacks() - afterWal >= 6);
        w.exec("INSERT INTO t VALUES (33, x'0102')");
        // Another connection without the VFS sees everything (the WAL and its index are shared).
        Db r(path, nullptr);
        CHECK(r.number("SELECT count(*) FROM t") == 33);
        CHECK(r.number("SELECT sum(length(b)) FROM t") == 32 * 65536 + 2);
        CHECK(r.number("SELECT count(*) FROM t WHERE b = (SELECT b FROM t WHERE n = 7)") == 1);
        CHECK(w.number("SELECT count(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'") == 1);
    }
    std::filesystem::remove_all(dir);
}
