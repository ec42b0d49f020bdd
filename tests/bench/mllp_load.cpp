// mllpload: an MLLP load generator, for measuring an HL7 listener (Junction,
// the mllpecho and mllpdurable floors, another engine) from outside. It is run
// by scripts/bench.sh, tests/bench/mwl.sh and tests/integration/reliability.sh.
//
//   mllpload HOST PORT [--conns N] [--count N] [--msgdir DIR | --msg FILE]
//            [--timeout-ms N] [--prefix P] [--acked FILE] [--reconnect S]
//            [--per-message]
//
//   --conns N       connections (default 4), each with one message in flight:
//                   it sends a message, waits for its ACK, sends the next
//   --count N       messages in all (default 10000)
//   --msg FILE      the message to send; CRLF and LF line ends become CR
//   --msgdir DIR    the *.hl7 files of DIR instead, in name order, round robin
//   --timeout-ms N  how long to wait for an ACK (default 10000); a message
//                   without one counts as unacked and its connection is closed
//   --prefix P      each message gets the control id (MSH-10) P<conn>-<n>,
//                   n counting all messages from 0 (default prefix L)
//   --acked FILE    writes the control id of every message acknowledged, one a line
//   --reconnect S   after a dropped connection, dials again for up to S seconds
//                   and goes on with the next message (the one that got no ACK
//                   counts as unacked); without it the connection ends there
//   --per-message   a connection for each message: dials, sends, waits for the
//                   ACK, hangs up (as many HL7 senders do)
//
// A message is acknowledged when its ACK's MSA-1 is AA or CA and MSA-2 echoes
// its control id. The last line printed is the summary the scripts read:
//
//   sent=N ok=N bad=N unacked=N conns=N secs=X rate=N/s p50=Xms p99=Xms max=Xms
//
// sent: messages sent (ok + bad + unacked); ok: acknowledged; bad: answered
// otherwise; unacked: no answer; rate: answers a second; p50, p99, max: the time
// from sending a message to its ACK. Exits 0 when every message was
// acknowledged, 1 when not, 2 on a usage error or a message it cannot read.
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/support/loopback_server.h"
#include "tests/support/mllp_frame.h"
#include "tests/support/msh10.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace junction::testing;

constexpr const char* kUsage =
    "usage: mllpload HOST PORT [--conns N] [--count N] [--msgdir DIR | --msg FILE] [--timeout-ms N]\n"
    "                [--prefix P] [--acked FILE] [--reconnect S] [--per-message]\n";

[[noreturn]] void usageError(const std::string& problem) {
    std::fprintf(stderr, "mllpload: %s\n%s", problem.c_str(), kUsage);
    std::exit(2);
}

[[noreturn]] void inputError(const std::string& problem) {
    std::fprintf(stderr, "mllpload: %s\n", problem.c_str());
    std::exit(2);
}

// ------------------------------------------------------------------ messages

// A message to send, split around its MSH-10: each copy sent is head, a
// control id of its own, tail.
struct Template {
    std::string head, tail;
};

std::string readWholeFile(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) inputError("cannot read " + path + ": " + std::strerror(errno));
    std::string data;
    char chunk[65536];
    std::size_t n;
    while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) data.append(chunk, n);
    bool failed = std::ferror(f);
    std::fclose(f);
    if (failed) inputError("cannot read " + path);
    return data;
}

// CRLF and LF become CR, trailing white space goes, and the message ends with CR.
std::string normalise(std::string_view raw) {
    std::string msg;
    msg.reserve(raw.size() + 1);
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n') continue;
        msg += raw[i] == '\n' ? '\r' : raw[i];
    }
    while (!msg.empty() && std::isspace(static_cast<unsigned char>(msg.back()))) msg.pop_back();
    msg += '\r';
    return msg;
}

Template loadTemplate(const std::string& path) {
    std::string msg = normalise(readWholeFile(path));
    Msh10Span id = msh10Span(msg);
    if (msg.compare(0, 3, "MSH") != 0 || id.pos == std::string_view::npos)
        inputError(path + ": not an HL7 message with an MSH-10 field");
    return {msg.substr(0, id.pos), msg.substr(id.pos + id.len)};
}

