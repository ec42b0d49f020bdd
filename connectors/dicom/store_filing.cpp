// The filing half of the storage server (see store_server.h): reading and
// checking a received file, the .incoming/ready hand-over, filing instances
// under STORAGE/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm, the spare files
// associations write into and the ingest thread that makes answered instances
// messages. The association half is store_server.cpp.
#include "connectors/dicom/store_server_impl.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmnet/dimse.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "connectors/dicom/store_dcmtk.h"

namespace fs = std::filesystem;

namespace junction::dicom {

namespace {

// A UID fit to be a file or folder name: digits and dots, 1..64 characters.
bool safeUid(const std::string& uid) {
    if (uid.empty() || uid.size() > 64 || uid == "." || uid == "..") return false;
    return std::all_of(uid.begin(), uid.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

// Received files up to this size are read whole into memory to be checked and
// parsed: the file was just written, so this is a page-cache copy, cheaper than
// DCMTK's file stream per element and than unmapping a mapping.
constexpr std::size_t kReadWhole = 4u << 20;

enum class Whole { Read, TooBig, Failed };

// Reads `path` into `out` when it is at most kReadWhole bytes; `fd` stays open
// (and is returned) when it is bigger, for the caller to map.
Whole readWhole(const std::string& path, std::string& out, int& bigFd, std::size_t& size) {
    bigFd = -1;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) {
        if (fd >= 0) ::close(fd);
        return Whole::Failed;
    }
    size = static_cast<std::size_t>(st.st_size);
    if (size > kReadWhole) {
        bigFd = fd;
        return Whole::TooBig;
    }
    out.resize(size);
    std::size_t got = 0;
    while (got < size) {
        ssize_t n = ::read(fd, out.data() + got, size - got);
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    out.resize(got);
    ::close(fd);
    return Whole::Read;
}

// Parses a received file, from memory when it was read whole, else from the
// file with large values left on disk. Either way the whole dataset is read,
// so a truncated one is noticed.
OFCondition parseReceived(const std::string& path, DcmFileFormat& file) {
    std::string buf;
    int bigFd;
    std::size_t size;
    Whole w = readWhole(path, buf, bigFd, size);
    if (w == Whole::Failed) return makeOFCondition(0, 1, OF_error, "cannot open the received file");
    if (w == Whole::TooBig) {
        ::close(bigFd);
        return file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, 4096, ERM_fileOnly);
    }
    DcmInputBufferStream in;
    in.setBuffer(buf.data(), static_cast<offile_off_t>(buf.size()));
    in.setEos();
    file.transferInit();
    OFCondition c = file.read(in, EXS_Unknown, EGL_noChange, 4096);
    file.transferEnd();
    return c;
}

// link() failing this way means the filesystem (FAT, some network mounts) or
// the folder's place (another filesystem) takes no second link.
bool linkUnsupported(int err) { return err == EPERM || err == EXDEV || err == EOPNOTSUPP || err == EMLINK; }

// Files a copy of `from` as `target` (through a temporary name, so that
// `target` is whole or absent), for where a hard link cannot be made.
bool copyInto(const std::string& from, const fs::path& target, bool sync) {
    fs::path tmp = target;
    tmp += ".part";
    std::error_code ec;
    fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
    if (ec || (sync && !detail::fsyncPath(tmp.string(), false))) {
        int err = ec ? ec.value() : errno;
        fs::remove(tmp, ec);
        errno = err;
        return false;
    }
    if (::rename(tmp.c_str(), target.c_str()) == 0) return true;
    int err = errno;
    fs::remove(tmp, ec);
    errno = err;
    return false;
}

// AE titles and addresses travel in a ready file's name, hex-encoded.
std::string hexOf(const std::string& v) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : v) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::string unhex(std::string_view v) {
    auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    std::string out;
    for (std::size_t i = 0; i + 1 < v.size(); i += 2) out += static_cast<char>((nibble(v[i]) << 4) | nibble(v[i + 1]));
    return out;
}

}  // namespace

namespace detail {

bool fsyncPath(const std::string& path, bool directory) {
    int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
}

Part10Walk walkFile(const std::string& path) {
    std::string buf;
    int bigFd;
    std::size_t size;
    Whole whole = readWhole(path, buf, bigFd, size);
    if (whole == Whole::Read) return walkPart10(reinterpret_cast<const std::uint8_t*>(buf.data()), buf.size());
    Part10Walk w;
    void* m = whole == Whole::TooBig ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, bigFd, 0) : MAP_FAILED;
    if (bigFd >= 0) ::close(bigFd);
    if (m == MAP_FAILED) {
        w.error = std::string("cannot read the received file: ") + std::strerror(errno);
        return w;
    }
    w = walkPart10(static_cast<const std::uint8_t*>(m), size);
    ::munmap(m, size);
    return w;
}

std::string uidProblem(const std::string& study, const std::string& series, const std::string& instance) {
    if (safeUid(study) && safeUid(series) && safeUid(instance)) return {};
    return "missing or invalid Study/Series/SOP Instance UID ('" + study + "', '" + series + "', '" + instance + "')";
}

// ------------------------------------------------------------ spare files

void SpareFiles::start(std::string dir, Namer name, std::size_t depth) {
    dir_ = std::move(dir);
    name_ = std::move(name);
    depth_ = depth;
    stopping_ = false;
    thread_ = std::thread([this] { loop(); });
}

std::string SpareFiles::take() {
    std::string path;
    bool low;
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (!ready_.empty()) {
            path = std::move(ready_.front());
            ready_.pop_front();
        }
        low = ready_.size() <= depth_ / 2;  // refilled in batches: one wake-up per few takes
    }
    if (low) cv_.notify_one();
    return path.empty() ? freshPath() : path;
}

