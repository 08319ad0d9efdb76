#include "cachalot/cache/coalescer.hpp"

#include "core/net.hpp"

#include <vector>

namespace cachalot::cache {

namespace {

// One waiting request: its timer is both its wait timeout and its wake-up call.
struct Slot {
    explicit Slot(const net::any_io_executor& ex) : timer(ex) {}
    net::steady_timer timer;
    bool done = false;
    Coalescer::Shared shared;
};

struct Waiter {
    net::any_io_executor executor;  // the waiter's worker: its timer is only touched there
    // Weak: a waiter abandoned at shutdown (its worker's io_context destroyed) is skipped,
    // never posted to.
    std::weak_ptr<Slot> slot;
};

}  // namespace

struct Coalescer::Permit::Flight {
    std::vector<Waiter> waiters;
    std::optional<Shared> published;  // set: later requests get it at once
};

Coalescer::Permit::Permit(Coalescer* owner, std::string key, std::shared_ptr<Flight> flight)
    : owner_(owner), key_(std::move(key)), flight_(std::move(flight)) {}

Coalescer::Permit::Permit(Permit&& other) noexcept
    : owner_(other.owner_), key_(std::move(other.key_)), flight_(std::move(other.flight_)) {}

Coalescer::Permit::~Permit() {
    if (!flight_) return;
    Shared abandoned;
    abandoned.abandoned = true;
    owner_->publish(flight_, abandoned);
    owner_->end(key_, flight_);
}

void Coalescer::Permit::publish(Shared shared) {
    if (flight_) owner_->publish(flight_, std::move(shared));
}

void Coalescer::end(const std::string& key, const std::shared_ptr<Permit::Flight>& flight) {
    std::lock_guard lock(mutex_);
    if (auto it = flights_.find(key); it != flights_.end() && it->second == flight) flights_.erase(it);
}

void Coalescer::publish(const std::shared_ptr<Permit::Flight>& flight, Shared shared) {
    std::vector<Waiter> waiters;
    {
        std::lock_guard lock(mutex_);
        if (flight->published) return;
        flight->published = shared;
        waiters = std::move(flight->waiters);
    }
    for (auto& w : waiters) {
        auto slot = w.slot.lock();
        if (!slot) continue;
        net::post(w.executor, [slot = std::move(slot), shared] {
            slot->shared = shared;
            slot->done = true;
            slot->timer.cancel();
        });
    }
}

net::awaitable<Coalescer::Joined> Coalescer::join(const std::string& key, std::chrono::milliseconds wait_timeout) {
    auto executor = co_await net::this_coro::executor;
    auto slot = std::make_shared<Slot>(executor);
    {
        std::lock_guard lock(mutex_);
        auto [it, inserted] = flights_.try_emplace(key);
        if (inserted) {
            it->second = std::make_shared<Permit::Flight>();
            Joined joined;
            joined.permit.emplace(Permit(this, key, it->second));
            co_return joined;
        }
        if (it->second->published) {
            Joined joined;
            joined.shared = it->second->published;
            co_return joined;
        }
        slot->timer.expires_after(wait_timeout);
        it->second->waiters.push_back({executor, slot});
    }
    co_await slot->timer.async_wait(net::as_tuple(net::use_awaitable));
    Joined joined;
    if (slot->done) joined.shared = std::move(slot->shared);
    co_return joined;
}

std::optional<Coalescer::Permit> Coalescer::try_acquire(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto [it, inserted] = flights_.try_emplace(key);
    if (!inserted) return std::nullopt;
    it->second = std::make_shared<Permit::Flight>();
    return Permit(this, key, it->second);
}

std::size_t Coalescer::in_flight() const {
    std::lock_guard lock(mutex_);
    return flights_.size();
}

}  // namespace cachalot::cache
