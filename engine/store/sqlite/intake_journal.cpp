// The intake journal (intake_journal.h): its record format, segments and
// content files, appends and group fdatasync, and the recovery of records at
// open.
#include "engine/store/sqlite/intake_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "engine/util/round.h"
#include "engine/util/thread_name.h"

namespace junction::store {

namespace {

// ---------------------------------------------------------------- CRC-32 (IEEE)

// zlib's CRC-32 (the IEEE polynomial, word-at-a-time): several times faster
// than a byte table, and the same values.
std::uint32_t crc32(std::string_view data) {
    return static_cast<std::uint32_t>(::crc32_z(0L, reinterpret_cast<const Bytef*>(data.data()), data.size()));
}

// ---------------------------------------------------------------- codec

// Format 2 writes a copy of the raw message (the transformed message, an
// encoded one) as a one-byte reference instead of its bytes; format 1 records
// (every content written out) are still read. Format 3 is format 2 followed by
// a source mark: a flags byte (kHasMark, and kMarkOnly when the record is the
// mark alone, its message fields empty and unused), the mark's key and value.
// A record without a mark is written in format 2, as before.
constexpr std::uint8_t kFormatV1 = 1;
constexpr std::uint8_t kFormatV2 = 2;
constexpr std::uint8_t kFormatMark = 3;
// As kFormatMark, its flags byte always there (0: no mark), followed by the
// processed message's log (message_log.h's line format) as one string.
constexpr std::uint8_t kFormatLog = 4;
// As kFormatLog (its log string always there, empty: none), followed by the id
// of the message this one reprocesses (NewMessage::copyOf). Written only for
// such copies: other records stay readable by binaries that know format 4.
constexpr std::uint8_t kFormatCopy = 5;
enum Copy : std::uint8_t { kOwnBytes = 0, kSameAsRaw = 1, kSameAsTransformed = 2 };
enum MarkFlags : std::uint8_t { kHasMark = 1, kMarkOnly = 2 };

void putU32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void putU64(std::string& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void putStr(std::string& out, std::string_view s) {
    putU32(out, static_cast<std::uint32_t>(s.size()));
    out.append(s);
}
// Content that may repeat the raw or the transformed message.
void putCopy(std::string& out, std::string_view s, std::string_view raw, std::string_view transformed) {
    if (!s.empty() && s == raw) {
        out.push_back(static_cast<char>(kSameAsRaw));
    } else if (!s.empty() && s == transformed) {
        out.push_back(static_cast<char>(kSameAsTransformed));
    } else {
        out.push_back(static_cast<char>(kOwnBytes));
        putStr(out, s);
    }
}
void putMeta(std::string& out, const Metadata& m) {
    putStr(out, m.messageType);
    putStr(out, m.controlId);
    putStr(out, m.patientId);
    putStr(out, m.accession);
}

class Reader {
public:
    explicit Reader(std::string_view d) : d_(d) {}
    std::uint8_t u8() {
        need(1);
        return static_cast<std::uint8_t>(d_[p_++]);
    }
    std::uint32_t u32() {
        need(4);
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v |= std::uint32_t(static_cast<unsigned char>(d_[p_ + i])) << (8 * i);
        p_ += 4;
        return v;
    }
    std::uint64_t u64() {
        need(8);
        std::uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v |= std::uint64_t(static_cast<unsigned char>(d_[p_ + i])) << (8 * i);
        p_ += 8;
        return v;
    }
    std::string str() {
        std::uint32_t n = u32();
        need(n);
        std::string s(d_.substr(p_, n));
        p_ += n;
        return s;
    }
    Metadata meta() {
        Metadata m;
        m.messageType = str();
        m.controlId = str();
        m.patientId = str();
        m.accession = str();
        return m;
    }
    Status status() {
        std::uint8_t v = u8();
        if (v > static_cast<std::uint8_t>(Status::Error)) throw std::runtime_error("journal record: bad status");
        return static_cast<Status>(v);
    }
    StorageMode storage() {
        std::uint8_t v = u8();
        if (v > static_cast<std::uint8_t>(StorageMode::Disabled)) throw std::runtime_error("journal record: bad storage mode");
        return static_cast<StorageMode>(v);
    }
    bool done() const { return p_ == d_.size(); }

private:
    void need(std::size_t n) const {
        if (d_.size() - p_ < n) throw std::runtime_error("journal record: truncated");
    }
    std::string_view d_;
    std::size_t p_ = 0;
};

std::string segmentName(const std::string& base, std::uint64_t n) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "-jnl.%06llu", static_cast<unsigned long long>(n));
    return base + buf;
}

// A content file: the segment's number, then the highest id in it (for pruning).
std::string contentName(const std::string& base, std::uint64_t n, MessageId lastId) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "-raw.%06llu.%lld", static_cast<unsigned long long>(n),
                  static_cast<long long>(lastId));
    return base + buf;
}

