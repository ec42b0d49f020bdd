// MLLP framing (framing.h): framing a payload, and the incremental decoder
// that finds frames in received bytes and reports broken framing as values.
#include "connectors/mllp/framing.h"

#include <cstring>

namespace junction::mllp {

void appendFrame(std::string& out, std::string_view payload) {
    out += kStartBlock;
    out.append(payload);
    out += kEndBlock;
    out += kCarriageReturn;
}

std::string frame(std::string_view payload) {
    std::string out;
    out.reserve(payload.size() + 3);
    appendFrame(out, payload);
    return out;
}

const char* toString(FrameDecoder::Error e) {
    switch (e) {
        case FrameDecoder::Error::None: return "none";
        case FrameDecoder::Error::DataOutsideFrame: return "data outside an MLLP frame";
        case FrameDecoder::Error::TooLarge: return "MLLP frame exceeds the maximum message size";
        case FrameDecoder::Error::StartInsideFrame: return "start block inside an open MLLP frame";
        case FrameDecoder::Error::MissingCarriageReturn: return "end block not followed by carriage return";
    }
    return "?";
}

FrameDecoder::FrameDecoder(std::size_t maxMessageBytes) : max_(maxMessageBytes) {}

void FrameDecoder::error(Error e, std::string detail) {
    Event ev;
    ev.isError = true;
    ev.error = e;
    ev.detail = std::string(toString(e)) + (detail.empty() ? "" : ": " + detail);
    events_.push_back(std::move(ev));
}

void FrameDecoder::feed(const char* data, std::size_t size) {
    std::size_t i = 0;
    while (i < size) {
        if (sawEnd_) {
            sawEnd_ = false;
            if (data[i] == kCarriageReturn) {
                ++i;
            } else {
                error(Error::MissingCarriageReturn, {});
            }
            if (discarding_) {
                discarding_ = false;
            } else {
                Event ev;
                ev.payload = std::move(buffer_);
                queuedBytes_ += ev.payload.size();
                events_.push_back(std::move(ev));
            }
            buffer_.clear();
            inFrame_ = false;
            frameBytes_ = 0;
            continue;
        }
        if (!inFrame_) {
            // Skip whitespace between frames; anything else is outside a frame.
            const char* start = static_cast<const char*>(std::memchr(data + i, kStartBlock, size - i));
            std::size_t until = start ? static_cast<std::size_t>(start - data) : size;
            for (std::size_t k = i; k < until; ++k) {
                char c = data[k];
                if (c != '\r' && c != '\n' && c != ' ' && c != '\t' && c != '\0') {
                    error(Error::DataOutsideFrame, "byte offset " + std::to_string(k - i) + " of a read");
                    break;
                }
            }
            if (!start) return;
            i = until + 1;
            inFrame_ = true;
            ++framesBegun_;
            frameBytes_ = 0;
            continue;
        }
        // Inside a frame: copy up to the end block.
        const char* end = static_cast<const char*>(std::memchr(data + i, kEndBlock, size - i));
        std::size_t until = end ? static_cast<std::size_t>(end - data) : size;
        const char* nested = static_cast<const char*>(std::memchr(data + i, kStartBlock, until - i));
        if (nested) {
            error(Error::StartInsideFrame, "after " + std::to_string(frameBytes_ + (nested - (data + i))) + " bytes");
            buffer_.clear();
            discarding_ = false;
            frameBytes_ = 0;
            ++framesBegun_;
            i = static_cast<std::size_t>(nested - data) + 1;  // restart at the new frame
            continue;
        }
        std::size_t n = until - i;
        frameBytes_ += n;
        if (!discarding_) {
            if (frameBytes_ > max_) {
                error(Error::TooLarge, "more than " + std::to_string(max_) + " bytes");
                discarding_ = true;
                buffer_.clear();
                buffer_.shrink_to_fit();
            } else {
                buffer_.append(data + i, n);
            }
        }
        i = until;
        if (end) {
            sawEnd_ = true;
            ++i;
        }
    }
}

bool FrameDecoder::next(Event& out) {
    if (events_.empty()) return false;
    out = std::move(events_.front());
    events_.pop_front();
    queuedBytes_ -= out.payload.size();
    return true;
}

}  // namespace junction::mllp