void SpareFiles::stop() {
    if (!thread_.joinable()) return;
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
    for (const auto& p : ready_) ::unlink(p.c_str());
    ready_.clear();
}

void SpareFiles::loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
        cv_.wait(lock, [&] { return stopping_ || ready_.size() < depth_; });
        if (stopping_) break;
        lock.unlock();
        std::string path = freshPath();
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) ::close(fd);
        lock.lock();
        if (fd < 0) {  // the folder is gone or full: associations create their own files
            cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
            continue;
        }
        ready_.push_back(std::move(path));
    }
}

}  // namespace detail

// ------------------------------------------------------------ the filing side

void StoreServer::Impl::prepareFiling() {
    std::error_code ec;
    const std::string incoming = incomingDir();
    fs::create_directories(incoming, ec);
    if (ec) throw std::runtime_error("cannot create " + incoming + ": " + ec.message());
    // Partial and spare files of a previous run go; answered instances not yet
    // messages (the ready folder) are taken up first.
    for (const auto& e : fs::directory_iterator(incoming, ec))
        if (e.is_regular_file(ec)) fs::remove(e.path(), ec);
    fs::create_directories(readyDir(), ec);
    if (ec) throw std::runtime_error("cannot create " + readyDir() + ": " + ec.message());
    std::vector<std::string> pending;
    for (const auto& e : fs::directory_iterator(readyDir(), ec))
        if (e.path().extension() == ".dcm") pending.push_back(e.path().string());
    std::sort(pending.begin(), pending.end());
    if (!pending.empty())
        log("info", "dicom: " + std::to_string(pending.size()) + " instance(s) received before the last stop become messages now");
    {
        std::lock_guard<std::mutex> lock(ingestMu_);
        ingest_.assign(pending.begin(), pending.end());
        ingestStop_ = false;
    }
}

void StoreServer::Impl::startBackground() {
    spares_.start(incomingDir(), [this] { return tempName(); }, 8);
    ingestThread_ = std::thread([this] { ingestLoop(); });
}

void StoreServer::Impl::stopBackground() {
    spares_.stop();
    {
        std::lock_guard<std::mutex> lock(ingestMu_);
        ingestStop_ = true;
        ingest_.clear();  // still in the ready folder for the next start
    }
    ingestCv_.notify_all();
    if (ingestThread_.joinable()) ingestThread_.join();
}

std::string StoreServer::Impl::readyName(const std::string& callingAE, const std::string& calledAE,
                                         const std::string& peer) {
    char head[48];
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch());
    std::snprintf(head, sizeof head, "%020lld-%08u", static_cast<long long>(ns.count()), readySeq_++);
    return readyDir() + "/" + head + "_" + hexOf(callingAE) + "_" + hexOf(calledAE) + "_" + hexOf(peer) + ".dcm";
}

StoreServer::Impl::Reading StoreServer::Impl::read(const std::string& path) const {
    Reading rd;
    DcmFileFormat file;
    OFCondition c = parseReceived(path, file);
    if (c.bad()) {
        rd.status = STATUS_STORE_Error_CannotUnderstand;
        rd.error = std::string("unreadable dataset: ") + c.text();
        return rd;
    }
    DcmDataset* ds = file.getDataset();
    OFString study, series, instance, sopClass, xfer;
    ds->findAndGetOFString(DCM_StudyInstanceUID, study);
    ds->findAndGetOFString(DCM_SeriesInstanceUID, series);
    ds->findAndGetOFString(DCM_SOPInstanceUID, instance);
    ds->findAndGetOFString(DCM_SOPClassUID, sopClass);
    file.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, xfer);
    ReceivedInstance& r = rd.r;
    r.studyUid = study.c_str();
    r.seriesUid = series.c_str();
    r.sopInstanceUid = instance.c_str();
    r.sopClassUid = sopClass.c_str();
    r.transferSyntaxUid = xfer.c_str();
    rd.error = detail::uidProblem(r.studyUid, r.seriesUid, r.sopInstanceUid);
    if (!rd.error.empty()) {
        rd.status = STATUS_STORE_Error_CannotUnderstand;
        return rd;
    }
    std::string error;
    if (!detail::itemToJson(*ds, r.json, error)) {
        rd.status = STATUS_STORE_Error_CannotUnderstand;
        rd.error = "cannot convert to DICOM JSON: " + error;
        return rd;
    }
    rd.dir = fs::path(o_.storageDir) / r.studyUid / r.seriesUid;
    return rd;
}

