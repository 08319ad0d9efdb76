#pragma once
// A per-connection deadline that cancels the socket's pending operations when it passes,
// without closing the socket (beast::tcp_stream closes it), so that the session can still
// answer 408.

#include "core/net.hpp"

#include <memory>

namespace cachalot::server {

class Deadline {
public:
    explicit Deadline(tcp::socket& socket) : timer_(socket.get_executor()), state_(std::make_shared<State>()) {
        state_->socket = &socket;
    }
    ~Deadline() { state_->socket = nullptr; }
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;

    /// (Re)arms the deadline for the next operation.
    void expires_after(std::chrono::steady_clock::duration d) {
        auto generation = ++state_->generation;
        state_->expired = false;
        timer_.expires_after(d);
        timer_.async_wait([state = state_, generation](const beast::error_code& ec) {
            // A wait superseded by a later expires_after may still complete with success.
            if (ec || !state->socket || state->generation != generation) return;
            state->expired = true;
            beast::error_code ignored;
            state->socket->cancel(ignored);
        });
    }

    /// True when the last armed deadline passed (the operation then ended in operation_aborted).
    bool expired() const { return state_->expired; }

private:
    struct State {
        tcp::socket* socket = nullptr;
        std::uint64_t generation = 0;
        bool expired = false;
    };
    net::steady_timer timer_;
    std::shared_ptr<State> state_;
};

}  // namespace cachalot::server
