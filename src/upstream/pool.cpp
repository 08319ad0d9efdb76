#include "cachalot/upstream/pool.hpp"

#include "cachalot/http/headers.hpp"
#include "core/deadline.hpp"
#include "core/net.hpp"
#include "core/wire.hpp"
#include "http/response_parser.hpp"
#include "upstream/tls.hpp"

#include <boost/asio/ssl/error.hpp>

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <chrono>
#include <deque>
#include <utility>

namespace cachalot::upstream {
namespace {

using Clock = std::chrono::steady_clock;
using metrics::UpstreamError;

struct Connection {
    tcp::socket socket;
    std::unique_ptr<core::TlsStream> tls;  // over `socket`, to a TLS upstream
    std::shared_ptr<TlsSession> session;   // where its server's next session goes (kept alive for it)
    core::Deadline deadline{socket};  // connect_timeout, then read_timeout for each exchange
    // No exchange is under way or broke off: its TLS session may be resumed after it closes
    // (OpenSSL marks the session of a connection freed mid-exchange as not resumable).
    bool clean = false;
    std::uint64_t generation = 0;  // of the balancer's server it was opened to
    Clock::time_point idle_since{};
    std::string head;  // the request head being written (Connection::write_message); capacity reused
    beast::flat_buffer buffer;                   // what was read from the origin; capacity reused
    std::optional<http::ResponseParser> parser;  // the response being read (trailer fields are not headers)
    explicit Connection(net::any_io_executor ex) : socket(std::move(ex)) {}
    ~Connection() {
        if (tls && clean) SSL_set_shutdown(tls->native_handle(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    }
    // What a failed operation means: a timeout when the deadline cancelled it.
    beast::error_code outcome(beast::error_code ec) const {
        return ec && deadline.expired() ? beast::error_code(beast::error::timeout) : ec;
    }

    // Reads and writes on the TLS stream when there is one, else on the socket (core/wire.hpp).
    // (Not coroutines: the plain path pays no extra frame.)
    net::awaitable<beast::error_code> read(core::Until until) {
        return tls ? core::read(*tls, buffer, *parser, until) : core::read(socket, buffer, *parser, until);
    }
    beast::error_code read_available(std::size_t limit) {
        return tls ? core::read_available(*tls, buffer, *parser, limit)
                   : core::read_available(socket, buffer, *parser, limit);
    }
    // Writes what the socket takes at once (nothing on TLS: its writes cannot be tried without waiting).
    std::size_t write_now(const std::string& head, std::string_view body, beast::error_code& ec) {
        return tls ? 0 : core::write_now(socket, head, body, ec);
    }
    net::awaitable<beast::error_code> write_rest(const std::string& head, std::string_view body, std::size_t sent) {
        return tls ? core::write_rest(*tls, head, body, sent) : core::write_rest(socket, head, body, sent);
    }
    net::awaitable<beast::error_code> write_message(const std::string& head, std::string_view body) {
        return tls ? core::write_message(*tls, head, body) : core::write_message(socket, head, body);
    }
    // Whether nothing is left over after a response: bytes nobody asked for make a connection
    // untrustworthy (OpenSSL may hold some already decrypted).
    bool drained() const { return buffer.size() == 0 && (!tls || SSL_pending(tls->native_handle()) == 0); }
};

// Why a connection could not be made.
struct ConnectFailure {
    UpstreamError reason;
    std::string what;
};

// True when an idle pooled socket can still carry a request: the origin has neither closed it
// nor sent anything unsolicited. One non-blocking peek, cheaper than a failed exchange.
bool still_open(Connection& c) {
    char byte;
    auto n = ::recv(c.socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

UpstreamError classify(const beast::error_code& ec) {
    if (ec == beast::error::timeout) return UpstreamError::Timeout;
    if (ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
        ec == net::error::broken_pipe || ec == net::ssl::error::stream_truncated)
        return UpstreamError::Closed;
    // A TLS alert after the handshake: with TLS 1.3 a server refuses the client's certificate
    // only once the client has sent its first request.
    if (ec.category() == net::error::get_ssl_category()) return UpstreamError::Tls;
    return UpstreamError::BadResponse;
}

}  // namespace

// What the pool keeps for one upstream: shared with the pool of a reloaded configuration when
// the upstream did not change (as the balancer's state is), so its connections stay warm.
struct Shelf {
    explicit Shelf(const config::Upstream& c)
        : config(c), tls(c.tls.enabled ? std::make_unique<TlsClient>(c) : nullptr) {}
    const config::Upstream config;
    std::vector<std::deque<std::unique_ptr<Connection>>> idle;  // per server
    std::unique_ptr<TlsClient> tls;                             // null: plain
    // Per server: the session to offer, for the server's generation.
    std::vector<std::pair<std::shared_ptr<TlsSession>, std::uint64_t>> sessions;
};

struct Pool::Impl {
    net::any_io_executor executor;
    const std::vector<config::Upstream>& upstreams;
    const metrics::Metrics& metrics;
    Balancer& balancer;
    std::vector<std::shared_ptr<Shelf>> shelves;  // per upstream

    // (Servers are numbered as names resolve: the lists grow with them.)
    std::deque<std::unique_ptr<Connection>>& idle_of(std::size_t u, std::size_t s) {
        auto& idle = shelves[u]->idle;
        if (idle.size() <= s) idle.resize(s + 1);
        return idle[s];
    }

    // The most recently used live connection to server `s` (of `generation`) of upstream `u`, or
    // null. (`now`: the caller's reading of the clock.)
    std::unique_ptr<Connection> take_idle(std::size_t u, std::size_t s, std::uint64_t generation,
                                          Clock::time_point now) {
        auto& list = idle_of(u, s);
        while (!list.empty()) {
            auto c = std::move(list.back());
            list.pop_back();
            const auto idle = now - c->idle_since;
            if (idle >= upstreams[u].idle_timeout || c->generation != generation) continue;
            // Always checked, however briefly it sat: bytes an origin sent after its response
            // would otherwise be read as the next request's response, another client's.
            if (still_open(*c)) return c;
        }
        return nullptr;
    }

    void give_back(std::size_t u, std::size_t s, std::unique_ptr<Connection> c,
                   Clock::time_point now = Clock::now()) {
        auto& list = idle_of(u, s);
        if (list.size() >= upstreams[u].max_idle_connections) return;
        c->idle_since = now;
        list.push_back(std::move(c));
    }

    // Server `s` of upstream `u` for the log: address:port (host:port until its name resolved).
    std::string label(std::size_t u, std::size_t s) const { return balancer.target(u, s).label; }

    // Connects `c` to server `s`, with a TLS handshake for a TLS upstream (each within connect_timeout).
    net::awaitable<std::optional<ConnectFailure>> connect(Connection& c, std::size_t u, std::size_t s) {
        const auto& up = upstreams[u];
        const auto where = balancer.target(u, s);
        const auto& server = up.servers[where.config];
        c.generation = where.generation;
        tcp::resolver::results_type results;
        if (!where.address.empty()) {  // (an address, or what the name resolved to last)
            beast::error_code ec;
            const auto address = net::ip::make_address(where.address, ec);
            if (ec) co_return ConnectFailure{UpstreamError::Connect, "bad address " + where.address};
            results = tcp::resolver::results_type::create(tcp::endpoint(address, server.port), server.host,
                                                          std::to_string(server.port));
        } else {
            tcp::resolver resolver(executor);
            auto [rec, found] = co_await resolver.async_resolve(server.host, std::to_string(server.port),
                                                                net::as_tuple(net::use_awaitable));
            if (rec)
                co_return ConnectFailure{UpstreamError::Connect, "cannot resolve " + server.host + ": " + rec.message()};
            results = std::move(found);
        }
        c.deadline.expires_after(up.connect_timeout);
        auto [cec, ep] = co_await net::async_connect(c.socket, results, net::as_tuple(net::use_awaitable));
        if (auto ec = c.outcome(cec))
            co_return ConnectFailure{ec == beast::error::timeout ? UpstreamError::Timeout : UpstreamError::Connect,
                                     "connect to " + label(u, s) + " failed: " + ec.message()};
        beast::error_code ignored;
        c.socket.set_option(tcp::no_delay(true), ignored);
        if (auto& client = shelves[u]->tls) {
            c.tls = std::make_unique<core::TlsStream>(c.socket, client->context());
            // (A number given to another address starts without a session to offer.)
            auto& sessions = shelves[u]->sessions;
            if (sessions.size() <= s) sessions.resize(s + 1);
            auto& [session, generation] = sessions[s];
            if (!session || generation != where.generation) session = std::make_shared<TlsSession>();
            generation = where.generation;
            c.session = session;
            client->prepare(c.tls->native_handle(), server, c.session.get());
            c.deadline.expires_after(up.connect_timeout);
            auto [hec] = co_await c.tls->async_handshake(net::ssl::stream_base::client, net::as_tuple(net::use_awaitable));
            if (auto ec = c.outcome(hec)) {
                co_return ConnectFailure{ec == beast::error::timeout ? UpstreamError::Timeout : UpstreamError::Tls,
                                         "TLS handshake with " + server.label() + " failed: " +
                                             TlsClient::describe(c.tls->native_handle(), ec)};
            }
            const auto& series = metrics.upstream(u);
            (TlsClient::resumed(c.tls->native_handle()) ? series.tls_resumed : series.tls_full)->Increment();
        }
        c.socket.non_blocking(true, ignored);  // core::write_now tries a send before it waits
        co_return std::nullopt;
    }
};

// The body of a response still arriving: the parser keeps reading from the connection, and
// each read hands over what it parsed. Read to the end, the connection goes back to the pool.
class PooledBody final : public BodyReader {
public:
    PooledBody(Pool::Impl& pool, std::size_t index, std::size_t server, std::unique_ptr<Connection> conn)
        : pool_(pool), index_(index), server_(server), conn_(std::move(conn)) {}
    ~PooledBody() override { pool_.balancer.release(index_, server_); }

    net::awaitable<beast::error_code> read(std::string& out) override;
    std::optional<std::uint64_t> length() const override { return length_; }

private:
    Pool::Impl& pool_;
    std::size_t index_, server_;
    std::unique_ptr<Connection> conn_;
    std::optional<std::uint64_t> length_ = conn_->parser->content_length();
};

Pool::Pool(net::any_io_executor executor, const std::vector<config::Upstream>& upstreams,
           const metrics::Metrics& metrics, Balancer& balancer, const Pool* previous)
    : impl_(new Impl{std::move(executor), upstreams, metrics, balancer, {}}) {
    for (const auto& up : upstreams) {
        std::shared_ptr<Shelf> shelf;
        if (previous)
            for (const auto& old : previous->impl_->shelves)
                if (config::same_upstream(old->config, up)) shelf = old;
        impl_->shelves.push_back(shelf ? shelf : std::make_shared<Shelf>(up));
    }
}

Pool::~Pool() = default;

net::any_io_executor Pool::executor() const { return impl_->executor; }

void Pool::close_idle() {
    for (auto& shelf : impl_->shelves)
        for (auto& list : shelf->idle) list.clear();
}

// Sends a streamed request body, each piece as it comes from the client, framed as the head said.
net::awaitable<beast::error_code> send_body(Connection& conn, BodyReader& body, bool chunked,
                                            std::chrono::milliseconds timeout, bool& body_failed) {
    std::string piece;
    for (;;) {
        if (auto ec = co_await body.read(piece)) {
            body_failed = true;
            co_return ec;
        }
        conn.head.clear();
        if (piece.empty()) {
            if (!chunked) co_return beast::error_code{};
            conn.head.append("0\r\n\r\n");
        } else if (chunked) {
            char size[24];
            conn.head.append(size, static_cast<std::size_t>(std::snprintf(size, sizeof size, "%zx\r\n", piece.size())));
            piece.append("\r\n");
        }
        conn.deadline.expires_after(timeout);
        if (auto ec = conn.outcome(co_await conn.write_message(conn.head, piece))) co_return ec;
        if (piece.empty()) co_return beast::error_code{};
    }
}

net::awaitable<FetchResult> Pool::fetch(std::size_t index, const OriginRequest& request, BodyReader* body,
                                        InterimSink* interim) {
    auto& up = impl_->upstreams[index];
    auto& series = impl_->metrics.upstream(index);
    const bool idempotent = http::is_idempotent(request.method_string());
    const auto start = Clock::now();
    FetchResult result;
    // (The clock is read once per attempt and once at the end: a request read it a dozen times.)
    auto finish = [&] {
        const auto end = Clock::now();
        result.seconds = std::chrono::duration<double>(end - start).count();
        series.duration->Observe(result.seconds);
        if (!result.response && !result.body_failed) series.error(result.error).Increment();
        return end;
    };

    auto& balancer = impl_->balancer;
    bool body_taken = false;  // bytes of a streamed body were sent: the request cannot go again
    bool retried_dead = false;  // a dead pooled connection was replaced (once)
    bool failed_before = false;
    std::vector<std::size_t> unreachable;  // servers this request could not reach
    // The server picked, released (no longer outstanding) when this returns, unless the body
    // that streams on holds it.
    std::optional<std::size_t> server;
    std::uint64_t generation = 0;  // the server's (its number may go to another address later)
    struct Release {
        Balancer& balancer;
        std::size_t index;
        std::optional<std::size_t>& server;
        ~Release() {
            if (server) balancer.release(index, *server);
        }
    } release{balancer, index, server};
    for (bool same_server = false, first = true;;) {
        const auto now = std::exchange(first, false) ? start : Clock::now();
        if (!same_server) {
            if (server) balancer.release(index, *server);
            bool busy = false;
            server = balancer.pick(index, unreachable, &busy, request.affinity, &generation);
            if (!server) {
                // (Debug: under load these come once per request; the metrics count them, and the
                // ejections and health changes that cause them are logged once each.)
                if (busy) {
                    result.error = UpstreamError::Busy;
                    spdlog::debug("upstream {}: {} requests in flight (max_in_flight); nothing sent", up.name,
                                  up.max_in_flight);
                } else if (!failed_before) {
                    result.error = UpstreamError::Unavailable;
                    spdlog::debug("upstream {}: every server is ejected; nothing sent", up.name);
                }
                finish();
                co_return result;
            }
        }
        same_server = false;
        auto conn = impl_->take_idle(index, *server, generation, now);
        const bool reused = conn != nullptr;
        if (reused) {
            series.connections_reused->Increment();
        } else {
            conn = std::make_unique<Connection>(impl_->executor);
            if (auto failure = co_await impl_->connect(*conn, index, *server)) {
                result.error = failure->reason;
                failed_before = true;
                spdlog::warn("upstream {}: {}", up.name, failure->what);
                balancer.report(index, *server, true);
                // Nothing was sent: an idempotent request tries another server.
                if (idempotent) {
                    unreachable.push_back(*server);
                    continue;
                }
                finish();
                co_return result;
            }
            series.connections_new->Increment();
        }

        conn->deadline.expires_at((reused ? now : Clock::now()) + up.read_timeout);  // (connecting took time)
        conn->clean = false;
        beast::error_code wec;
        const auto sent = conn->write_now(request.head, request.body, wec);
        if (!wec && sent < request.head.size() + request.body.size())
            wec = co_await conn->write_rest(request.head, request.body, sent);
        if (!wec && body) {
            body_taken = true;
            wec = co_await send_body(*conn, *body, request.chunked, up.read_timeout, result.body_failed);
            if (result.body_failed) {
                finish();  // the client's failure, not the origin's: no upstream error counted
                co_return result;
            }
        }
        auto& parser = conn->parser;
        beast::error_code ec = conn->outcome(wec);
        bool got_some = false;
        // Interim responses go on to the client as they come, each read by a parser of its own,
        // so that none of their fields stays with the final response. 100 Continue is not passed
        // on (the proxy answers Expect itself), and 101 is refused below (no upgrade was asked).
        for (std::size_t interims = 0; !ec;) {
            parser.emplace();  // (bodies stream: no length is too long)
            parser->skip(request.method == bhttp::verb::head);
            ec = conn->outcome(co_await conn->read(core::Until::Head));
            got_some = got_some || parser->got_some();
            if (ec) break;
            const unsigned status = parser->get().result_int();
            if (status / 100 != 1 || status == 101) break;
            if (status != 100 && interim && interims++ < kMaxInterim) co_await interim->send(parser->get().base());
        }
        // (The parser refused what cannot be passed on faithfully: its framing, its syntax.)
        if (!ec && (parser->get().result_int() < 200 || parser->get().result_int() > 599)) {  // (101 comes here)
            spdlog::warn("upstream {}: {} {}: response refused: status {}", up.name, request.method_string(),
                         request.target(), parser->get().result_int());
            ec = bhttp::error::bad_status;
        }
        // The body as far as it is there: most responses are complete now and go on whole.
        if (!ec) ec = conn->outcome(conn->read_available(kStreamWindow));
        if (ec) {
            // A keep-alive connection the origin closed while it sat in the pool: nothing was
            // answered, so the request can go again on a fresh connection.
            if (reused && !retried_dead && idempotent && !got_some && !body_taken && ec != beast::error::timeout) {
                spdlog::debug("upstream {}: pooled connection was dead ({}), retrying", up.name, ec.message());
                retried_dead = same_server = true;
                continue;
            }
            result.error = classify(ec);
            spdlog::warn("upstream {}: {} {} to {} failed: {}{}{}", up.name, request.method_string(), request.target(),
                         impl_->label(index, *server), ec.message(), parser->refusal().empty() ? "" : ": ",
                         parser->refusal());
            balancer.report(index, *server, true);
            finish();
            co_return result;
        }
        balancer.report(index, *server, parser->get().result_int() >= 500);
        if (!parser->is_done()) {
            // The rest streams: the head and what came so far go on now.
            result.response.emplace(std::move(parser->get()));  // (the parser goes on with its state alone)
            parser->get().body().clear();
            result.rest = std::make_unique<PooledBody>(*impl_, index, *server, std::move(conn));
            server.reset();  // the body holds it now
            finish();
            co_return result;
        }
        // A response ended by the connection's close leaves nothing to reuse; one followed by
        // bytes nobody asked for, nothing to trust.
        const bool reusable = parser->keep_alive() && conn->drained();
        conn->clean = true;
        result.response = parser->release();
        const auto end = finish();
        if (reusable) impl_->give_back(index, *server, std::move(conn), end);
        co_return result;
    }
}

net::awaitable<beast::error_code> PooledBody::read(std::string& out) {
    out.clear();
    if (!conn_) co_return beast::error_code{};
    const auto& up = pool_.upstreams[index_];
    conn_->deadline.expires_after(up.read_timeout);
    beast::error_code ec;
    auto& parser = *conn_->parser;
    while (!ec && out.empty() && !parser.is_done()) {
        ec = conn_->outcome(co_await conn_->read(core::Until::More));
        out.swap(parser.get().body());
    }
    if (ec) {
        conn_.reset();
        co_return ec;
    }
    if (parser.is_done()) {
        const bool reusable = parser.keep_alive() && conn_->drained();
        conn_->clean = true;
        if (reusable) pool_.give_back(index_, server_, std::move(conn_));
        conn_.reset();
    }
    co_return beast::error_code{};
}

}  // namespace cachalot::upstream
