#include "cachalot/store/redis_store.hpp"

#include "store/redis/connection.hpp"
#include "store/redis/envelope.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>
#include <deque>

namespace cachalot::store {
namespace {

constexpr std::string_view kUnlockScript =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

// KEYS: the purge hash, its version. ARGV: slot, hard, soft, previous soft (Unix ms). Each field
// only ever grows (soft keeps the latest two distinct times), as in store::PurgeTable::merge.
constexpr std::string_view kMergePurgeScript = R"lua(
local h, s, p = 0, 0, 0
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local a, b, c = string.match(cur, '^(%d+) (%d+) (%d+)$')
  h, s, p = tonumber(a) or 0, tonumber(b) or 0, tonumber(c) or 0
end
local nh = tonumber(ARGV[2])
if nh > h then h = nh end
local t = {s, p, tonumber(ARGV[3]), tonumber(ARGV[4])}
table.sort(t, function(x, y) return x > y end)
local prev = 0
for i = 2, 4 do if t[i] < t[1] then prev = t[i] break end end
local v = string.format('%d %d %d', h, t[1], prev)
if v ~= cur then
  redis.call('HSET', KEYS[1], ARGV[1], v)
  redis.call('INCR', KEYS[2])
end
return 1
)lua";

// KEYS: the purge hash, its version. ARGV: the version the caller has. The version, then (unless
// it is the caller's) one "slot hard soft prev" line per slot.
constexpr std::string_view kReadPurgesScript = R"lua(
local v = redis.call('GET', KEYS[2]) or '0'
if v == ARGV[1] then return v end
local all = redis.call('HGETALL', KEYS[1])
local out = {v}
for i = 1, #all, 2 do out[#out + 1] = all[i] .. ' ' .. all[i + 1] end
return table.concat(out, '\n')
)lua";

std::string decimal(std::int64_t v) { return std::to_string(v); }

}  // namespace

struct RedisStore::Impl : std::enable_shared_from_this<Impl> {
    using SteadyClock = std::chrono::steady_clock;

    net::any_io_executor ex;
    RedisOptions opt;
    std::vector<std::unique_ptr<redis::Connection>> pool;
    std::size_t next = 0;
    RedisCounters counters;

    // Breaker: closed → (failure_threshold consecutive failures) → open for breaker_backoff →
    // one probe → closed on success, open again on failure.
    unsigned consecutive_failures = 0;
    SteadyClock::time_point open_until{};
    bool probing = false;

    enum class WriteKind { Set, Del, Unlock, Publish, MergePurge };
    struct Write {
        WriteKind kind;
        std::string key;
        std::string value;  // Set: the envelope; Unlock: the token; MergePurge: the slot
        WallMillis expiry = 0;
        PurgeMarks marks{};  // MergePurge
    };
    std::deque<Write> queue;
    bool writer_running = false;

    // The subscriber: a connection of its own (one in subscriber mode takes no other command).
    std::unique_ptr<redis::Connection> subscriber;
    redis::Connection::MessageHandler on_message;
    bool closed = false;

    Impl(net::any_io_executor e, RedisOptions o) : ex(std::move(e)), opt(std::move(o)) {
        auto ep = redis::parse_endpoint(opt.address);
        ep.username = opt.username;
        ep.password = opt.password;
        ep.db = opt.db;
        for (unsigned i = 0; i < std::max(1u, opt.pool_size); ++i)
            pool.push_back(std::make_unique<redis::Connection>(ex, ep, opt.connect_timeout));
        subscriber = std::make_unique<redis::Connection>(ex, ep, opt.connect_timeout);
    }

    // Subscribes, and again whenever the subscriber connection has gone away.
    static net::awaitable<void> keep_subscribed(std::shared_ptr<Impl> self, std::vector<std::string> channels) {
        net::steady_timer pause(self->ex);
        while (!self->closed) {
            if (!self->subscriber->open()) self->subscriber->subscribe(channels, &self->on_message);
            pause.expires_after(std::chrono::seconds(1));
            co_await pause.async_wait(net::as_tuple(net::use_awaitable));
        }
    }

    std::string redis_key(std::string_view key) const { return opt.key_prefix + std::string(key); }