bool allDigits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A record's reference: its segment's number and the offset of its header.
std::uint64_t makeRef(std::uint64_t segment, std::uint64_t offset) { return segment << 32 | offset; }
std::uint64_t refSegment(std::uint64_t ref) { return ref >> 32; }
std::uint64_t refOffset(std::uint64_t ref) { return ref & 0xFFFFFFFFu; }
constexpr std::uint64_t kMaxSegmentBytes = 1u << 31;  // offsets fit a reference's 32 bits

// Reads `n` bytes at `at` of `fd` (false when they are not all there).
bool readAt(int fd, char* out, std::size_t n, std::uint64_t at) {
    std::size_t done = 0;
    while (done < n) {
        ssize_t r = ::pread(fd, out + done, n - done, static_cast<off_t>(at + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        done += static_cast<std::size_t>(r);
    }
    return true;
}

std::uint32_t getU32(const char* p) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= std::uint32_t(static_cast<unsigned char>(p[i])) << (8 * i);
    return v;
}

// The payload of the record whose header is at `at` of records in memory
// (nullopt when the record is not whole there).
std::optional<std::string_view> payloadIn(std::string_view records, std::size_t at) {
    if (at > records.size() || records.size() - at < 8) return std::nullopt;
    std::uint32_t len = getU32(records.data() + at);
    if (records.size() - at - 8 < len) return std::nullopt;
    return records.substr(at + 8, len);
}

// The journal's files beside database `dbPath`: segment numbers, and content
// files by segment number.
struct JournalFiles {
    std::vector<std::uint64_t> segments;  // sorted
    std::map<std::uint64_t, std::pair<std::string, MessageId>> content;  // number -> (path, last id)
};

JournalFiles listJournalFiles(const std::string& dbPath) {
    namespace fs = std::filesystem;
    fs::path p(dbPath);
    fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    const std::string prefix = p.filename().string() + "-jnl.";
    const std::string contentPrefix = p.filename().string() + "-raw.";
    JournalFiles out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        std::string name = e.path().filename().string();
        if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0) {
            std::string digits = name.substr(prefix.size());
            if (allDigits(digits)) out.segments.push_back(std::stoull(digits));
        } else if (name.size() > contentPrefix.size() && name.compare(0, contentPrefix.size(), contentPrefix) == 0) {
            std::string rest = name.substr(contentPrefix.size());
            auto dot = rest.find('.');
            if (dot == std::string::npos || !allDigits(rest.substr(0, dot)) || !allDigits(rest.substr(dot + 1)))
                continue;
            out.content[std::stoull(rest.substr(0, dot))] = {(dir / name).string(),
                                                              static_cast<MessageId>(std::stoll(rest.substr(dot + 1)))};
        }
    }
    std::sort(out.segments.begin(), out.segments.end());
    return out;
}

// Reads the payload of the record at `at` in `path` into `payload` (left
// empty when no whole, intact record is there). False when `path` cannot be opened.
bool readPayload(const std::string& path, std::uint64_t at, std::string& payload) {
    payload.clear();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char header[8];
    struct stat st {};
    if (::fstat(fd, &st) == 0 && readAt(fd, header, sizeof header, at)) {
        std::uint32_t len = getU32(header);
        if (at + 8 + len > static_cast<std::uint64_t>(st.st_size)) len = 0;  // not a record: no allocation for it
        payload.resize(len);
        if (len == 0 || !readAt(fd, payload.data(), len, at + 8) || crc32(payload) != getU32(header + 4))
            payload.clear();
    }
    ::close(fd);
    return true;
}

