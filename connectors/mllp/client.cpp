// The MLLP client (client.h) over POCO sockets: one kept-open connection,
// a message or a window of pipelined messages sent and their framed
// responses read, with one reconnect when the peer closed it while idle.
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

ClientResult Client::connect() {
    if (impl_->aborted) return {ClientResult::Status::Closed, {}, "client stopped"};
    if (impl_->socket) return {};
    auto where = options_.host + ":" + std::to_string(options_.port);
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
        return {ClientResult::Status::ConnectFailed, {}, where + ": connection timed out"};
    } catch (const Poco::Net::ConnectionRefusedException&) {
        impl_->socket.reset();
        return {ClientResult::Status::ConnectFailed, {}, where + ": connection refused"};
    } catch (const Poco::Exception& e) {
        impl_->socket.reset();
        return {ClientResult::Status::ConnectFailed, {}, where + ": " + e.displayText()};
    }
    return {};
}

ClientResult Client::sendOnce(std::string_view payload) {
    auto results = sendAllOnce({payload});
    return std::move(results.front());
}

std::vector<ClientResult> Client::sendAll(const std::vector<std::string_view>& payloads) {
    if (payloads.empty()) return {};
    // As send(): a kept-open connection closed by the peer while idle shows
    // only now; reconnect once and send them all again.
    bool reused = impl_->socket != nullptr;
    auto r = sendAllOnce(payloads);
    if (reused && r.front().status == ClientResult::Status::Closed) r = sendAllOnce(payloads);
    return r;
}

std::vector<ClientResult> Client::sendAllOnce(const std::vector<std::string_view>& payloads) {
    std::vector<ClientResult> results;
    results.reserve(payloads.size());
    // The message whose response is missing and every one after it share the failure.
    auto failRest = [&](ClientResult::Status status, const std::string& error) {
        close();
        while (results.size() < payloads.size()) results.push_back({status, {}, error});
        return std::move(results);
    };
    ClientResult c = connect();
    if (!c.ok()) return failRest(c.status, c.error);
    auto where = [this] { return options_.host + ":" + std::to_string(options_.port); };
    auto timedOut = [&] {
        return failRest(ClientResult::Status::Timeout,
                        where() + ": no response within " + std::to_string(options_.responseTimeout.count()) + " ms");
    };
    auto& sock = *impl_->socket;
    try {
        std::string framed;
        std::size_t size = 0;
        for (auto p : payloads) size += p.size() + 3;
        framed.reserve(size);
        for (auto p : payloads) appendFrame(framed, p);
        std::size_t sent = 0;
        while (sent < framed.size()) {
            int n = sock.sendBytes(framed.data() + sent, static_cast<int>(framed.size() - sent));
            if (n <= 0) throw Poco::Net::ConnectionResetException("send failed");
            sent += static_cast<std::size_t>(n);
        }
        FrameDecoder decoder(options_.maxResponseBytes);
        char buf[16384];
        // Each response gets responseTimeout from the one before it.
        auto deadline = std::chrono::steady_clock::now() + options_.responseTimeout;
        FrameDecoder::Event ev;
        while (results.size() < payloads.size()) {
            if (decoder.next(ev)) {
                if (ev.isError) return failRest(ClientResult::Status::FramingError, where() + ": " + ev.detail);
                results.push_back({ClientResult::Status::Ok, std::move(ev.payload), {}});
                deadline = std::chrono::steady_clock::now() + options_.responseTimeout;
                continue;
            }
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return timedOut();
            // A system call: only when the time left is well below what is set
            // (a response in several reads), not before every read.
            if (impl_->receiveTimeout.count() < 0 || left + std::chrono::milliseconds(10) < impl_->receiveTimeout ||
                left > impl_->receiveTimeout) {
                sock.setReceiveTimeout(span(left));
                impl_->receiveTimeout = left;
            }
            int n = sock.receiveBytes(buf, sizeof buf);
            if (n <= 0) return failRest(ClientResult::Status::Closed, where() + ": connection closed before a response");
            decoder.feed(buf, static_cast<std::size_t>(n));
        }
        return results;
    } catch (const Poco::TimeoutException&) {
        return timedOut();
    } catch (const Poco::Exception& e) {
        return failRest(ClientResult::Status::Closed, where() + ": " + e.displayText());
    }
}

}  // namespace junction::mllp
