#pragma once
// One hiredis async connection driven by an Asio io_context. hiredis ships adapters for
// libevent, libuv and others, none for Asio: this is that adapter. hiredis owns the socket and
// asks for read/write interest through its ev hooks; we wait for readiness on the descriptor
// (without owning it) and call back into hiredis.
//
// Replies come back through Pending objects: send() queues a command (pipelined behind the
// ones already in flight) and returns its Pending; wait() resumes when the reply arrives or the
// deadline passes, whichever comes first. A timer doubles as the wake-up, so nothing polls.

#include "core/net.hpp"

#include <chrono>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct redisAsyncContext;

namespace cachalot::store::redis {

struct Reply {
    enum class Kind { Nil, String, Integer, Status, Error, Array, Failed, TimedOut };
    Kind kind = Kind::Failed;
    std::string str;  // String, Status, Error
    long long integer = 0;
    std::vector<Reply> elements;  // Array
    bool ok() const { return kind != Kind::Failed && kind != Kind::TimedOut && kind != Kind::Error; }
    /// An error reply that starts with `code` ("MOVED", "ASK", "TRYAGAIN"…).
    bool error_is(std::string_view code) const {
        return kind == Kind::Error && str.size() >= code.size() && str.compare(0, code.size(), code) == 0 &&
               (str.size() == code.size() || str[code.size()] == ' ');
    }
};

/// A command in flight.
struct Pending {
    explicit Pending(const net::any_io_executor& ex) : timer(ex) {}
    net::steady_timer timer;
    bool done = false;
    Reply reply;
};

/// Waits for a command's reply until its deadline; a late reply is a TimedOut.
net::awaitable<Reply> wait(std::shared_ptr<Pending> pending);

struct Endpoint {
    std::string host;       // TCP
    int port = 0;
    std::string unix_path;  // or a Unix socket
    std::string username, password;
    unsigned db = 0;
    /// "host:port" or "unix:/path", as parsed.
    std::string name() const;
};

/// Parses "host:port", "[v6]:port" or "unix:/path".
Endpoint parse_endpoint(const std::string& address);

class Connection {
public:
    /// With `on_not_primary`, every new connection asks ROLE first (a demoted primary may claim to
    /// be one for seconds): if the server is not a primary, the connection is dropped, what was
    /// queued fails, and `on_not_primary` is called from the executor.
    Connection(net::any_io_executor executor, Endpoint endpoint, std::chrono::milliseconds connect_timeout,
               std::function<void()> on_not_primary = {});
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// Queues a command, connecting first if needed. The reply is due within `timeout`.
    std::shared_ptr<Pending> send(const std::vector<std::string_view>& args, std::chrono::milliseconds timeout);

    /// Drops the connection (after a timeout: the stream is out of step or the server is stuck).
    /// Commands in flight fail; the next send reconnects.
    void reset();

    /// Whether a hiredis context exists (connected or connecting).
    bool open() const;

    /// A subscriber's handler: the channel a message came on, and its payload.
    using MessageHandler = std::function<void(std::string_view channel, std::string_view payload)>;
    /// Puts the connection in subscriber mode on `channels` (no other command may follow):
    /// `on_message` gets each message, for as long as the connection lasts. It must outlive the
    /// connection. False when the command could not even be queued.
    bool subscribe(const std::vector<std::string>& channels, MessageHandler* on_message);

private:
    struct State;
    std::shared_ptr<State> state_;
};

}  // namespace cachalot::store::redis