// Message `id`'s raw content from a record's payload (nullopt: empty, corrupt, or another message's).
std::optional<std::string> rawOfRecord(std::string_view payload, MessageId id) {
    if (payload.empty()) return std::nullopt;
    try {
        JournalRecord rec = decodeRecord(payload);
        if (rec.id != id) return std::nullopt;
        return std::move(rec.message.raw);
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::string sysError(const std::string& what) { return what + ": " + std::strerror(errno); }

// Creates `path` as `bytes` zeros, synced. Throws on failure.
void createZeroed(const std::string& path, std::uint64_t bytes) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error(sysError("intake journal: cannot create " + path));
    static const std::string zeros(1 << 20, '\0');
    std::uint64_t left = bytes;
    while (left > 0) {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, zeros.size()));
        ssize_t w = ::write(fd, zeros.data(), n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            std::string err = sysError("intake journal: cannot fill " + path);
            ::close(fd);
            ::unlink(path.c_str());
            throw std::runtime_error(err);
        }
        left -= static_cast<std::uint64_t>(w);
    }
    ::fdatasync(fd);
    ::close(fd);
}

void syncDirectoryOf(const std::string& path) {
    namespace fs = std::filesystem;
    fs::path dir = fs::path(path).has_parent_path() ? fs::path(path).parent_path() : fs::path(".");
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

}  // namespace

namespace {

void putMark(std::string& out, const SourceMark& mark, bool markOnly) {
    out.push_back(static_cast<char>(kHasMark | (markOnly ? kMarkOnly : 0)));
    putStr(out, mark.key);
    putStr(out, mark.value);
}

}  // namespace

std::string encodeRecord(MessageId id, std::int64_t receivedMs, const NewMessage& m) {
    std::string out;
    std::size_t size = 64 + m.channel.size() + m.dataType.size() + m.source.size() + m.raw.size() + m.error.size();
    if (m.processed)
        for (const auto& d : m.processed->deliveries) size += 16 + d.destination.size() + d.encoded.size() + d.error.size();
    if (m.processed) size += m.processed->transformed.size() + m.processed->error.size() + 64;
    if (m.mark) size += 16 + m.mark->key.size() + m.mark->value.size();
    out.reserve(size);
    const bool withLog = m.processed && !m.processed->log.empty();
    const bool copy = m.copyOf != 0;
    out.push_back(static_cast<char>(copy ? kFormatCopy : withLog ? kFormatLog : m.mark ? kFormatMark : kFormatV2));
    putU64(out, static_cast<std::uint64_t>(id));
    putU64(out, static_cast<std::uint64_t>(receivedMs));
    putStr(out, m.channel);
    putStr(out, m.dataType);
    putStr(out, m.source);
    putStr(out, m.raw);
    putMeta(out, m.meta);
    out.push_back(static_cast<char>(m.status));
    putStr(out, m.error);
    out.push_back(static_cast<char>(m.storage));
    out.push_back(m.processed ? 1 : 0);
    if (m.processed) {
        const ProcessedMessage& p = *m.processed;
        out.push_back(static_cast<char>(p.status));
        putCopy(out, p.transformed, m.raw, {});
        putStr(out, p.error);
        putMeta(out, p.meta);
        out.push_back(static_cast<char>(p.storage));
        putU32(out, static_cast<std::uint32_t>(p.deliveries.size()));
        for (const auto& d : p.deliveries) {
            putStr(out, d.destination);
            out.push_back(static_cast<char>(d.status));
            putCopy(out, d.encoded, m.raw, p.transformed);
            putStr(out, d.error);
        }
    }
    if (m.mark) putMark(out, *m.mark, false);
    else if (withLog || copy) out.push_back(0);
    if (withLog) putStr(out, encodeLog(m.processed->log));
    else if (copy) putStr(out, {});
    if (copy) putU64(out, static_cast<std::uint64_t>(m.copyOf));
    return out;
}

std::string encodeMarkRecord(MessageId id, std::int64_t receivedMs, const SourceMark& mark) {
    std::string out = encodeRecord(id, receivedMs, NewMessage{});
    out[0] = static_cast<char>(kFormatMark);
    putMark(out, mark, true);
    return out;
}

