#pragma once
// The asynchronous Redis store behind synchronous calls, for tests.

#include "cachalot/store/redis_store.hpp"

#include <boost/asio.hpp>

#include <functional>
#include <optional>

namespace cachalot::store {

// The asynchronous Redis store behind the synchronous verbs the suite calls: each call runs the
// store's io_context until its coroutine has finished.
class SyncRedisStore {
public:
    SyncRedisStore(const std::string& address, WallClock clock, std::size_t max_object,
                   std::function<std::uint64_t()> dbsize, std::function<void(RedisOptions&)> tune = {})
        : store_(ioc_.get_executor(), options(address, std::move(clock), max_object, tune)), dbsize_(std::move(dbsize)) {}

    RedisStore& async() { return store_; }
    template <class T>
    T run(boost::asio::awaitable<T> op) {
        std::optional<T> out;
        boost::asio::co_spawn(
            ioc_, [&]() -> boost::asio::awaitable<void> { out = co_await std::move(op); }, boost::asio::detached);
        while (!out) {
            if (ioc_.stopped()) ioc_.restart();  // it stops whenever it runs out of work
            ioc_.run_one();
        }
        return std::move(*out);
    }

    std::optional<std::string> find(Hash h, std::string_view key) { return run(store_.find(key)); }
    bool put(Hash h, std::string_view key, std::string_view value, WallMillis expiry) {
        return run(store_.put(key, value, expiry));
    }
    bool erase(Hash h, std::string_view key) { return run(store_.erase(key)); }
    /// The store's counters, and the items Redis holds once every queued write has landed.
    StoreStats stats() {
        run([](RedisStore& s) -> boost::asio::awaitable<bool> {
            co_await s.flush();
            co_return true;
        }(store_));
        auto s = store_.stats();
        s.items = dbsize_();
        return s;
    }

private:
    static RedisOptions options(const std::string& address, WallClock clock, std::size_t max_object,
                                const std::function<void(RedisOptions&)>& tune) {
        RedisOptions o;
        o.address = address;
        o.pool_size = 1;
        o.command_timeout = std::chrono::milliseconds(2000);  // sanitizers are slow; timeouts are tested elsewhere
        o.clock = std::move(clock);
        o.max_object_size = max_object;
        if (tune) tune(o);
        return o;
    }
    boost::asio::io_context ioc_;
    RedisStore store_;
    std::function<std::uint64_t()> dbsize_;
};

}  // namespace cachalot::store