// The *.hl7 files of dir, in name order.
std::vector<std::string> hl7FilesIn(const std::string& dir) {
    std::error_code ec;
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
        if (entry.path().extension() == ".hl7") files.push_back(entry.path().string());
    if (ec) inputError("cannot read " + dir + ": " + ec.message());
    if (files.empty()) inputError("no .hl7 files in " + dir);
    std::sort(files.begin(), files.end());
    return files;
}

// ------------------------------------------------------------------ options

struct Options {
    std::string host, port;
    int conns = 4;
    long count = 10000;
    int timeoutMs = 10000;
    std::string prefix = "L";
    std::string ackedPath;
    int reconnectSeconds = 0;
    bool perMessage = false;
    std::vector<std::string> files;  // the messages, sent round robin
};

template <class Int>
Int wholeNumber(const std::string& option, std::string_view text, Int least) {
    Int value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value < least)
        usageError(option + " takes a whole number of at least " + std::to_string(least) + ", not '" +
                   std::string(text) + "'");
    return value;
}

Options parseOptions(int argc, char** argv) {
    if (argc < 3) usageError("HOST and PORT are required");
    Options o;
    o.host = argv[1];
    o.port = argv[2];
    for (int i = 3; i < argc; ++i) {
        std::string option = argv[i];
        if (option == "--per-message") {
            o.perMessage = true;
            continue;
        }
        if (i + 1 >= argc) usageError(option + " needs a value");
        std::string value = argv[++i];
        if (option == "--conns") o.conns = wholeNumber(option, value, 1);
        else if (option == "--count") o.count = wholeNumber(option, value, 0L);
        else if (option == "--timeout-ms") o.timeoutMs = wholeNumber(option, value, 1);
        else if (option == "--reconnect") o.reconnectSeconds = wholeNumber(option, value, 0);
        else if (option == "--prefix") o.prefix = value;
        else if (option == "--acked") o.ackedPath = value;
        else if (option == "--msg") o.files.push_back(value);
        else if (option == "--msgdir") {
            std::vector<std::string> dirFiles = hl7FilesIn(value);
            o.files.insert(o.files.end(), dirFiles.begin(), dirFiles.end());
        } else usageError("unknown option " + option);
    }
    if (o.files.empty()) usageError("--msg FILE or --msgdir DIR is required");
    return o;
}

// The listener's address, resolved once.
struct Address {
    sockaddr_storage addr{};
    socklen_t len = 0;
    int family = AF_INET;
};

Address resolve(const Options& o) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    int rc = getaddrinfo(o.host.c_str(), o.port.c_str(), &hints, &found);
    if (rc != 0) inputError("cannot resolve " + o.host + ":" + o.port + ": " + gai_strerror(rc));
    Address a;
    std::memcpy(&a.addr, found->ai_addr, found->ai_addrlen);
    a.len = found->ai_addrlen;
    a.family = found->ai_family;
    freeaddrinfo(found);
    return a;
}

// ------------------------------------------------------------------ ACKs

// Field n of an HL7 segment (n counted after the segment name), its first
// component only.
std::string_view firstComponent(std::string_view segment, int n, char fieldSep, char componentSep) {
    std::size_t start = 3;
    for (int k = 0; k < n; ++k) {
        start = segment.find(fieldSep, start);
        if (start == std::string_view::npos) return {};
        ++start;
    }
    std::size_t end = segment.find(fieldSep, start);
    std::string_view field = segment.substr(start, end == std::string_view::npos ? end : end - start);
    return field.substr(0, field.find(componentSep));
}

struct AckFields {
    std::string_view code;  // MSA-1
    std::string_view ref;   // MSA-2
};