void setRecordId(std::string& record, MessageId id) {
    if (record.size() < 9) throw std::invalid_argument("journal record too short");
    auto v = static_cast<std::uint64_t>(id);
    for (int i = 0; i < 8; ++i) record[1 + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

JournalRecord decodeRecord(std::string_view payload) {
    Reader r(payload);
    const std::uint8_t format = r.u8();
    if (format < kFormatV1 || format > kFormatCopy)
        throw std::runtime_error("journal record: unknown format");
    JournalRecord rec;
    rec.id = static_cast<MessageId>(r.u64());
    rec.receivedMs = static_cast<std::int64_t>(r.u64());
    NewMessage& m = rec.message;
    m.channel = r.str();
    m.dataType = r.str();
    m.source = r.str();
    m.raw = r.str();
    m.meta = r.meta();
    m.status = r.status();
    m.error = r.str();
    m.storage = r.storage();
    if (r.u8()) {
        ProcessedMessage p;
        p.id = rec.id;
        p.channel = m.channel;
        p.status = r.status();
        auto copy = [&](const std::string& transformed) -> std::string {
            if (format == kFormatV1) return r.str();
            switch (r.u8()) {
                case kOwnBytes: return r.str();
                case kSameAsRaw: return m.raw;
                case kSameAsTransformed: return transformed;
                default: throw std::runtime_error("journal record: unknown content reference");
            }
        };
        p.transformed = copy({});
        p.error = r.str();
        p.meta = r.meta();
        p.storage = r.storage();
        std::uint32_t n = r.u32();
        for (std::uint32_t i = 0; i < n; ++i) {
            ProcessedMessage::Delivery d;
            d.destination = r.str();
            d.status = r.status();
            d.encoded = copy(p.transformed);
            d.error = r.str();
            p.deliveries.push_back(std::move(d));
        }
        m.processed = std::move(p);
    }
    if (format >= kFormatMark) {
        std::uint8_t flags = r.u8();
        bool none = format >= kFormatLog && flags == 0;
        if (!none && (!(flags & kHasMark) || (flags & ~(kHasMark | kMarkOnly))))
            throw std::runtime_error("journal record: bad mark flags");
        if (!none) {
            rec.markOnly = (flags & kMarkOnly) != 0;
            SourceMark mark;
            mark.key = r.str();
            mark.value = r.str();
            m.mark = std::move(mark);
        }
    }
    if (format >= kFormatLog) {
        std::string log = r.str();
        if (format == kFormatLog || !log.empty()) {
            if (!m.processed) throw std::runtime_error("journal record: a log without processing");
            m.processed->log = decodeLog(log);
        }
    }
    if (format == kFormatCopy) {
        m.copyOf = static_cast<MessageId>(r.u64());
        if (m.copyOf <= 0) throw std::runtime_error("journal record: a copy of no message");
    }
    if (!r.done()) throw std::runtime_error("journal record: trailing bytes");
    m.receivedAt = Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(rec.receivedMs)));
    return rec;
}

// ---------------------------------------------------------------- journal

IntakeJournal::IntakeJournal(const std::string& dbPath, bool syncEveryAppend, std::uint64_t segmentBytes)
    : base_(dbPath),
      sync_(syncEveryAppend),
      segmentBytes_(std::clamp<std::uint64_t>(segmentBytes, 4096, kMaxSegmentBytes)) {
    JournalFiles files = listJournalFiles(dbPath);
    std::uint64_t highest = 0;  // new segments are numbered after every file, content files too
    for (auto n : files.segments) {
        segments_.push_back({n, segmentName(base_, n), 0});
        highest = std::max(highest, n);
    }
    for (auto& [n, f] : files.content) {
        content_[n] = {f.first, f.second};
        highest = std::max(highest, n);
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        // With little free space, smaller segments (down to 1 MB), then a clear error.
        for (;;) {
            try {
                openSegment(highest + 1);
                break;
            } catch (const std::exception& e) {
                constexpr std::uint64_t kSmallest = 1u << 20;
                if (!sync_ || segmentBytes_ <= kSmallest)
                    throw std::runtime_error(std::string(e.what()) + " (the intake journal needs " +
                                             std::to_string(std::max<std::uint64_t>(segmentBytes_ >> 20, 1)) +
                                             " MB free beside the store)");
                segmentBytes_ = std::max(kSmallest, segmentBytes_ / 2);
                std::fprintf(stderr, "junction: intake journal: little free space, trying segments of %llu MB\n",
                             static_cast<unsigned long long>(segmentBytes_ >> 20));
            }
        }
    }
    if (sync_) {
        preparer_ = std::thread([this] {
            util::nameThisThread("journal-prep");
            prepareLoop();
        });
        syncer_ = std::thread([this] {
            util::nameThisThread("journal-sync");
            syncLoop();
        });
    }
}

