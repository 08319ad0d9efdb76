#include "store/redis/topology.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

namespace cachalot::store::redis {
namespace {

constexpr auto kFailingRefresh = std::chrono::milliseconds(250);
constexpr auto kMinRefreshGap = std::chrono::milliseconds(100);
constexpr auto kTryAgainPause = std::chrono::milliseconds(10);
const std::vector<std::string_view> kClusterSlots{"CLUSTER", "SLOTS"};
const std::vector<std::string_view> kAsking{"ASKING"};

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 :6381" (Redis 7: an empty host is the replying
// node's): the target, or nothing when the reply does not parse.
std::optional<Endpoint> redirect_target(const std::string& error, const Endpoint& from) {
    const auto space = error.rfind(' ');
    if (space == std::string::npos || space + 1 >= error.size()) return std::nullopt;
    const std::string address = error.substr(space + 1);
    const auto colon = address.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    auto ep = parse_endpoint(address);
    if (ep.port <= 0 || ep.port > 65535) return std::nullopt;
    if (ep.host.empty()) ep.host = from.host;
    return ep;
}

bool is_redirect(const Reply& r) { return r.error_is("MOVED") || r.error_is("ASK") || r.error_is("TRYAGAIN"); }

}  // namespace

Node::Node(const net::any_io_executor& ex, Endpoint ep, const RedisOptions& opt, RedisNodeCounters& s,
           std::function<void()> on_not_primary)
    : endpoint(std::move(ep)), name(endpoint.name()), stats(s) {
    for (unsigned i = 0; i < std::max(1u, opt.pool_size); ++i)
        pool.push_back(std::make_unique<Connection>(ex, endpoint, opt.connect_timeout, on_not_primary));
}

Topology::Topology(net::any_io_executor ex, const RedisOptions& opt, RedisCounters& counters)
    : ex_(std::move(ex)), opt_(opt), counters_(counters),
      nodes_(opt.nodes ? opt.nodes : std::make_shared<RedisNodes>()), refresh_timer_(ex_) {
    if (!opt.cluster.empty()) {
        mode_ = Mode::Cluster;
        slots_.assign(kHashSlots, nullptr);
        for (const auto& a : opt.cluster) seeds_.push_back(parse_endpoint(a));
    } else if (!opt.sentinel.master_name.empty()) {
        mode_ = Mode::Sentinel;
        for (const auto& a : opt.sentinel.addresses) {
            seeds_.push_back(parse_endpoint(a));
            sentinels_.push_back(std::make_unique<Connection>(ex_, seeds_.back(), opt.connect_timeout));
        }
    } else {
        primary_ = &node(parse_endpoint(opt.address));
    }
}

void Topology::start() {
    if (mode_ == Mode::Single) return;
    net::co_spawn(ex_, follow(shared_from_this()), net::detached);
    if (mode_ == Mode::Sentinel) net::co_spawn(ex_, watch_sentinels(shared_from_this()), net::detached);
}

void Topology::close() {
    closed_ = true;
    refresh_timer_.cancel();
    for (auto& [name, n] : known_)
        for (auto& c : n->pool) c->reset();
    for (auto& c : sentinels_) c->reset();
    if (sentinel_watch_) sentinel_watch_->reset();
}

Node& Topology::node(const Endpoint& where) {
    Endpoint ep = where;
    ep.username = opt_.username;
    ep.password = opt_.password;
    ep.db = opt_.db;
    const auto name = ep.name();
    auto& slot = known_[name];
    if (!slot) {
        std::function<void()> not_primary;
        if (mode_ == Mode::Sentinel) not_primary = [weak = weak_from_this()] {
            if (auto self = weak.lock()) self->wake();
        };
        slot = std::make_unique<Node>(ex_, ep, opt_, nodes_->node(name), std::move(not_primary));
    }
    return *slot;
}

Node* Topology::route(std::string_view rkey) {
    Node* n = mode_ == Mode::Cluster ? slots_[hash_slot(rkey)] : primary_;
    if (!n) {
        wake();  // a slot nobody serves (yet): the map is out of date
        return nullptr;
    }
    return allow(*n) ? n : nullptr;
}

net::awaitable<void> Topology::ready() {
    if (learned_ || mode_ == Mode::Single) co_return;
    auto self = shared_from_this();
    auto waiter = std::make_shared<Pending>(ex_);
    waiter->timer.expires_after(opt_.connect_timeout + opt_.command_timeout);
    ready_waiters_.push_back(waiter);
    co_await waiter->timer.async_wait(net::as_tuple(net::use_awaitable));
}

void Topology::learned() {
    learned_ = true;
    for (auto& w : std::exchange(ready_waiters_, {})) w->timer.cancel();
}

bool Topology::writable(std::string_view rkey) const {
    if (!learned_ && mode_ != Mode::Single) return true;  // queued until it is known where to go
    const Node* n = mode_ == Mode::Cluster ? slots_[hash_slot(rkey)] : primary_;
    return n && (!n->open || (!n->probing && SteadyClock::now() >= n->open_until));
}

bool Topology::allow(Node& n) {
    if (!n.open) return true;
    if (n.probing || SteadyClock::now() < n.open_until) return false;
    n.probing = true;  // half-open: this command finds out whether the node is back
    return true;
}

void Topology::record(Node& n, bool ok) {
    if (ok) {
        n.consecutive_failures = 0;
        if (n.open) {
            n.open = n.probing = false;
            --counters_.breakers_open;
            --n.stats.breakers_open;
            spdlog::info("redis L2 {} answers again: breaker closed", n.name);
        }
        return;
    }
    ++n.consecutive_failures;
    if (n.open) {
        if (n.probing) {
            n.probing = false;
            n.open_until = SteadyClock::now() + opt_.breaker_backoff;
        }
    } else if (n.consecutive_failures >= opt_.failure_threshold) {
        n.open = true;
        ++counters_.breakers_open;
        ++n.stats.breakers_open;
        ++counters_.breaker_opened;
        n.open_until = SteadyClock::now() + opt_.breaker_backoff;
        spdlog::warn("redis L2 {} failing: breaker open, its keys skip L2 for {} ms", n.name,
                     opt_.breaker_backoff.count());
        wake();  // a cluster may be failing over, or Sentinel may know a new primary
    }
}

// Whether a node that serves (the primary, or one in the slot map) has its breaker open.
bool Topology::failing() const {
    if (mode_ != Mode::Cluster) return primary_ && primary_->open;
    for (auto* n : slots_)
        if (n && n->open) return true;
    return false;
}

void Topology::retire(Node& n) {
    n.consecutive_failures = 0;
    n.probing = false;
    if (!n.open) return;
    n.open = false;
    --counters_.breakers_open;
    --n.stats.breakers_open;
}

// Accounts for one reply: latency, failure counters, the node's breaker. A connection that
// timed out is dropped (its stream can no longer be trusted to be in step). A redirect is the
// cluster's routing, not a failure.
void Topology::account(Node& n, Connection& conn, const Reply& r, SteadyClock::time_point start) {
    using Kind = Reply::Kind;
    ++n.stats.commands;
    if (is_redirect(r)) return;
    if (r.kind == Kind::TimedOut) {
        ++counters_.timeouts;
        ++n.stats.errors;
        conn.reset();
    } else if (r.kind == Kind::Failed || r.kind == Kind::Error) {
        ++counters_.errors;
        ++n.stats.errors;
        if (r.kind == Kind::Error) spdlog::debug("redis {}: error reply: {}", n.name, r.str);
        if (r.error_is("CLUSTERDOWN")) wake();
    } else if (opt_.observe_latency) {
        opt_.observe_latency(std::chrono::duration<double>(SteadyClock::now() - start).count());
    }
    record(n, r.ok());
}

net::awaitable<Reply> Topology::exec(Node& node, const std::vector<std::string_view>& args) {
    auto self = shared_from_this();
    auto& conn = node.connection();
    const auto start = SteadyClock::now();
    auto reply = co_await wait(conn.send(args, opt_.command_timeout));
    co_return co_await settle(node, conn, std::move(reply), start, args);
}

net::awaitable<Reply> Topology::settle(Node& first, Connection& first_conn, Reply reply,
                                       SteadyClock::time_point start, const std::vector<std::string_view>& args) {
    auto self = shared_from_this();
    account(first, first_conn, reply, start);
    Node* at = &first;
    for (int hop = 0; hop < kMaxRedirects && is_redirect(reply); ++hop) {
        const bool ask = reply.error_is("ASK");
        if (reply.error_is("TRYAGAIN")) {
            // A multi-key command during a slot's migration: the same node, a moment later.
            net::steady_timer pause(ex_, kTryAgainPause);
            co_await pause.async_wait(net::as_tuple(net::use_awaitable));
        } else {
            auto target = redirect_target(reply.str, at->endpoint);
            if (!target) break;
            if (ask) {
                ++at->stats.ask;
            } else {
                ++at->stats.moved;
                // The slot has a new owner: use it now, and read the whole map again soon.
                unsigned slot = 0;
                const auto& s = reply.str;  // "MOVED <slot> <host:port>"
                const auto from = s.find(' ') + 1, to = s.find(' ', from);
                if (to != std::string::npos) {
                    auto [p, ec] = std::from_chars(s.data() + from, s.data() + to, slot);
                    if (mode_ == Mode::Cluster && ec == std::errc{} && p == s.data() + to && slot < kHashSlots)
                        slots_[slot] = &node(*target);
                }
                wake();
            }
            at = &node(*target);
        }
        if (!allow(*at)) break;
        auto& conn = at->connection();
        const auto again = SteadyClock::now();
        if (ask) conn.send(kAsking, opt_.command_timeout);  // its reply is not waited for: same connection, in order
        reply = co_await wait(conn.send(args, opt_.command_timeout));
        account(*at, conn, reply, again);
    }
    if (is_redirect(reply)) {
        // Out of hops: a miss for a lookup, a dropped write.
        reply.kind = Reply::Kind::Failed;
        ++counters_.errors;
    }
    co_return reply;
}

std::optional<Endpoint> Topology::subscription_endpoint() {
    if (mode_ != Mode::Cluster) return primary_ ? std::optional(primary_->endpoint) : std::nullopt;
    std::vector<Node*> healthy;
    for (auto* n : slots_)
        if (n && !n->open && (healthy.empty() || healthy.back() != n)) healthy.push_back(n);
    if (healthy.empty()) return seeds_[next_subscription_++ % seeds_.size()];
    return healthy[next_subscription_++ % healthy.size()]->endpoint;
}

void Topology::wake() {
    if (mode_ == Mode::Single || closed_) return;
    refresh_timer_.cancel();
}

net::awaitable<void> Topology::follow(std::shared_ptr<Topology> self) {
    while (!self->closed_) {
        // Woken early (a redirect, a failing node): not more often than every 100 ms.
        const auto gap = SteadyClock::now() - self->last_refresh_;
        if (gap < kMinRefreshGap) {
            net::steady_timer pause(self->ex_, kMinRefreshGap - gap);
            co_await pause.async_wait(net::as_tuple(net::use_awaitable));
            if (self->closed_) break;
        }
        self->last_refresh_ = SteadyClock::now();
        bool ok = false;  // (no co_await inside ?: with GCC 12)
        if (self->mode_ == Mode::Cluster) ok = co_await self->refresh_cluster();
        else ok = co_await self->refresh_sentinel();
        if (self->closed_) break;
        const auto wait = !ok || self->failing() ? std::chrono::duration_cast<std::chrono::milliseconds>(kFailingRefresh)
                                                 : self->opt_.topology_refresh;
        self->refresh_timer_.expires_after(wait);
        co_await self->refresh_timer_.async_wait(net::as_tuple(net::use_awaitable));
    }
}

// CLUSTER SLOTS: [[start, end, [host, port, id, …] (the primary), [host, port, id, …] (each
// replica)…], …]. Asked of the nodes serving slots first, then of the seeds.
net::awaitable<bool> Topology::refresh_cluster() {
    std::vector<Endpoint> ask;
    for (auto* n : slots_)
        if (n && !n->open && (ask.empty() || ask.back().name() != n->name)) ask.push_back(n->endpoint);
    ask.insert(ask.end(), seeds_.begin(), seeds_.end());
    for (const auto& ep : ask) {
        auto& n = node(ep);
        auto& conn = n.connection();
        const auto start = SteadyClock::now();
        auto pending = conn.send(kClusterSlots, opt_.command_timeout + opt_.connect_timeout);
        auto reply = co_await wait(std::move(pending));
        if (closed_) co_return false;
        if (reply.kind != Reply::Kind::Array) {
            account(n, conn, reply, start);
            continue;
        }
        // Untrusted like every byte from Redis: a range that does not parse is skipped.
        // No host (nil, "" or "?": cluster-preferred-endpoint-type unknown-endpoint) is the host
        // this node was reached at.
        auto where = [&](const Reply& r) -> std::optional<Endpoint> {
            if (r.kind != Reply::Kind::Array || r.elements.size() < 2 ||
                (r.elements[0].kind != Reply::Kind::String && r.elements[0].kind != Reply::Kind::Nil) ||
                r.elements[1].kind != Reply::Kind::Integer || r.elements[1].integer <= 0 ||
                r.elements[1].integer > 65535)
                return std::nullopt;
            Endpoint e;
            const auto& host = r.elements[0].str;  // empty when nil
            e.host = host.empty() || host == "?" ? ep.host : host;
            e.port = static_cast<int>(r.elements[1].integer);
            return e;
        };
        std::vector<Node*> next(kHashSlots, nullptr);
        std::vector<std::string> primaries, replicas;
        for (const auto& range : reply.elements) {
            if (range.kind != Reply::Kind::Array || range.elements.size() < 3) continue;
            const auto& lo = range.elements[0];
            const auto& hi = range.elements[1];
            if (lo.kind != Reply::Kind::Integer || hi.kind != Reply::Kind::Integer || lo.integer < 0 ||
                hi.integer < lo.integer || hi.integer >= kHashSlots)
                continue;
            const auto primary = where(range.elements[2]);
            if (!primary) continue;
            auto* owner = &node(*primary);
            primaries.push_back(owner->name);
            for (std::size_t i = 3; i < range.elements.size(); ++i)
                if (auto r = where(range.elements[i])) replicas.push_back(r->name());
            for (auto s = lo.integer; s <= hi.integer; ++s) next[static_cast<std::size_t>(s)] = owner;
        }
        account(n, conn, reply, start);
        ++n.stats.refreshes;
        std::size_t changed = 0;
        for (std::size_t s = 0; s < kHashSlots; ++s) changed += next[s] != slots_[s];
        if (changed) spdlog::info("redis cluster: slot map from {}: {} slots changed owner", n.name, changed);
        slots_ = std::move(next);
        for (auto& [name, known] : known_)
            if (std::find(slots_.begin(), slots_.end(), known.get()) == slots_.end()) retire(*known);
        nodes_->cluster_roles(primaries, replicas);
        learned();
        co_return true;
    }
    spdlog::warn("redis cluster: no node answered CLUSTER SLOTS");
    co_return false;
}

void Topology::set_primary(const Endpoint& ep, const char* why) {
    auto& n = node(ep);
    if (primary_ == &n) return;
    spdlog::warn("redis sentinel: primary of '{}' is {} ({}), was {}", opt_.sentinel.master_name, n.name, why,
                 primary_ ? primary_->name : "unknown");
    if (primary_) retire(*primary_);
    primary_ = &n;
    nodes_->sentinel_primary(n.name);
}

// SENTINEL get-master-addr-by-name NAME: [host, port] from the first sentinel that knows.
net::awaitable<bool> Topology::refresh_sentinel() {
    const std::vector<std::string_view> args{"SENTINEL", "get-master-addr-by-name", opt_.sentinel.master_name};
    for (std::size_t i = 0; i < sentinels_.size(); ++i) {
        auto reply = co_await wait(sentinels_[i]->send(args, opt_.command_timeout + opt_.connect_timeout));
        if (closed_) co_return false;
        if (reply.kind == Reply::Kind::TimedOut) sentinels_[i]->reset();
        if (reply.kind != Reply::Kind::Array || reply.elements.size() != 2 ||
            reply.elements[0].kind != Reply::Kind::String || reply.elements[1].kind != Reply::Kind::String)
            continue;
        Endpoint ep;
        ep.host = reply.elements[0].str;
        auto [p, ec] = std::from_chars(reply.elements[1].str.data(),
                                       reply.elements[1].str.data() + reply.elements[1].str.size(), ep.port);
        if (ec != std::errc{} || ep.host.empty() || ep.port <= 0 || ep.port > 65535) continue;
        set_primary(ep, "asked");
        learned();
        co_return true;
    }
    spdlog::warn("redis sentinel: no sentinel named the primary of '{}'", opt_.sentinel.master_name);
    co_return false;
}

// +switch-master "NAME OLD_IP OLD_PORT NEW_IP NEW_PORT" on one sentinel; another one when that
// connection goes away.
net::awaitable<void> Topology::watch_sentinels(std::shared_ptr<Topology> self) {
    std::weak_ptr<Topology> weak = self;
    self->on_switch_ = [weak](std::string_view, std::string_view payload) {
        auto t = weak.lock();
        if (!t) return;
        std::vector<std::string_view> words;
        while (!payload.empty()) {
            const auto sp = payload.find(' ');
            words.push_back(payload.substr(0, sp));
            payload = sp == std::string_view::npos ? std::string_view{} : payload.substr(sp + 1);
        }
        if (words.size() != 5 || words[0] != t->opt_.sentinel.master_name) return;
        Endpoint ep;
        ep.host = std::string(words[3]);
        auto [p, ec] = std::from_chars(words[4].data(), words[4].data() + words[4].size(), ep.port);
        if (ec != std::errc{} || ep.port <= 0 || ep.port > 65535) return;
        t->set_primary(ep, "+switch-master");
        t->learned();
    };
    net::steady_timer pause(self->ex_);
    std::size_t next = 0;
    while (!self->closed_) {
        if (!self->sentinel_watch_ || !self->sentinel_watch_->open()) {
            self->sentinel_watch_ = std::make_unique<Connection>(self->ex_, self->seeds_[next++ % self->seeds_.size()],
                                                                 self->opt_.connect_timeout);
            self->sentinel_watch_->subscribe({"+switch-master"}, &self->on_switch_);
        }
        pause.expires_after(std::chrono::seconds(1));
        co_await pause.async_wait(net::as_tuple(net::use_awaitable));
    }
}

}  // namespace cachalot::store::redis