    bool allow() {
        if (!counters.breaker_open) return true;
        if (probing || SteadyClock::now() < open_until) return false;
        probing = true;  // half-open: this request finds out whether Redis is back
        return true;
    }

    void record(bool ok) {
        if (ok) {
            consecutive_failures = 0;
            if (counters.breaker_open) {
                counters.breaker_open = false;
                probing = false;
                spdlog::info("redis L2 {} answers again: breaker closed", opt.address);
            }
            return;
        }
        ++consecutive_failures;
        if (counters.breaker_open) {
            if (probing) {
                probing = false;
                open_until = SteadyClock::now() + opt.breaker_backoff;
            }
        } else if (consecutive_failures >= opt.failure_threshold) {
            counters.breaker_open = true;
            ++counters.breaker_opened;
            open_until = SteadyClock::now() + opt.breaker_backoff;
            spdlog::warn("redis L2 {} failing: breaker open, L2 skipped for {} ms", opt.address,
                         opt.breaker_backoff.count());
        }
    }

    redis::Connection& connection() { return *pool[next++ % pool.size()]; }

    // Accounts for one reply: latency, failure counters, breaker, and a connection that timed out
    // is dropped (its stream can no longer be trusted to be in step).
    void account(redis::Connection& conn, const redis::Reply& r, SteadyClock::time_point start) {
        using Kind = redis::Reply::Kind;
        if (r.kind == Kind::TimedOut) {
            ++counters.timeouts;
            conn.reset();
        } else if (r.kind == Kind::Failed || r.kind == Kind::Error) {
            ++counters.errors;
            if (r.kind == Kind::Error) spdlog::debug("redis: error reply: {}", r.str);
        } else if (opt.observe_latency) {
            opt.observe_latency(std::chrono::duration<double>(SteadyClock::now() - start).count());
        }
        record(r.ok());
    }

    net::awaitable<redis::Reply> exec(std::vector<std::string_view> args) {
        auto self = shared_from_this();
        auto& conn = connection();
        const auto start = SteadyClock::now();
        auto reply = co_await redis::wait(conn.send(args, opt.command_timeout));
        account(conn, reply, start);
        co_return reply;
    }

    bool enqueue(Write w) {
        if (counters.breaker_open || queue.size() >= opt.write_queue) {
            ++counters.write_drops;
            return false;
        }
        queue.push_back(std::move(w));
        ++counters.queue_depth;
        if (!writer_running) {
            writer_running = true;
            net::co_spawn(ex, drain(shared_from_this()), net::detached);
        }
        return true;
    }

    // Sends queued writes in pipelined batches on one connection, in order.
    static net::awaitable<void> drain(std::shared_ptr<Impl> self) {
        constexpr std::size_t kBatch = 64;
        while (!self->queue.empty()) {
            if (self->counters.breaker_open) {
                self->counters.write_drops += self->queue.size();
                self->counters.queue_depth -= static_cast<std::int64_t>(self->queue.size());
                self->queue.clear();
                break;
            }
            auto& conn = self->connection();
            const auto start = SteadyClock::now();
            std::vector<std::pair<WriteKind, std::shared_ptr<redis::Pending>>> sent;
            const auto now = self->opt.clock();
            while (!self->queue.empty() && sent.size() < kBatch) {
                auto w = std::move(self->queue.front());
                self->queue.pop_front();
                --self->counters.queue_depth;
                const auto key = self->redis_key(w.key);
                switch (w.kind) {
                    case WriteKind::Set: {
                        const auto ttl = w.expiry - now;
                        if (ttl <= 0) continue;
                        const auto px = std::to_string(ttl);
                        sent.emplace_back(w.kind, conn.send({"SET", key, w.value, "PX", px}, self->opt.command_timeout));
                        break;
                    }
                    case WriteKind::Del:
                        sent.emplace_back(w.kind, conn.send({"DEL", key}, self->opt.command_timeout));
                        break;
                    case WriteKind::Publish:
                        sent.emplace_back(w.kind, conn.send({"PUBLISH", key, w.value}, self->opt.command_timeout));
                        break;
                    case WriteKind::Unlock:
                        sent.emplace_back(w.kind, conn.send({"EVAL", kUnlockScript, "1", key, w.value},
                                                            self->opt.command_timeout));
                        break;
                    case WriteKind::MergePurge: {
                        const auto version = self->redis_key("purges:version");
                        const auto hard = decimal(w.marks.hard), soft = decimal(w.marks.soft),
                                   prev = decimal(w.marks.prev_soft);
                        sent.emplace_back(w.kind, conn.send({"EVAL", kMergePurgeScript, "2", key, version, w.value,
                                                             hard, soft, prev},
                                                            self->opt.command_timeout));
                        break;
                    }
                }
            }
            for (auto& [kind, pending] : sent) {
                auto reply = co_await redis::wait(pending);
                self->account(conn, reply, start);
                if (kind == WriteKind::Set && reply.ok()) ++self->counters.puts;
            }
        }
        self->writer_running = false;
    }