IntakeJournal::~IntakeJournal() {
    writeAtRoundEnd();  // records a round left (none once its loop has ended)
    {
        std::lock_guard<std::mutex> lock(syncMu_);
        syncStop_ = true;
    }
    syncCv_.notify_all();
    if (syncer_.joinable()) syncer_.join();  // after the last waiting record is synced
    {
        std::lock_guard<std::mutex> lock(prepMu_);
        prepStop_ = true;
    }
    prepCv_.notify_all();
    if (preparer_.joinable()) preparer_.join();
    std::error_code ec;
    std::filesystem::remove(spareName(), ec);
}

IntakeJournal::File::~File() {
    if (fd >= 0) ::close(fd);
}

std::string IntakeJournal::spareName() const { return base_ + "-jnl.spare"; }

void IntakeJournal::prepareLoop() {
    std::unique_lock<std::mutex> lock(prepMu_);
    for (;;) {
        prepCv_.wait(lock, [&] { return prepStop_ || !spareReady_; });
        if (prepStop_) return;
        lock.unlock();
        bool ok = true;
        try {
            // Not on a disk that has little room left: filling it to the brim, if
            // only for a moment, would fail the store's other writes meanwhile.
            std::error_code ec;
            auto dir = std::filesystem::path(spareName()).parent_path();
            auto space = std::filesystem::space(dir.empty() ? std::filesystem::path(".") : dir, ec);
            if (!ec && space.available < 2 * segmentBytes_) throw std::runtime_error("little free space");
            createZeroed(spareName() + ".tmp", segmentBytes_);
            ok = ::rename((spareName() + ".tmp").c_str(), spareName().c_str()) == 0;
        } catch (const std::exception&) {
            ok = false;  // the next rotation fills its segment itself (and reports a failure)
        }
        lock.lock();
        if (ok) spareReady_ = true;
        else prepCv_.wait_for(lock, std::chrono::seconds(5), [&] { return prepStop_; });
    }
}

void IntakeJournal::openSegment(std::uint64_t number) {
    std::string path = segmentName(base_, number);
    if (sync_) {
        bool spare = false;
        {
            std::lock_guard<std::mutex> lock(prepMu_);
            if (spareReady_ && ::rename(spareName().c_str(), path.c_str()) == 0) {
                spare = true;
                spareReady_ = false;
            }
        }
        prepCv_.notify_all();
        if (!spare) createZeroed(path, segmentBytes_);
    }
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | (sync_ ? 0 : O_TRUNC) | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error(sysError("intake journal: cannot create " + path));
    if (file_ && sync_) ::fdatasync(file_->fd);  // the old segment's records are durable before we move on
    file_ = std::make_shared<File>(fd);
    size_ = 0;
    segments_.push_back({number, path, 0});
    if (sync_) syncDirectoryOf(path);  // the new name must survive a power cut too
}

std::vector<JournalRecord> IntakeJournal::recover(std::vector<std::string>* warnings) {
    std::vector<JournalRecord> out;
    std::lock_guard<std::mutex> lock(mu_);
    for (std::size_t k = 0; k + 1 < segments_.size(); ++k) {
        Segment& seg = segments_[k];
        std::ifstream in(seg.path, std::ios::binary);
        std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::size_t p = 0;
        while (p < data.size()) {
            auto bad = [&](const std::string& why) {
                if (warnings)
                    warnings->push_back("intake journal " + seg.path + ": " + why + " at byte " + std::to_string(p) +
                                        "; the rest of the segment (" + std::to_string(data.size() - p) +
                                        " bytes) was never acknowledged and is ignored");
            };
            if (data.size() - p < 8) {
                bad("truncated record header");
                break;
            }
            std::uint32_t len = getU32(data.data() + p), crc = getU32(data.data() + p + 4);
            if (len == 0) break;  // the zero-filled rest of the segment
            if (data.size() - p - 8 < len) {
                bad("truncated record");
                break;
            }
            std::string_view payload(data.data() + p + 8, len);
            if (crc32(payload) != crc) {
                bad("checksum mismatch");
                break;
            }
            try {
                out.push_back(decodeRecord(payload));
                out.back().ref = makeRef(seg.number, p);
            } catch (const std::exception& e) {
                bad(e.what());
                break;
            }
            seg.lastId = std::max(seg.lastId, out.back().id);
            p += 8 + len;
        }
    }
    return out;
}

