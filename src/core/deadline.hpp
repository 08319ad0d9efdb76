#pragma once
// A per-connection deadline that cancels the socket's pending operations when it passes,
// without closing the socket (beast::tcp_stream closes it), so that the session can still
// answer 408.
//
// Setting a deadline only stores a time point: one timer per connection wakes up when the
// earliest deadline it knows of passes and re-arms itself if the deadline moved meanwhile, so
// the data path pays no timer syscall or allocation per operation.

#include "core/net.hpp"

#include <memory>

namespace cachalot::core {

class Deadline {
public:
    using Clock = std::chrono::steady_clock;

    explicit Deadline(tcp::socket& socket) : state_(std::make_shared<State>(socket)) {}
    ~Deadline() {
        state_->socket = nullptr;
        state_->timer.cancel();
    }
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;

    /// Sets the deadline of the next operation(s).
    void expires_after(Clock::duration d) { expires_at(Clock::now() + d); }
    /// The same, from a time the caller read from the clock already.
    void expires_at(Clock::time_point t) {
        state_->expired = false;
        state_->deadline = t;
        if (!state_->waiting || state_->deadline < state_->timer.expiry()) arm(state_);
    }

    /// True when the deadline passed (the pending operation then ended in operation_aborted).
    bool expired() const { return state_->expired; }

private:
    struct State {
        explicit State(tcp::socket& s) : socket(&s), timer(s.get_executor()) {}
        tcp::socket* socket;
        net::steady_timer timer;
        Clock::time_point deadline{};
        bool waiting = false;
        bool expired = false;
    };

    static void arm(const std::shared_ptr<State>& state) {
        state->waiting = true;
        state->timer.expires_at(state->deadline);
        state->timer.async_wait([state](const beast::error_code& ec) {
            if (!state->socket) return;
            if (ec == net::error::operation_aborted) {
                // Re-armed for an earlier deadline: that wait carries on.
                return;
            }
            if (Clock::now() < state->deadline) {
                arm(state);  // the deadline moved on since this wait began
                return;
            }
            state->waiting = false;
            state->expired = true;
            beast::error_code ignored;
            state->socket->cancel(ignored);
        });
    }

    std::shared_ptr<State> state_;
};

}  // namespace cachalot::core
