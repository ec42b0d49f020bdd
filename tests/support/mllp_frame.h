// MLLP framing for the test peers and benchmark tools (mllpload, mllpecho,
// mllpdurable): a message travels as 0x0B <message> 0x1C 0x0D. FrameReader
// collects what a socket receives and hands out the complete messages in it;
// appendFrame and appendAck write frames.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace junction::testing {

inline constexpr char kMllpStart = '\x0b';
inline constexpr std::string_view kMllpEnd = "\x1c\r";

inline void appendFrame(std::string& out, std::string_view msg) {
    out += kMllpStart;
    out += msg;
    out += kMllpEnd;
}

// A minimal framed ACK: MSH from `app`, MSA-1 AA, MSA-2 = id (the MSH-10 of
// the message it answers, which is also the ACK's own control id after "A").
inline void appendAck(std::string& out, std::string_view app, std::string_view id) {
    out += kMllpStart;
    out += "MSH|^~\\&|";
    out += app;
    out += '|';
    out += app;
    out += "|||20260101000000||ACK|A";
    out += id;
    out += "|P|2.5.1\rMSA|AA|";
    out += id;
    out += '\r';
    out += kMllpEnd;
}

class FrameReader {
public:
    // Receives what the socket has (blocking until something arrives). False
    // when the peer closed the connection or recv failed (errno says why;
    // EAGAIN after SO_RCVTIMEO ran out).
    bool receive(int fd) {
        compact();
        ssize_t n = recv(fd, chunk_, sizeof chunk_, 0);
        if (n <= 0) return false;
        buf_.append(chunk_, static_cast<std::size_t>(n));
        return true;
    }

    // The next complete message, without its framing, or nothing when no frame
    // is complete yet. The view stays valid until the next receive(). Bytes
    // before a start block are skipped; a frame without one starts where the
    // previous frame ended.
    std::optional<std::string_view> next() {
        std::size_t end = buf_.find(kMllpEnd, head_);
        if (end == std::string::npos) return std::nullopt;
        std::size_t start = buf_.find(kMllpStart, head_);
        std::size_t begin = start < end ? start + 1 : head_;
        head_ = end + kMllpEnd.size();
        return std::string_view(buf_).substr(begin, end - begin);
    }

    // Forgets everything received (after a reconnect).
    void clear() {
        buf_.clear();
        head_ = 0;
    }

private:
    void compact() {
        if (head_ == 0) return;
        buf_.erase(0, head_);
        head_ = 0;
    }

    std::string buf_;
    std::size_t head_ = 0;  // the first byte not yet handed out by next()
    char chunk_[65536];
};

}  // namespace junction::testing