namespace {
// Runs `work` once at the end of the calling thread's round, however often it
// is asked for during the round. `scheduled` is the caller's thread_local
// marker, `owner` the journal asking.
template <class Work>
void onceThisRound(const void*& scheduled, const void* owner, Work work) {
    if (scheduled == owner) return;
    scheduled = owner;
    util::Round::defer([&scheduled, work] {
        scheduled = nullptr;
        work();
    });
}
}  // namespace

std::uint64_t IntakeJournal::add(MessageId id, std::string_view record, std::uint64_t* contentRef) {
    if (size_ > 0 && size_ + 8 + record.size() > segmentBytes_) {
        writePending(nullptr);  // the segment's last records (a failure is kept for their waiters)
        // A new segment that did not fit is tried again once a second; until then
        // appends fail at once instead of each filling the disk to fail again.
        auto now = std::chrono::steady_clock::now();
        if (!rotateError_.empty() && now < rotateRetry_) throw std::runtime_error(rotateError_);
        try {
            openSegment(segments_.back().number + 1);
            rotateError_.clear();
        } catch (const std::exception& e) {
            rotateError_ = e.what();
            rotateRetry_ = now + std::chrono::seconds(1);
            throw;
        }
    }
    if (contentRef) {
        *contentRef = makeRef(segments_.back().number, size_);
        segments_.back().keep = true;
    }
    auto len = static_cast<std::uint32_t>(record.size());
    std::uint32_t crc = crc32(record);
    char header[8];
    for (int i = 0; i < 4; ++i) header[i] = static_cast<char>((len >> (8 * i)) & 0xFF);
    for (int i = 0; i < 4; ++i) header[4 + i] = static_cast<char>((crc >> (8 * i)) & 0xFF);
    pending_.append(header, sizeof header);
    pending_.append(record);
    size_ += sizeof header + record.size();
    segments_.back().lastId = std::max(segments_.back().lastId, id);
    return ++written_;
}

// Writes the records not written yet, and marks their waiters with the
// outcome. On failure the records are dropped: the next ones take their space,
// and the segment reads as ending where they began.
bool IntakeJournal::writePending(std::string* error) {
    if (pending_.empty()) return true;
    std::uint64_t at = size_ - pending_.size();
    std::string err;
    std::size_t done = 0;
    while (done < pending_.size()) {
        ssize_t n = ::pwrite(file_->fd, pending_.data() + done, pending_.size() - done, static_cast<off_t>(at + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            err = sysError("intake journal: write failed");
            // A partial record is left behind only up to its header's promise:
            // zero its length so that the segment ends here.
            static const char zero[8] = {};
            if (::pwrite(file_->fd, zero, sizeof zero, static_cast<off_t>(at)) != sizeof zero) {
            }
            size_ = at;
            break;
        }
        done += static_cast<std::size_t>(n);
    }
    if (!err.empty() && failureHandler_) {
        // Every pending record is dropped, the written part of them too (the
        // zeroed length ends the segment where they began).
        std::size_t p = 0;
        while (auto payload = payloadIn(pending_, p)) {
            try {
                failed_.push_back(decodeRecord(*payload));
            } catch (const std::exception&) {
            }
            p += 8 + payload->size();
        }
    }
    pending_.clear();
    writes_.fetch_add(1, std::memory_order_relaxed);
    for (auto& w : roundWaiters_)
        if (!w.written) {
            w.written = true;
            w.error = err;
        }
    if (error) *error = err;
    return err.empty();
}

std::uint64_t IntakeJournal::append(MessageId id, std::string_view record, std::uint64_t* contentRef) {
    std::uint64_t seq = 0;
    std::string error;
    bool written, failed;
    {
        std::lock_guard<std::mutex> lock(mu_);
        seq = add(id, record, contentRef);
        // Written at once, after the records of rounds not written yet.
        written = writePending(&error);
        failed = !failed_.empty();
    }
    if (failed) reportFailed();
    if (!written) throw std::runtime_error(error);
    return seq;
}

void IntakeJournal::onWriteFailure(std::function<void(std::vector<JournalRecord>&&)> handler) {
    std::lock_guard<std::mutex> lock(mu_);
    failureHandler_ = std::move(handler);
}

void IntakeJournal::reportFailed() {
    std::vector<JournalRecord> failed;
    std::function<void(std::vector<JournalRecord>&&)> handler;
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (failed_.empty()) return;
        failed.swap(failed_);
        handler = failureHandler_;
    }
    if (handler) handler(std::move(failed));
}

