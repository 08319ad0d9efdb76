#pragma once
// One origin fetch per cache key: on this node through the Coalescer (every worker shares it),
// and, with cache.l2.lock, across the nodes sharing a Redis L2 through a Redis lock that this
// node's fetcher takes. Acquiring the lock gives either a Write (this request fetches; its
// publish, or its end, wakes whoever waits) or a Wait that ended in a named state.
//
// Across nodes: when another node holds the key's Redis lock, this node's fetcher does not
// fetch but polls, through the caller's Probe, for the entry the other node stores in L2, until
// the lock is released or expires. Redis failing: the lock is skipped, never waited on.

#include "cachalot/cache/coalescer.hpp"
#include "cachalot/cache/entry.hpp"
#include "cachalot/store/redis_store.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>

namespace cachalot::cache {

class FetchLock {
public:
    struct Options {
        std::chrono::milliseconds wait_timeout{5'000};  // cache.coalesce_timeout
        bool across_nodes = false;                      // cache.l2.lock (needs an L2)
        std::chrono::milliseconds lock_ttl{5'000};      // cache.l2.lock_ttl
        std::chrono::milliseconds lock_poll{20};        // cache.l2.lock_poll
    };

    /// What a fetch leaves for the requests that waited on it.
    using Published = Coalescer::Shared;

    /// This request fetches. publish() wakes the waiters, and answers the requests that come
    /// while the Write lives (a body still streaming is read by them); a Write dropped without
    /// publishing wakes them with HolderGone. The Redis lock, if held, is released when the Write
    /// goes, after this node's queued L2 writes (the entry is in L2 before another node may
    /// take the lock).
    class Write {
    public:
        Write(Write&& other) noexcept;
        Write& operator=(Write&&) = delete;
        ~Write();
        void publish(Published published);

    private:
        friend class FetchLock;
        Write(Coalescer::Permit local, store::RedisStore* l2, std::string name, std::string token);
        Coalescer::Permit local_;
        store::RedisStore* l2_;  // set while the Redis lock is held
        std::string name_, token_;
    };

    /// How waiting for another request's fetch ended.
    enum class End {
        Done,          // it stored `published.entry`
        NotStored,     // it finished without storing (private, too large, …): fetch on your own
        OriginFailed,  // the origin failed it (a stale copy may answer under stale-if-error)
        HolderGone,    // it was abandoned, or the other node released its lock without storing
        GaveUp,        // it took longer than wait_timeout
    };
    struct Wait {
        End end;
        Published published;
    };

    /// What the caller finds in L2 while another node fetches: the entry, once it is there and
    /// usable; `stop` when it will not come (another variant was stored); else nothing yet.
    struct Probe {
        std::optional<Entry> entry;
        bool stop = false;
    };
    using Prober = std::function<boost::asio::awaitable<Probe>()>;

    /// `l2` may be null (then the lock is this node's only).
    FetchLock(Coalescer& local, store::RedisStore* l2, Options options);

    /// Becomes the fetcher of `key` or waits for the one in flight, here or on another node.
    /// Having just taken the Redis lock, it asks `probe` once more: another node may have stored
    /// the entry and released its lock since this node missed in L2.
    boost::asio::awaitable<std::variant<Write, Wait>> acquire(const std::string& key, const Prober& probe);

    /// Becomes the fetcher of `key` if no fetch of it is in flight on this node; never waits
    /// and takes no Redis lock (for background revalidation).
    std::optional<Write> try_acquire(const std::string& key);

    /// The name of the Redis lock for `key`.
    static std::string lock_name(const std::string& key);

private:
    boost::asio::awaitable<std::optional<Entry>> wait_for_other_node(const std::string& name, const Prober& probe);

    Coalescer& local_;
    store::RedisStore* l2_;
    Options options_;
};

}  // namespace cachalot::cache
