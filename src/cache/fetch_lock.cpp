#include "cachalot/cache/fetch_lock.hpp"

#include "core/net.hpp"

#include <atomic>
#include <random>
#include <utility>

namespace cachalot::cache {
namespace {

// Unique per acquisition across nodes: the lock is released only by the token that took it.
std::string new_token() {
    static const std::string node = [] {
        std::random_device rd;
        return std::to_string(rd()) + std::to_string(rd());
    }();
    static std::atomic<std::uint64_t> counter{0};
    return node + "." + std::to_string(++counter);
}

}  // namespace

FetchLock::Write::Write(Coalescer::Permit local, store::RedisStore* l2, std::string name, std::string token)
    : local_(std::move(local)), l2_(l2), name_(std::move(name)), token_(std::move(token)) {}

FetchLock::Write::Write(Write&& other) noexcept
    : local_(std::move(other.local_)),
      l2_(std::exchange(other.l2_, nullptr)),
      name_(std::move(other.name_)),
      token_(std::move(other.token_)) {}

FetchLock::Write::~Write() {
    if (l2_) l2_->unlock_later(name_, token_);
}

void FetchLock::Write::publish(Published published) { local_.publish(std::move(published)); }

FetchLock::FetchLock(Coalescer& local, store::RedisStore* l2, Options options)
    : local_(local), l2_(l2), options_(options) {}

// The key, then 0x1f: the lock shares its key's group (its Redis Cluster slot).
std::string FetchLock::lock_name(const std::string& key) { return key + "\x1f" "lock"; }

net::awaitable<std::variant<FetchLock::Write, FetchLock::Wait>> FetchLock::acquire(const std::string& key,
                                                                                  const Prober& probe) {
    auto joined = co_await local_.join(key, options_.wait_timeout);
    if (!joined.permit) {
        if (!joined.shared) co_return Wait{End::GaveUp, {}};
        const auto& shared = *joined.shared;
        const auto end = shared.entry           ? End::Done
                         : shared.origin_failed ? End::OriginFailed
                         : shared.abandoned     ? End::HolderGone
                                                : End::NotStored;
        co_return Wait{end, shared};
    }
    if (!options_.across_nodes || !l2_) co_return Write(std::move(*joined.permit), nullptr, {}, {});

    auto name = lock_name(key);
    auto token = new_token();
    const auto held = co_await l2_->try_lock(name, token, options_.lock_ttl);
    std::optional<Entry> entry;
    if (held == false) {
        entry = co_await wait_for_other_node(name, probe);
    } else if (held == true) {
        // Another node may have stored the entry and released its lock between this node's L2
        // miss and this lock: look once more before going to the origin.
        auto found = co_await probe();
        if (found.entry) {
            l2_->unlock_later(name, token);
            entry = std::move(found.entry);
        }
    }
    if (entry) {
        // The other node's entry answers this node's waiters too.
        Published published{std::make_shared<const Entry>(std::move(*entry)), false};
        joined.permit->publish(published);
        co_return Wait{End::Done, std::move(published)};
    }
    // Not coming from the other node (or Redis failing): fetch, holding the lock if it was taken.
    co_return Write(std::move(*joined.permit), held == true ? l2_ : nullptr, std::move(name), std::move(token));
}

net::awaitable<std::optional<Entry>> FetchLock::wait_for_other_node(const std::string& name, const Prober& probe) {
    const auto deadline = std::chrono::steady_clock::now() + options_.lock_ttl;
    net::steady_timer pause(co_await net::this_coro::executor);
    while (std::chrono::steady_clock::now() < deadline) {
        pause.expires_after(options_.lock_poll);
        co_await pause.async_wait(net::as_tuple(net::use_awaitable));
        auto found = co_await probe();
        if (found.entry) co_return std::move(found.entry);
        if (found.stop) co_return std::nullopt;
        // The holder released the lock (or lost it) without storing: stop waiting.
        if (co_await l2_->is_locked(name) != true) co_return std::nullopt;
    }
    co_return std::nullopt;
}

std::optional<FetchLock::Write> FetchLock::try_acquire(const std::string& key) {
    auto permit = local_.try_acquire(key);
    if (!permit) return std::nullopt;
    return Write(std::move(*permit), nullptr, {}, {});
}

}  // namespace cachalot::cache