void IntakeJournal::appendInRound(MessageId id, std::string_view record, Then&& then, std::uint64_t* contentRef) {
    bool failed;
    {
        std::lock_guard<std::mutex> lock(mu_);
        std::uint64_t seq = add(id, record, contentRef);  // may write (and fail) the full segment's last records
        roundWaiters_.push_back({seq, std::move(then), false, {}});
        failed = !failed_.empty();
    }
    if (failed) reportFailed();
    thread_local const void* scheduled = nullptr;
    onceThisRound(scheduled, this, [this] { writeAtRoundEnd(); });
}

// One write for what the rounds appended (on any loop's thread), then their
// waiters are answered here: at once, or once synced (sync mode).
void IntakeJournal::writeAtRoundEnd() {
    std::vector<Waiter> waiters;
    bool failed;
    {
        std::lock_guard<std::mutex> lock(mu_);
        writePending(nullptr);
        waiters.swap(roundWaiters_);
        failed = !failed_.empty();
    }
    if (failed) reportFailed();
    for (auto& w : waiters) {
        if (!w.error.empty()) w.then(w.error);
        else whenDurable(w.seq, std::move(w.then));
    }
}

void IntakeJournal::whenDurable(std::uint64_t seq, std::function<void(const std::string& error)> then) {
    if (!sync_) {
        then(std::string());
        return;
    }
    bool ownRound = util::Round::active();
    {
        std::lock_guard<std::mutex> lock(syncMu_);
        waiting_.emplace_back(seq, std::move(then));
    }
    if (!ownRound) {
        syncCv_.notify_one();
        return;
    }
    // An event loop's thread: the fdatasync runs at the end of its round, on
    // that thread, once for every record the round appended (see util::Round).
    thread_local const void* scheduled = nullptr;
    onceThisRound(scheduled, this, [this] { syncAtRoundEnd(); });
}

void IntakeJournal::syncAtRoundEnd() {
    {
        std::lock_guard<std::mutex> lk(syncMu_);
        if (waiting_.empty()) return;  // the sync thread took them
        // A sync is running (the sync thread's, or another loop's): its owner
        // looks at the waiters again when it is done.
        if (syncing_) return;
        syncing_ = true;
    }
    std::vector<std::function<void(const std::string&)>> ready;
    syncOnce(ready);
}

// One fdatasync covering every record appended so far, then clears syncing_
// (held by the caller) and answers the waiters it covers (`ready`: scratch,
// left empty).
void IntakeJournal::syncOnce(std::vector<std::function<void(const std::string&)>>& ready) {
    std::uint64_t target;
    std::shared_ptr<File> file;
    {
        // Every record counted in `target` whose waiter is registered is
        // written, to this file or to an older segment (synced when the journal
        // moved past it). A round's records are counted before their write at
        // the round's end, but their waiters register only after it, so a
        // sync that ran in between answers none of them. Appends go on while
        // this sync runs (the next one covers them).
        std::lock_guard<std::mutex> lock(mu_);
        target = written_;
        file = file_;
    }
    int rc = file ? ::fdatasync(file->fd) : 0;
    syncs_.fetch_add(1, std::memory_order_relaxed);
    std::string err = rc != 0 ? sysError("intake journal: fdatasync failed") : std::string();
    bool more;
    {
        std::lock_guard<std::mutex> lk(syncMu_);
        while (!waiting_.empty() && waiting_.front().first <= target) {
            ready.push_back(std::move(waiting_.front().second));
            waiting_.pop_front();
        }
        syncing_ = false;
        more = !waiting_.empty() || syncStop_;
    }
    if (more) syncCv_.notify_one();
    for (auto& f : ready) f(err);
    ready.clear();
}

void IntakeJournal::syncLoop() {
    std::vector<std::function<void(const std::string&)>> ready;
    for (;;) {
        {
            std::unique_lock<std::mutex> lk(syncMu_);
            syncCv_.wait(lk, [&] { return !syncing_ && (syncStop_ || !waiting_.empty()); });
            if (waiting_.empty()) return;  // stopping and nobody waits
            syncing_ = true;
        }
        syncOnce(ready);
    }
}