    void close() {
        closed = true;
        for (auto& c : pool) c->reset();
        subscriber->reset();
    }
};

RedisStore::RedisStore(net::any_io_executor executor, RedisOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {}

RedisStore::~RedisStore() { impl_->close(); }

net::awaitable<std::optional<RedisStore::Found>> RedisStore::find_with_expiry(std::string_view key) {
    auto self = impl_;
    auto& c = self->counters;
    if (!self->allow()) {
        ++c.misses;
        co_return std::nullopt;
    }
    const auto rkey = self->redis_key(key);
    std::vector<std::string_view> args{"GET", rkey};
    auto reply = co_await self->exec(std::move(args));
    if (reply.kind != redis::Reply::Kind::String) {
        ++c.misses;
        co_return std::nullopt;  // nil, or Redis failing: a miss either way
    }
    const auto opened = redis::envelope_open(reply.str);
    if (!opened) {
        ++c.misses;
        discard(key);
        co_return std::nullopt;
    }
    const auto expiry = opened->expiry;
    if (expiry <= self->opt.clock()) {
        ++c.misses;
        ++c.expirations;
        self->enqueue({Impl::WriteKind::Del, std::string(key), {}, 0});
        co_return std::nullopt;
    }
    ++c.hits;
    reply.str.erase(0, reply.str.size() - opened->value.size());  // the envelope's header
    co_return Found{std::move(reply.str), expiry};
}

net::awaitable<std::optional<std::string>> RedisStore::find(std::string_view key) {
    auto found = co_await find_with_expiry(key);
    if (!found) co_return std::nullopt;
    co_return std::move(found->value);
}

net::awaitable<bool> RedisStore::put(std::string_view key, std::string_view value, WallMillis expiry) {
    auto self = impl_;
    if (value.size() > self->opt.max_object_size) {
        ++self->counters.refused_too_large;
        co_return false;
    }
    const auto ttl = expiry - self->opt.clock();
    if (ttl <= 0 || !self->allow()) co_return false;
    const auto rkey = self->redis_key(key);
    const auto bytes = redis::envelope_wrap(value, expiry);
    const auto px = std::to_string(ttl);
    std::vector<std::string_view> args{"SET", rkey, bytes, "PX", px};
    auto reply = co_await self->exec(std::move(args));
    if (!reply.ok()) co_return false;
    ++self->counters.puts;
    co_return true;
}

bool RedisStore::put_later(std::string_view key, std::string_view value, WallMillis expiry) {
    if (value.size() > impl_->opt.max_object_size) {
        ++impl_->counters.refused_too_large;
        return false;
    }
    if (expiry <= impl_->opt.clock()) return false;
    return impl_->enqueue({Impl::WriteKind::Set, std::string(key), redis::envelope_wrap(value, expiry), expiry});
}

net::awaitable<bool> RedisStore::erase(std::string_view key) {
    auto self = impl_;
    if (!self->allow()) co_return false;
    const auto rkey = self->redis_key(key);
    std::vector<std::string_view> args{"DEL", rkey};
    auto reply = co_await self->exec(std::move(args));
    co_return reply.kind == redis::Reply::Kind::Integer && reply.integer > 0;
}

void RedisStore::erase_later(std::string_view key) { impl_->enqueue({Impl::WriteKind::Del, std::string(key), {}, 0}); }

void RedisStore::discard(std::string_view key) {
    ++impl_->counters.corrupt_dropped;
    spdlog::warn("redis L2: dropped an invalid value under '{}'", std::string(key.substr(0, 200)));
    erase_later(key);
}

net::awaitable<std::optional<bool>> RedisStore::try_lock(std::string_view name, std::string_view token,
                                                         std::chrono::milliseconds ttl) {
    auto self = impl_;
    if (!self->allow()) co_return std::nullopt;
    const auto rkey = self->redis_key(name);
    const auto px = std::to_string(ttl.count());
    std::vector<std::string_view> args{"SET", rkey, token, "NX", "PX", px};
    auto reply = co_await self->exec(std::move(args));
    if (reply.kind == redis::Reply::Kind::Status) co_return true;
    if (reply.kind == redis::Reply::Kind::Nil) co_return false;
    co_return std::nullopt;
}

net::awaitable<std::optional<bool>> RedisStore::is_locked(std::string_view name) {
    auto self = impl_;
    if (!self->allow()) co_return std::nullopt;
    const auto rkey = self->redis_key(name);
    std::vector<std::string_view> args{"EXISTS", rkey};
    auto reply = co_await self->exec(std::move(args));
    if (reply.kind != redis::Reply::Kind::Integer) co_return std::nullopt;
    co_return reply.integer > 0;
}

void RedisStore::unlock_later(std::string_view name, std::string_view token) {
    impl_->enqueue({Impl::WriteKind::Unlock, std::string(name), std::string(token), 0});
}

void RedisStore::publish_later(std::string_view channel, std::string_view message) {
    impl_->enqueue({Impl::WriteKind::Publish, std::string(channel), std::string(message), 0});
}

void RedisStore::subscribe(std::vector<std::string> channels,
                           std::function<void(std::string_view channel, std::string_view payload)> on_message) {
    const auto prefix = impl_->opt.key_prefix;
    impl_->on_message = [prefix, handler = std::move(on_message)](std::string_view channel, std::string_view payload) {
        if (channel.substr(0, prefix.size()) == prefix) handler(channel.substr(prefix.size()), payload);
    };
    for (auto& c : channels) c = prefix + c;
    net::co_spawn(impl_->ex, Impl::keep_subscribed(impl_, std::move(channels)), net::detached);
}

void RedisStore::merge_purge_later(std::size_t slot, const PurgeMarks& marks) {
    Impl::Write w{Impl::WriteKind::MergePurge, "purges", std::to_string(slot), 0, marks};
    impl_->enqueue(std::move(w));
}

net::awaitable<std::optional<RedisStore::Purges>> RedisStore::read_purges(std::string known_version) {
    auto self = impl_;
    if (!self->allow()) co_return std::nullopt;
    const auto hash = self->redis_key("purges"), version = self->redis_key("purges:version");
    std::vector<std::string_view> args{"EVAL", kReadPurgesScript, "2", hash, version, known_version};
    auto reply = co_await self->exec(std::move(args));
    if (reply.kind != redis::Reply::Kind::String) co_return std::nullopt;
    // Untrusted like every byte from Redis: a line that does not parse is skipped.
    Purges out;
    std::string_view text = reply.str;
    auto nl = text.find('\n');
    out.version = std::string(text.substr(0, nl));
    out.complete = out.version != known_version;
    while (nl != std::string_view::npos) {
        text.remove_prefix(nl + 1);
        nl = text.find('\n');
        const std::string line(text.substr(0, nl));
        unsigned long long slot = 0;
        long long hard = 0, soft = 0, prev = 0;
        char extra = 0;
        if (std::sscanf(line.c_str(), "%llu %lld %lld %lld%c", &slot, &hard, &soft, &prev, &extra) != 4) continue;
        if (slot >= PurgeTable::kSlots || hard < 0 || soft < 0 || prev < 0 || prev > soft) continue;
        out.slots.emplace_back(static_cast<std::size_t>(slot), PurgeMarks{hard, soft, prev});
    }
    co_return out;
}

net::any_io_executor RedisStore::executor() const { return impl_->ex; }

StoreStats RedisStore::stats() const {
    const auto& c = impl_->counters;
    StoreStats s;
    s.hits = c.hits;
    s.misses = c.misses;
    s.puts = c.puts;
    s.expirations = c.expirations;
    s.refused_too_large = c.refused_too_large;
    s.corrupt_dropped = c.corrupt_dropped;
    return s;
}

const RedisCounters& RedisStore::counters() const { return impl_->counters; }

}  // namespace cachalot::store
