// MLLP framing: <VT> payload <FS><CR>. An incremental decoder for servers and
// clients; errors are reported as values.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <string_view>

namespace junction::mllp {

constexpr char kStartBlock = 0x0B;
constexpr char kEndBlock = 0x1C;
constexpr char kCarriageReturn = 0x0D;

std::string frame(std::string_view payload);
// Appends the framed payload to `out` (several frames in one buffer).
void appendFrame(std::string& out, std::string_view payload);

class FrameDecoder {
public:
    enum class Error { None, DataOutsideFrame, TooLarge, StartInsideFrame, MissingCarriageReturn };
    struct Event {
        bool isError = false;
        std::string payload;        // a complete message
        Error error = Error::None;
        std::string detail;         // human-readable description of the error
    };

    explicit FrameDecoder(std::size_t maxMessageBytes = 16u << 20);
    // Feed received bytes; complete frames and errors become events.
    void feed(const char* data, std::size_t size);
    // Pop the next event; false when there is none.
    bool next(Event& out);
    // The next event without taking it; nullptr when there is none.
    const Event* peek() const { return events_.empty() ? nullptr : &events_.front(); }
    // True while a frame has started and not ended.
    bool inFrame() const { return inFrame_; }
    // Frames begun so far (a change tells a new frame from the one open before).
    std::size_t framesBegun() const { return framesBegun_; }
    std::size_t buffered() const { return buffer_.size(); }
    // Bytes held: the open frame and the complete messages not taken yet.
    std::size_t held() const { return buffer_.size() + queuedBytes_; }

private:
    void error(Error e, std::string detail);
    std::size_t max_;
    std::string buffer_;
    bool inFrame_ = false;
    bool discarding_ = false;   // oversize frame: skipping to its end
    bool sawEnd_ = false;       // <FS> seen, <CR> expected
    std::size_t frameBytes_ = 0;
    std::size_t framesBegun_ = 0;
    std::size_t queuedBytes_ = 0;  // payloads in events_
    std::deque<Event> events_;
};

const char* toString(FrameDecoder::Error e);

}  // namespace junction::mllp