void IntakeJournal::retire(const Segment& seg) {
    if (!seg.keep || seg.lastId == 0) {  // no referenced record (or none written to it after all)
        std::error_code ec;
        std::filesystem::remove(seg.path, ec);
        return;
    }
    ContentFile f{contentName(base_, seg.number, seg.lastId), seg.lastId};
    if (::rename(seg.path.c_str(), f.path.c_str()) == 0) content_[seg.number] = std::move(f);
    else std::fprintf(stderr, "junction: intake journal: cannot keep %s as %s: %s\n", seg.path.c_str(),
                      f.path.c_str(), std::strerror(errno));
}

void IntakeJournal::release(MessageId appliedId) {
    std::lock_guard<std::mutex> lock(mu_);
    while (segments_.size() > 1 && segments_.front().lastId <= appliedId) {
        retire(segments_.front());
        segments_.pop_front();
    }
}

void IntakeJournal::keep(std::uint64_t ref) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& seg : segments_)
        if (seg.number == refSegment(ref)) seg.keep = true;
}

std::optional<std::string> IntakeJournal::readContent(std::uint64_t ref, MessageId id) const {
    const std::uint64_t number = refSegment(ref), at = refOffset(ref);
    std::string payload;
    // Found where it is now: a journal segment (or the bytes a round has not
    // written yet), or a content file. A segment renamed between the lookup
    // and the open is looked up again.
    for (int attempt = 0; attempt < 2 && payload.empty(); ++attempt) {
        std::string path;
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (auto it = content_.find(number); it != content_.end()) {
                path = it->second.path;
            } else {
                for (const auto& seg : segments_)
                    if (seg.number == number) path = seg.path;
                if (path.empty()) return std::nullopt;
                std::uint64_t unwritten = size_ - pending_.size();
                if (number == segments_.back().number && at >= unwritten) {
                    auto inMemory = payloadIn(pending_, static_cast<std::size_t>(at - unwritten));
                    if (!inMemory) return std::nullopt;
                    payload.assign(*inMemory);
                    break;
                }
            }
        }
        if (!readPayload(path, at, payload)) continue;
        if (payload.empty()) return std::nullopt;
    }
    return rawOfRecord(payload, id);
}

std::optional<std::string> readContentFile(const std::string& dbPath, std::uint64_t ref, MessageId id) {
    JournalFiles files = listJournalFiles(dbPath);
    auto it = files.content.find(refSegment(ref));
    std::string path = it != files.content.end() ? it->second.first : segmentName(dbPath, refSegment(ref));
    std::string payload;
    if (!readPayload(path, refOffset(ref), payload)) return std::nullopt;
    return rawOfRecord(payload, id);
}

std::size_t dropContentFilesBelow(const std::string& dbPath, MessageId firstLiveId) {
    std::size_t n = 0;
    for (const auto& [number, f] : listJournalFiles(dbPath).content) {
        std::error_code ec;
        if (f.second < firstLiveId && std::filesystem::remove(f.first, ec)) ++n;
    }
    return n;
}

std::size_t IntakeJournal::dropContentBelow(MessageId firstLiveId) {
    std::lock_guard<std::mutex> lock(mu_);
    return std::erase_if(content_, [&](const auto& entry) {
        if (entry.second.lastId >= firstLiveId) return false;
        std::error_code ec;
        std::filesystem::remove(entry.second.path, ec);
        return true;
    });
}

std::size_t IntakeJournal::contentFiles() const {
    std::lock_guard<std::mutex> lock(mu_);
    return content_.size();
}

bool IntakeJournal::releasable(MessageId appliedId) const {
    std::lock_guard<std::mutex> lock(mu_);
    return segments_.size() > 1 && segments_.front().lastId <= appliedId;
}

std::size_t IntakeJournal::segments() const {
    std::lock_guard<std::mutex> lock(mu_);
    return segments_.size();
}

void IntakeJournal::retireAll() {
    std::lock_guard<std::mutex> lock(mu_);
    file_.reset();
    // The segment being written may be zero-filled ahead (sync mode): a content
    // file keeps only what was written.
    // (Should the truncation fail, the zeros read as the file's end.)
    if (!segments_.empty() && segments_.back().keep) (void)!::truncate(segments_.back().path.c_str(), static_cast<off_t>(size_));
    for (const auto& s : segments_) retire(s);
    segments_.clear();
}

}  // namespace junction::store