AckFields readMsa(std::string_view ack) {
    char componentSep = ack.size() > 4 && ack.substr(0, 3) == "MSH" ? ack[4] : '^';
    for (std::size_t pos = 0; pos < ack.size();) {
        std::size_t end = std::min(ack.find('\r', pos), ack.size());
        std::string_view segment = ack.substr(pos, end - pos);
        if (segment.size() > 3 && segment.substr(0, 3) == "MSA")
            return {firstComponent(segment, 1, segment[3], componentSep),
                    firstComponent(segment, 2, segment[3], componentSep)};
        pos = end + 1;
    }
    return {};
}

// ------------------------------------------------------------------ connections

// What all connections share.
struct Run {
    const Options& options;
    const Address& address;
    const std::vector<Template>& messages;
    std::atomic<long> next{0};  // the next message number to send
    std::atomic<bool> connectFailureReported{false};
};

// What one connection counted.
struct Tally {
    long ok = 0, bad = 0, unacked = 0;
    std::vector<double> latencyMs;
    std::vector<long> acknowledged;  // message numbers
    std::vector<std::string> badSamples;
};

class Connection {
public:
    Connection(Run& run, int index)
        : run_(run), opt_(run.options), idPrefix_(opt_.prefix + std::to_string(index) + "-") {
        tally_.latencyMs.reserve(static_cast<std::size_t>(opt_.count / opt_.conns + 1));
    }

    // Sends messages until all are taken or the connection is lost for good.
    void sendMessages() {
        if (!dial()) return;
        for (;;) {
            long n = run_.next.fetch_add(1, std::memory_order_relaxed);
            if (n >= opt_.count) break;
            buildFrame(n);
            Clock::time_point sent = Clock::now();
            std::optional<std::string_view> ack = exchange();
            if (!ack) {
                ++tally_.unacked;
                hangUp();
                if (opt_.reconnectSeconds == 0 || !dial()) break;
                continue;
            }
            tally_.latencyMs.push_back(std::chrono::duration<double, std::milli>(Clock::now() - sent).count());
            judge(*ack, n);
            if (opt_.perMessage) {
                hangUp();
                if (run_.next.load(std::memory_order_relaxed) >= opt_.count || !dial()) break;
            }
        }
        hangUp();
    }

