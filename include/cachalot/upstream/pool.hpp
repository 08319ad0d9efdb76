#pragma once
// The origin client: one Pool per worker thread, holding keep-alive connections to each
// upstream. Used only from its worker's thread, so it takes no locks.

#include "cachalot/config/config.hpp"
#include "cachalot/metrics/metrics.hpp"
#include "cachalot/upstream/balancer.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <memory>
#include <optional>
#include <vector>

namespace cachalot::upstream {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;

/// A request as it goes to an origin: its head already serialized (start line, fields, empty
/// line; server::origin_request writes it), and its body when that is complete. A body that
/// streams comes from a BodyReader, framed as the head says (`chunked`, else Content-Length).
struct OriginRequest {
    std::string head;
    std::string body;
    boost::beast::http::verb method = boost::beast::http::verb::get;
    bool chunked = false;
    std::uint64_t affinity = 0;  // a hash of the request's normalized URL (consistent_hash balancing)
    /// The method and the target, as the start line has them.
    std::string_view method_string() const { return std::string_view(head).substr(0, head.find(' ')); }
    std::string_view target() const {
        const auto from = head.find(' ') + 1;
        return std::string_view(head).substr(from, head.find(' ', from) - from);
    }
};

/// Bytes of a response body read ahead of the slowest client, and the most read from the origin
/// before its response is passed on: a body that is not complete by then is streamed.
inline constexpr std::size_t kStreamWindow = 256 * 1024;

/// A body still arriving, read piece by piece: the rest of a response from the origin (Pool;
/// read to its end, the origin connection goes back to the pool; dropped before, it is closed
/// and the origin read stops), or a request's from its client (an upload, streamed to the origin).
class BodyReader {
public:
    virtual ~BodyReader() = default;
    /// Replaces `out` with the next bytes of the body (empty once it is complete). An error
    /// means the body is truncated: its sender closed, reset or stalled mid-body.
    virtual boost::asio::awaitable<boost::system::error_code> read(std::string& out) = 0;
    /// The length its sender announced (Content-Length), if it did.
    virtual std::optional<std::uint64_t> length() const = 0;
};

/// Where interim responses (1xx but 100 and 101: 102 Processing, 103 Early Hints, …) go while
/// the final response is awaited: on to the client that asked (server::Worker's session).
class InterimSink {
public:
    virtual ~InterimSink() = default;
    /// Passes one interim response's head on, as it came.
    virtual boost::asio::awaitable<void> send(const boost::beast::http::response_header<>& head) = 0;
};

/// At most this many interim responses of one exchange are passed on; the rest are dropped.
inline constexpr std::size_t kMaxInterim = 16;

/// The outcome of one origin exchange.
struct FetchResult {
    std::optional<Response> response;  // set on success: the head, and the body as far as it came
    std::unique_ptr<BodyReader> rest;  // set when the body is not complete yet: the rest
    metrics::UpstreamError error{};    // why it failed, when response is empty
    bool body_failed = false;          // failed: the streamed request body did (its client's doing)
    double seconds = 0;                // time to the response head, retries included
    bool timed_out() const { return !response && error == metrics::UpstreamError::Timeout; }
};

/// Where the pipeline sends requests: the Pool in the daemon, a scripted origin in unit tests.
class Origin {
public:
    virtual ~Origin() = default;
    /// Sends `request` to upstream `index`, and after its head `body` when there is one (the
    /// request's own body is then empty); the final response. Interim ones go to `interim`
    /// (when there is one) as they come, and are never part of the result.
    virtual boost::asio::awaitable<FetchResult> fetch(std::size_t index, const OriginRequest& request,
                                                      BodyReader* body = nullptr, InterimSink* interim = nullptr) = 0;
    /// The executor background work (revalidations) runs on: the caller's worker.
    virtual boost::asio::any_io_executor executor() const = 0;
};

class Pool final : public Origin {
public:
    /// `balancer` (shared by every worker's pool) chooses each request's server. `previous`:
    /// the pool of the configuration this one replaces (a reload), on the same executor; its
    /// idle connections and TLS sessions to upstreams that did not change are shared with this
    /// one. Throws as TlsClient does for a TLS upstream's unusable files.
    Pool(boost::asio::any_io_executor executor, const std::vector<config::Upstream>& upstreams,
         const metrics::Metrics& metrics, Balancer& balancer, const Pool* previous = nullptr);
    ~Pool();
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    /// Sends `request` to a server of upstream `index` (the balancer's choice) and reads the
    /// response head, and the body as far as it is there (up to kStreamWindow); the rest, if
    /// any, comes from FetchResult::rest. A pooled connection found dead before any response
    /// byte arrived is replaced and the request sent once more, when the method is idempotent
    /// and no byte of a streamed `body` was taken. An idempotent request whose server cannot be
    /// reached goes to another server (each at most once). With every server ejected, the
    /// result is UpstreamError::Unavailable. A streamed body goes framed as `request` says
    /// (OriginRequest::chunked).
    boost::asio::awaitable<FetchResult> fetch(std::size_t index, const OriginRequest& request,
                                              BodyReader* body = nullptr, InterimSink* interim = nullptr) override;

    /// The worker's executor this pool runs on.
    boost::asio::any_io_executor executor() const override;

    /// Closes every idle connection (on shutdown).
    void close_idle();

    struct Impl;  // (pool.cpp)

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace cachalot::upstream
