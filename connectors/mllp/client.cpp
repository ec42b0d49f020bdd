#include "connectors/mllp/client.h"

#include <Poco/Net/Context.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SecureStreamSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Timespan.h>

#include <sys/socket.h>

#include <atomic>
#include <mutex>

#include "connectors/mllp/framing.h"

namespace junction::mllp {

struct Client::Impl {
    std::unique_ptr<Poco::Net::StreamSocket> socket;
    std::mutex fdMutex;  // guards fd against abort() racing close()
    int fd = -1;         // the connected socket, for abort()
    std::atomic<bool> aborted{false};
    std::chrono::milliseconds receiveTimeout{-1};  // as last set on the socket
};

Client::Client(ClientOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {}
Client::~Client() { close(); }

bool Client::connected() const { return impl_->socket != nullptr; }

void Client::abort() {
    impl_->aborted = true;
    std::lock_guard<std::mutex> lock(impl_->fdMutex);
    if (impl_->fd >= 0) ::shutdown(impl_->fd, SHUT_RDWR);  // wakes a send() blocked in receive
}

void Client::close() {
    {
        std::lock_guard<std::mutex> lock(impl_->fdMutex);
        impl_->fd = -1;
    }
    if (!impl_->socket) return;
    try {
        impl_->socket->close();
    } catch (...) {
    }
    impl_->socket.reset();
}

namespace {
Poco::Timespan span(std::chrono::milliseconds ms) {
    return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(ms.count()) * 1000);
}
}  // namespace

ClientResult Client::send(std::string_view payload) {
    // A kept-open connection may have been closed by the peer while idle; that
    // shows only when we use it. Then reconnect once and send again.
    bool reused = impl_->socket != nullptr;
    ClientResult r = sendOnce(payload);
    if (reused && r.status == ClientResult::Status::Closed) r = sendOnce(payload);
    return r;
}

ClientResult Client::sendOnce(std::string_view payload) {
    ClientResult result;
    if (impl_->aborted) return {ClientResult::Status::Closed, {}, "client stopped"};
    auto where = [this] { return options_.host + ":" + std::to_string(options_.port); };
    if (!impl_->socket) {
        try {
            Poco::Net::SocketAddress addr(options_.host, static_cast<Poco::UInt16>(options_.port));
            if (options_.tls) {
                auto ctx = Poco::Net::Context::Ptr(new Poco::Net::Context(
                    Poco::Net::Context::TLS_CLIENT_USE, "", "", options_.caFile,
                    options_.caFile.empty() ? Poco::Net::Context::VERIFY_NONE : Poco::Net::Context::VERIFY_RELAXED));
                auto s = std::make_unique<Poco::Net::SecureStreamSocket>(ctx);
                s->connect(addr, span(options_.connectTimeout));
                impl_->socket = std::move(s);
            } else {
                auto s = std::make_unique<Poco::Net::StreamSocket>();
                s->connect(addr, span(options_.connectTimeout));
                impl_->socket = std::move(s);
            }
            impl_->socket->setNoDelay(true);
            impl_->receiveTimeout = std::chrono::milliseconds(-1);
            std::lock_guard<std::mutex> lock(impl_->fdMutex);
            impl_->fd = impl_->socket->impl()->sockfd();
        } catch (const Poco::TimeoutException&) {
            impl_->socket.reset();
            return {ClientResult::Status::ConnectFailed, {}, where() + ": connection timed out"};
        } catch (const Poco::Net::ConnectionRefusedException&) {
            impl_->socket.reset();
            return {ClientResult::Status::ConnectFailed, {}, where() + ": connection refused"};
        } catch (const Poco::Exception& e) {
            impl_->socket.reset();
            return {ClientResult::Status::ConnectFailed, {}, where() + ": " + e.displayText()};
        }
    }
    auto& sock = *impl_->socket;
    try {
        std::string framed = frame(payload);
        std::size_t sent = 0;
        while (sent < framed.size()) {
            int n = sock.sendBytes(framed.data() + sent, static_cast<int>(framed.size() - sent));
            if (n <= 0) throw Poco::Net::ConnectionResetException("send failed");
            sent += static_cast<std::size_t>(n);
        }
        FrameDecoder decoder(options_.maxResponseBytes);
        char buf[16384];
        auto deadline = std::chrono::steady_clock::now() + options_.responseTimeout;
        while (true) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                close();
                return {ClientResult::Status::Timeout, {}, where() + ": no response within " +
                                                               std::to_string(options_.responseTimeout.count()) + " ms"};
            }
            // A system call: only when the time left is well below what is set
            // (a response in several reads), not before every read.
            if (impl_->receiveTimeout.count() < 0 || left + std::chrono::milliseconds(10) < impl_->receiveTimeout ||
                left > impl_->receiveTimeout) {
                sock.setReceiveTimeout(span(left));
                impl_->receiveTimeout = left;
            }
            int n = sock.receiveBytes(buf, sizeof buf);
            if (n <= 0) {
                close();
                return {ClientResult::Status::Closed, {}, where() + ": connection closed before a response"};
            }
            decoder.feed(buf, static_cast<std::size_t>(n));
            FrameDecoder::Event ev;
            while (decoder.next(ev)) {
                if (ev.isError) {
                    close();
                    return {ClientResult::Status::FramingError, {}, where() + ": " + ev.detail};
                }
                result.response = std::move(ev.payload);
                return result;
            }
        }
    } catch (const Poco::TimeoutException&) {
        close();
        return {ClientResult::Status::Timeout, {}, where() + ": no response within " +
                                                       std::to_string(options_.responseTimeout.count()) + " ms"};
    } catch (const Poco::Exception& e) {
        close();
        return {ClientResult::Status::Closed, {}, where() + ": " + e.displayText()};
    }
}

}  // namespace junction::mllp
