#pragma once
// Request coalescing: one origin fetch per cache key in flight on this node, whatever worker
// thread the requests arrive on. The first request for a key gets a Permit and fetches; the
// others wait, and resume the moment the fetcher finishes (no polling), with what it left for
// them: the entry it stored (its body perhaps still streaming in), or nothing — then each goes to the origin on its own, since a
// response that was not stored (private, too large, another variant) is not theirs to share.
// A Permit dropped without publishing (the fetcher's coroutine was abandoned) wakes the
// waiters with nothing, so they never hang on it.

#include "cachalot/cache/entry.hpp"
#include "cachalot/cache/transfer.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace cachalot::cache {

class Coalescer {
public:
    /// What a fetch leaves for the requests that waited on it.
    struct Shared {
        std::shared_ptr<const Entry> entry;  // the stored response; null: fetch on your own
        bool origin_failed = false;          // the origin could not answer (waiters may try stale-if-error)
        bool abandoned = false;              // the permit was dropped without publishing
        std::shared_ptr<Transfer> body{};    // set: `entry` has no body; it streams in from here
        bool origin_unreachable = false;     // origin_failed, and not even reached (stale_if_disconnected)
    };

    class Permit {
    public:
        Permit(Permit&& other) noexcept;
        Permit& operator=(Permit&&) = delete;
        ~Permit();
        /// Wakes the waiters with `shared`, and answers with it the requests that join while this
        /// Permit lives (a body still streaming is read by them). Later calls do nothing.
        void publish(Shared shared);

    private:
        friend class Coalescer;
        struct Flight;
        Permit(Coalescer* owner, std::string key, std::shared_ptr<Flight> flight);
        Coalescer* owner_;
        std::string key_;
        std::shared_ptr<Flight> flight_;
    };

    struct Joined {
        std::optional<Permit> permit;  // set: this request fetches
        std::optional<Shared> shared;  // set: another request fetched, this is what it left
        // neither: waited `wait_timeout` in vain
    };

    /// Becomes the fetcher of `key`, or waits up to `wait_timeout` for the one in flight.
    boost::asio::awaitable<Joined> join(const std::string& key, std::chrono::milliseconds wait_timeout);

    /// Becomes the fetcher of `key` if no fetch of it is in flight; never waits.
    std::optional<Permit> try_acquire(const std::string& key);

    /// Fetches in flight (for tests and metrics).
    std::size_t in_flight() const;

private:
    void publish(const std::shared_ptr<Permit::Flight>& flight, Shared shared);
    void end(const std::string& key, const std::shared_ptr<Permit::Flight>& flight);

    mutable std::mutex mutex_;
    std::unordered_map<std::string, std::shared_ptr<Permit::Flight>> flights_;
};

}  // namespace cachalot::cache