    const Tally& tally() const { return tally_; }

private:
    // Connects, trying again for up to --reconnect seconds.
    bool dial() {
        Clock::time_point until = Clock::now() + std::chrono::seconds(opt_.reconnectSeconds);
        for (;;) {
            const Address& to = run_.address;
            fd_ = socket(to.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd_ >= 0 && connect(fd_, reinterpret_cast<const sockaddr*>(&to.addr), to.len) == 0) {
                configureSocket();
                reader_.clear();
                return true;
            }
            int error = errno;
            hangUp();
            if (Clock::now() >= until) {
                if (!run_.connectFailureReported.exchange(true))
                    std::fprintf(stderr, "mllpload: cannot connect to %s:%s: %s\n", opt_.host.c_str(),
                                 opt_.port.c_str(), std::strerror(error));
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }

    void configureSocket() {
        setNoDelay(fd_);
        timeval timeout{opt_.timeoutMs / 1000, static_cast<suseconds_t>(opt_.timeoutMs % 1000) * 1000};
        setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    }

    void hangUp() {
        if (fd_ >= 0) close(fd_);
        fd_ = -1;
    }

    // The frame of message n: its template with the control id <prefix><conn>-<n>.
    void buildFrame(long n) {
        const Template& t = run_.messages[static_cast<std::size_t>(n) % run_.messages.size()];
        id_ = idPrefix_;
        char digits[24];
        id_.append(digits, std::to_chars(digits, digits + sizeof digits, n).ptr);
        frame_.clear();
        frame_ += kMllpStart;
        frame_ += t.head;
        frame_ += id_;
        frame_ += t.tail;
        frame_ += kMllpEnd;
    }

    // Sends the frame and waits for the answer; nothing when the connection
    // failed, closed or timed out first.
    std::optional<std::string_view> exchange() {
        if (!sendAll(fd_, frame_)) return std::nullopt;
        for (;;) {
            if (auto ack = reader_.next()) return ack;
            if (!reader_.receive(fd_)) return std::nullopt;
        }
    }

    void judge(std::string_view ack, long n) {
        AckFields msa = readMsa(ack);
        if ((msa.code == "AA" || msa.code == "CA") && msa.ref == id_) {
            ++tally_.ok;
            if (!opt_.ackedPath.empty()) tally_.acknowledged.push_back(n);
            return;
        }
        ++tally_.bad;
        if (tally_.badSamples.size() < 3)
            tally_.badSamples.push_back("MSA-1=" + std::string(msa.code) + " MSA-2=" + std::string(msa.ref) +
                                        " for " + id_);
    }

    Run& run_;
    const Options& opt_;
    const std::string idPrefix_;
    int fd_ = -1;
    FrameReader reader_;
    std::string id_, frame_;
    Tally tally_;
};

// ------------------------------------------------------------------ summary

double percentile(const std::vector<double>& sorted, double p) {
    if (sorted.empty()) return 0;
    return sorted[std::min(sorted.size() - 1, static_cast<std::size_t>(p * static_cast<double>(sorted.size())))];
}

// The --acked file, opened before the run so that a path it cannot write stops it at once.
std::FILE* openAckedFile(const Options& o) {
    if (o.ackedPath.empty()) return nullptr;
    std::FILE* f = std::fopen(o.ackedPath.c_str(), "w");
    if (!f) inputError("cannot write " + o.ackedPath + ": " + std::strerror(errno));
    return f;
}

void writeAcknowledged(std::FILE* f, const Options& o, const std::vector<Connection>& conns) {
    for (int c = 0; c < o.conns; ++c)
        for (long n : conns[static_cast<std::size_t>(c)].tally().acknowledged)
            std::fprintf(f, "%s%d-%ld\n", o.prefix.c_str(), c, n);
    std::fclose(f);
}

// Prints the bad ACK samples and the summary line; true when every message was acknowledged.
bool report(const Options& o, const std::vector<Connection>& conns, double secs) {
    Tally all;
    for (const Connection& c : conns) {
        const Tally& t = c.tally();
        all.ok += t.ok;
        all.bad += t.bad;
        all.unacked += t.unacked;
        all.latencyMs.insert(all.latencyMs.end(), t.latencyMs.begin(), t.latencyMs.end());
        for (const std::string& s : t.badSamples)
            if (all.badSamples.size() < 3) all.badSamples.push_back(s);
    }
    for (const std::string& s : all.badSamples) std::fprintf(stderr, "mllpload: bad ACK: %s\n", s.c_str());
    std::sort(all.latencyMs.begin(), all.latencyMs.end());
    long answered = all.ok + all.bad;
    std::printf("sent=%ld ok=%ld bad=%ld unacked=%ld conns=%d secs=%.3f rate=%ld/s p50=%.3fms p99=%.3fms max=%.3fms\n",
                answered + all.unacked, all.ok, all.bad, all.unacked, o.conns, secs,
                secs > 0 ? static_cast<long>(static_cast<double>(answered) / secs) : 0L,
                percentile(all.latencyMs, 0.5), percentile(all.latencyMs, 0.99), percentile(all.latencyMs, 1.0));
    std::fflush(stdout);
    return all.ok == o.count;
}

}  // namespace

int main(int argc, char** argv) {
    Options options = parseOptions(argc, argv);
    std::vector<Template> messages;
    for (const std::string& file : options.files) messages.push_back(loadTemplate(file));
    Address address = resolve(options);
    std::FILE* acked = openAckedFile(options);

    Run run{options, address, messages};
    std::vector<Connection> conns;
    conns.reserve(static_cast<std::size_t>(options.conns));
    for (int c = 0; c < options.conns; ++c) conns.emplace_back(run, c);

    Clock::time_point start = Clock::now();
    std::vector<std::thread> threads;
    for (Connection& c : conns) threads.emplace_back([&c] { c.sendMessages(); });
    for (std::thread& t : threads) t.join();
    double secs = std::chrono::duration<double>(Clock::now() - start).count();

    if (acked) writeAcknowledged(acked, options, conns);
    return report(options, conns, secs) ? 0 : 1;
}
