#include "cachalot/store/redis_store.hpp"

#include "store/redis/connection.hpp"
#include "store/redis/topology.hpp"
#include "store/redis/envelope.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <map>

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

// The purge table: a hash and its change counter, one group (one slot: the scripts touch both).
constexpr std::string_view kPurges = "purges";
constexpr std::string_view kPurgesVersion = "purges\x1fversion";

// CRC16/XMODEM, Redis Cluster's key hash (cluster spec, "Keys distribution model").
std::uint16_t crc16(std::string_view bytes) {
    std::uint16_t crc = 0;
    for (unsigned char b : bytes) {
        crc ^= static_cast<std::uint16_t>(b << 8);
        for (int i = 0; i < 8; ++i) crc = static_cast<std::uint16_t>(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

}  // namespace

std::string redis_key(std::string_view key_prefix, std::string_view key) {
    const auto group = key.substr(0, key.find('\x1f'));
    char tag[19];
    std::snprintf(tag, sizeof tag, "{%016llx}", static_cast<unsigned long long>(hash_key(group)));
    std::string out;
    out.reserve(key_prefix.size() + 18 + key.size());
    out.append(key_prefix).append(tag, 18).append(key);
    return out;
}

unsigned hash_slot(std::string_view rkey) {
    // The first {…} with something inside names the part hashed.
    if (const auto open = rkey.find('{'); open != std::string_view::npos) {
        const auto close = rkey.find('}', open + 1);
        if (close != std::string_view::npos && close > open + 1) rkey = rkey.substr(open + 1, close - open - 1);
    }
    return crc16(rkey) % kHashSlots;
}

RedisNodes::Known& RedisNodes::known(const std::string& name) {
    auto& k = nodes_[name];
    if (!k) k = std::make_unique<Known>();
    return *k;
}

RedisNodeCounters& RedisNodes::node(const std::string& name) {
    std::lock_guard lock(mutex_);
    return known(name).counters;
}

void RedisNodes::cluster_roles(const std::vector<std::string>& primaries, const std::vector<std::string>& replicas) {
    std::lock_guard lock(mutex_);
    for (const auto& name : primaries) {
        auto& k = known(name);
        if (k.role == Known::Role::Replica) {
            ++k.counters.failovers;
            spdlog::warn("redis cluster: replica {} was promoted", name);
        }
        k.role = Known::Role::Primary;
    }
    for (const auto& name : replicas) known(name).role = Known::Role::Replica;
}

void RedisNodes::sentinel_primary(const std::string& name) {
    std::lock_guard lock(mutex_);
    if (name == sentinel_primary_) return;
    if (!sentinel_primary_.empty()) ++known(name).counters.failovers;
    sentinel_primary_ = name;
}

std::vector<std::pair<std::string, const RedisNodeCounters*>> RedisNodes::list() const {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<std::string, const RedisNodeCounters*>> out;
    for (const auto& [name, k] : nodes_) out.emplace_back(name, &k->counters);
    return out;
}

struct RedisStore::Impl : std::enable_shared_from_this<Impl> {
    using SteadyClock = std::chrono::steady_clock;

    net::any_io_executor ex;
    RedisOptions opt;
    RedisCounters counters;
    std::shared_ptr<redis::Topology> topology;

    enum class WriteKind { Set, Del, Unlock, Publish, MergePurge };
    struct Write {
        WriteKind kind = WriteKind::Del;
        std::string key;    // the Redis key (Publish: the channel)
        std::string value;  // Set: the envelope; Unlock: the token; Publish: the message; MergePurge: the slot
        WallMillis expiry = 0;
        PurgeMarks marks{};  // MergePurge
        std::string route;  // Publish: the Redis key whose node carries it
    };
    std::deque<Write> queue;
    bool writer_running = false;
    std::vector<std::shared_ptr<redis::Pending>> flushing;  // flush() callers, woken when the queue is done

    // The subscriber: a connection of its own (one in subscriber mode takes no other command).
    std::unique_ptr<redis::Connection> subscriber;
    redis::Connection::MessageHandler on_message;
    bool closed = false;

    Impl(net::any_io_executor e, RedisOptions o)
        : ex(std::move(e)), opt(std::move(o)), topology(std::make_shared<redis::Topology>(ex, opt, counters)) {
        topology->start();
    }

    // Subscribes, and again (on a node that answers) whenever the subscriber has gone away.
    static net::awaitable<void> keep_subscribed(std::shared_ptr<Impl> self, std::vector<std::string> channels) {
        net::steady_timer pause(self->ex);
        while (!self->closed) {
            if (!self->subscriber || !self->subscriber->open()) {
                if (auto ep = self->topology->subscription_endpoint()) {
                    ep->username = self->opt.username;
                    ep->password = self->opt.password;
                    self->subscriber = std::make_unique<redis::Connection>(self->ex, *ep, self->opt.connect_timeout);
                    self->subscriber->subscribe(channels, &self->on_message);
                }
            }
            pause.expires_after(std::chrono::seconds(1));
            co_await pause.async_wait(net::as_tuple(net::use_awaitable));
        }
    }

    std::string rkey(std::string_view key) const { return redis_key(opt.key_prefix, key); }

    // One command about the Redis key `key` (`args` names it). Failed when no node may take it.
    net::awaitable<redis::Reply> exec(std::string_view key, const std::vector<std::string_view>& args) {
        auto self = shared_from_this();
        if (!topology->known()) co_await topology->ready();
        auto* node = topology->route(key);
        if (!node) co_return redis::Reply{};
        co_return co_await topology->exec(*node, args);
    }

    bool enqueue(Write w) {
        if (queue.size() >= opt.write_queue || !topology->writable(w.kind == WriteKind::Publish ? w.route : w.key)) {
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

    // Sends queued writes in pipelined batches: each on a connection to its key's node (writes to
    // one node leave in order on one connection), then waits for the answers.
    static net::awaitable<void> drain(std::shared_ptr<Impl> self) {
        constexpr std::size_t kBatch = 64;
        struct Sent {
            Write write{};
            std::vector<std::string> strings;  // what args point into
            std::vector<std::string_view> args;
            redis::Node* node = nullptr;
            redis::Connection* conn = nullptr;
            std::shared_ptr<redis::Pending> pending;
        };
        std::map<redis::Node*, redis::Connection*> batch_conn;
        if (!self->topology->known()) co_await self->topology->ready();
        while (!self->queue.empty()) {
            const auto start = SteadyClock::now();
            std::vector<Sent> sent;
            sent.reserve(kBatch);
            batch_conn.clear();
            const auto now = self->opt.clock();
            while (!self->queue.empty() && sent.size() < kBatch) {
                Sent s;
                s.write = std::move(self->queue.front());
                self->queue.pop_front();
                --self->counters.queue_depth;
                auto& w = s.write;
                switch (w.kind) {
                    case WriteKind::Set: {
                        const auto ttl = w.expiry - now;
                        if (ttl <= 0) continue;
                        s.strings = {std::to_string(ttl)};
                        s.args = {"SET", w.key, w.value, "PX", s.strings[0]};
                        break;
                    }
                    case WriteKind::Del: s.args = {"DEL", w.key}; break;
                    case WriteKind::Publish: s.args = {"PUBLISH", w.key, w.value}; break;
                    case WriteKind::Unlock: s.args = {"EVAL", kUnlockScript, "1", w.key, w.value}; break;
                    case WriteKind::MergePurge:
                        s.strings = {self->rkey(kPurgesVersion), decimal(w.marks.hard), decimal(w.marks.soft),
                                     decimal(w.marks.prev_soft)};
                        s.args = {"EVAL", kMergePurgeScript, "2", w.key, s.strings[0], w.value,
                                  s.strings[1], s.strings[2], s.strings[3]};
                        break;
                }
                s.node = self->topology->route(w.kind == WriteKind::Publish ? w.route : w.key);
                if (!s.node) {
                    ++self->counters.write_drops;  // its node is failing (breaker open) or unknown
                    continue;
                }
                auto& conn = batch_conn[s.node];
                if (!conn) conn = &s.node->connection();
                s.conn = conn;
                s.pending = conn->send(s.args, self->opt.command_timeout);
                sent.push_back(std::move(s));
            }
            for (auto& s : sent) {
                auto reply = co_await redis::wait(s.pending);
                reply = co_await self->topology->settle(*s.node, *s.conn, std::move(reply), start, s.args);
                if (s.write.kind == WriteKind::Set && reply.ok()) ++self->counters.puts;
            }
        }
        self->writer_running = false;
        for (auto& f : std::exchange(self->flushing, {})) {
            f->done = true;
            f->timer.cancel();
        }
    }

    void close() {
        closed = true;
        topology->close();
        if (subscriber) subscriber->reset();
    }
};

RedisStore::RedisStore(net::any_io_executor executor, RedisOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {}

RedisStore::~RedisStore() { impl_->close(); }

net::awaitable<std::optional<RedisStore::Found>> RedisStore::find_with_expiry(std::string_view key) {
    auto self = impl_;
    auto& c = self->counters;
    const auto rkey = self->rkey(key);
    std::vector<std::string_view> args{"GET", rkey};
    auto reply = co_await self->exec(rkey, args);
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
        self->enqueue({Impl::WriteKind::Del, rkey, {}, 0, {}, {}});
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
    if (ttl <= 0) co_return false;
    const auto rkey = self->rkey(key);
    const auto bytes = redis::envelope_wrap(value, expiry);
    const auto px = std::to_string(ttl);
    std::vector<std::string_view> args{"SET", rkey, bytes, "PX", px};
    auto reply = co_await self->exec(rkey, args);
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
    return impl_->enqueue({Impl::WriteKind::Set, impl_->rkey(key), redis::envelope_wrap(value, expiry), expiry, {}, {}});
}

net::awaitable<bool> RedisStore::erase(std::string_view key) {
    auto self = impl_;
    const auto rkey = self->rkey(key);
    std::vector<std::string_view> args{"DEL", rkey};
    auto reply = co_await self->exec(rkey, args);
    co_return reply.kind == redis::Reply::Kind::Integer && reply.integer > 0;
}

void RedisStore::erase_later(std::string_view key) { impl_->enqueue({Impl::WriteKind::Del, impl_->rkey(key), {}, 0, {}, {}}); }

void RedisStore::discard(std::string_view key) {
    ++impl_->counters.corrupt_dropped;
    spdlog::warn("redis L2: dropped an invalid value under '{}'", std::string(key.substr(0, 200)));
    erase_later(key);
}

net::awaitable<std::optional<bool>> RedisStore::try_lock(std::string_view name, std::string_view token,
                                                         std::chrono::milliseconds ttl) {
    auto self = impl_;
    const auto rkey = self->rkey(name);
    const auto px = std::to_string(ttl.count());
    std::vector<std::string_view> args{"SET", rkey, token, "NX", "PX", px};
    auto reply = co_await self->exec(rkey, args);
    if (reply.kind == redis::Reply::Kind::Status) co_return true;
    if (reply.kind == redis::Reply::Kind::Nil) co_return false;
    co_return std::nullopt;
}

net::awaitable<std::optional<bool>> RedisStore::is_locked(std::string_view name) {
    auto self = impl_;
    const auto rkey = self->rkey(name);
    std::vector<std::string_view> args{"EXISTS", rkey};
    auto reply = co_await self->exec(rkey, args);
    if (reply.kind != redis::Reply::Kind::Integer) co_return std::nullopt;
    co_return reply.integer > 0;
}

void RedisStore::unlock_later(std::string_view name, std::string_view token) {
    impl_->enqueue({Impl::WriteKind::Unlock, impl_->rkey(name), std::string(token), 0, {}, {}});
}

void RedisStore::publish_later(std::string_view channel, std::string_view message, std::string_view about) {
    impl_->enqueue({Impl::WriteKind::Publish, impl_->opt.key_prefix + std::string(channel), std::string(message), 0, {},
                    impl_->rkey(about.empty() ? channel : about)});
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
    Impl::Write w{Impl::WriteKind::MergePurge, impl_->rkey(kPurges), std::to_string(slot), 0, marks, {}};
    impl_->enqueue(std::move(w));
}

net::awaitable<std::optional<RedisStore::Purges>> RedisStore::read_purges(std::string known_version) {
    auto self = impl_;
    const auto hash = self->rkey(kPurges), version = self->rkey(kPurgesVersion);
    std::vector<std::string_view> args{"EVAL", kReadPurgesScript, "2", hash, version, known_version};
    auto reply = co_await self->exec(hash, args);
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

net::awaitable<void> RedisStore::flush() {
    auto self = impl_;
    if (!self->writer_running) co_return;
    auto waiter = std::make_shared<redis::Pending>(self->ex);
    waiter->timer.expires_at(net::steady_timer::time_point::max());
    self->flushing.push_back(waiter);
    while (!waiter->done) co_await waiter->timer.async_wait(net::as_tuple(net::use_awaitable));
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