std::string StoreServer::Impl::place(const std::string& from, Reading& rd, bool link, std::string& knownDir) const {
    fs::path target = rd.dir / (rd.r.sopInstanceUid + ".dcm");
    auto put = [&] {
        if (!link) {
            if (::rename(from.c_str(), target.c_str()) == 0) return true;
            if (errno != EXDEV || !copyInto(from, target, o_.syncFiles)) return false;
            ::unlink(from.c_str());
            return true;
        }
        if (::link(from.c_str(), target.c_str()) == 0) return true;
        if (errno == EEXIST) {
            ::unlink(target.c_str());  // the same instance again: the newer file replaces it, as a rename would
            if (::link(from.c_str(), target.c_str()) == 0) return true;
        }
        if (!linkUnsupported(errno)) return false;
        if (!linkWarned_.exchange(true))
            log("info", "dicom: " + rd.dir.string() + " takes no hard links (" + std::strerror(errno) +
                            "); instances are filed there by copy");
        return copyInto(from, target, o_.syncFiles);
    };
    // A series' folder is looked for once, not per instance; should it vanish
    // meanwhile (pruned), filing fails and makes it again.
    bool newDirs = false;
    if (rd.dir.native() != knownDir || !put()) {
        std::error_code ec;
        newDirs = !fs::exists(rd.dir, ec);
        fs::create_directories(rd.dir, ec);
        if (ec) return "cannot create " + rd.dir.string() + ": " + ec.message();
        if (!put()) return std::string("cannot file the instance as ") + target.string() + ": " + std::strerror(errno);
        knownDir = rd.dir.native();
    }
    if (o_.syncFiles) {
        detail::fsyncPath(rd.dir.string(), true);
        if (newDirs) {
            detail::fsyncPath(rd.dir.parent_path().string(), true);
            detail::fsyncPath(o_.storageDir, true);
        }
    }
    rd.r.path = target.string();
    return {};
}

// One ready file: read, filed and handed to the handler. False when it must
// be tried again later (the handler refused it, or it could not be filed).
bool StoreServer::Impl::ingestOne(const std::string& readyPath, std::string& knownDir, std::string& lastLogged) {
    std::string name = fs::path(readyPath).stem().string();
    std::vector<std::string_view> parts;
    for (std::size_t at = 0;;) {
        std::size_t us = name.find('_', at);
        parts.emplace_back(std::string_view(name).substr(at, us == std::string::npos ? std::string::npos : us - at));
        if (us == std::string::npos) break;
        at = us + 1;
    }
    auto complain = [&](const std::string& text) {
        if (lastLogged != readyPath) log("warn", text + "; tried again every second");
        lastLogged = readyPath;
        return false;
    };

    Reading rd = read(readyPath);
    if (parts.size() == 4) {
        rd.r.callingAE = unhex(parts[1]);
        rd.r.calledAE = unhex(parts[2]);
        rd.r.peer = unhex(parts[3]);
    }
    if (rd.status) {
        // Answered, yet DCMTK cannot read it: kept as an error message, the file set aside.
        fs::path aside = fs::path(o_.storageDir) / ".failed" / fs::path(readyPath).filename();
        rd.r.error = rd.error;
        rd.r.path = aside.string();
        rd.r.json = "{}";
        StoreOutcome out = callHandler(rd.r);
        if (out.status != kStoreSuccess) return complain("dicom: unreadable instance " + readyPath + " not stored: " + out.error);
        std::error_code ec;
        fs::create_directories(aside.parent_path(), ec);
        fs::rename(readyPath, aside, ec);
        if (ec) fs::remove(readyPath, ec);
        log("warn", "dicom: instance from " + rd.r.callingAE + " (" + rd.r.peer + ") answered but unreadable: " + rd.error +
                        "; kept as an error message, file in " + aside.string());
        return true;
    }
    std::string placeError = place(readyPath, rd, true, knownDir);
    if (!placeError.empty()) return complain("dicom: " + placeError);
    StoreOutcome out = callHandler(rd.r);
    if (out.status != kStoreSuccess)
        return complain("dicom: instance " + rd.r.sopInstanceUid + " not yet a message: " + out.error);
    ::unlink(readyPath.c_str());
    return true;
}

void StoreServer::Impl::ingestLoop() {
    std::string knownDir, lastLogged;
    std::unique_lock<std::mutex> lock(ingestMu_);
    for (;;) {
        ingestCv_.wait(lock, [&] { return ingestStop_ || !ingest_.empty(); });
        if (ingestStop_) break;
        std::string path = ingest_.front();
        lock.unlock();
        bool done = ingestOne(path, knownDir, lastLogged);
        lock.lock();
        if (done) ingest_.pop_front();
        else ingestCv_.wait_for(lock, std::chrono::seconds(1), [&] { return ingestStop_; });
    }
}

}  // namespace junction::dicom
