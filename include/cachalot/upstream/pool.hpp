#pragma once
// The origin client: one Pool per worker thread, holding keep-alive connections to each
// upstream. Used only from its worker's thread, so it takes no locks.

#include "cachalot/config/config.hpp"
#include "cachalot/metrics/metrics.hpp"

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

/// Bytes of a response body read ahead of the slowest client, and the most read from the origin
/// before its response is passed on: a body that is not complete by then is streamed.
inline constexpr std::size_t kStreamWindow = 256 * 1024;

/// The rest of a response body, still arriving from the origin. Read to its end, the origin
/// connection goes back to the pool; dropped before, the connection is closed and the origin
/// read stops.
class BodyReader {
public:
    virtual ~BodyReader() = default;
    /// Replaces `out` with the next bytes of the body (empty once it is complete). An error
    /// means the body is truncated: the origin closed, reset or stalled (read_timeout) mid-body.
    virtual boost::asio::awaitable<boost::system::error_code> read(std::string& out) = 0;
    /// The length the origin announced (Content-Length), if it did.
    virtual std::optional<std::uint64_t> length() const = 0;
};

/// The outcome of one origin exchange.
struct FetchResult {
    std::optional<Response> response;  // set on success: the head, and the body as far as it came
    std::unique_ptr<BodyReader> rest;  // set when the body is not complete yet: the rest
    metrics::UpstreamError error{};    // why it failed, when response is empty
    double seconds = 0;                // time to the response head, retries included
    bool timed_out() const { return !response && error == metrics::UpstreamError::Timeout; }
};

/// Where the pipeline sends requests: the Pool in the daemon, a scripted origin in unit tests.
class Origin {
public:
    virtual ~Origin() = default;
    /// Sends `request` (already prepared for forwarding) to upstream `index`; the response.
    virtual boost::asio::awaitable<FetchResult> fetch(std::size_t index, const Request& request) = 0;
    /// The executor background work (revalidations) runs on: the caller's worker.
    virtual boost::asio::any_io_executor executor() const = 0;
};

class Pool final : public Origin {
public:
    Pool(boost::asio::any_io_executor executor, const std::vector<config::Upstream>& upstreams,
         const metrics::Metrics& metrics);
    ~Pool();
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    /// Sends `request` (already prepared for forwarding) to upstream `index` and reads the
    /// response head, and the body as far as it is there (up to kStreamWindow); the rest, if
    /// any, comes from FetchResult::rest. A pooled connection found dead before any response
    /// byte arrived is replaced and the request sent once more, when the method is idempotent.
    boost::asio::awaitable<FetchResult> fetch(std::size_t index, const Request& request) override;

    /// The worker's executor this pool runs on.
    boost::asio::any_io_executor executor() const override;

    /// Closes every idle connection (on shutdown).
    void close_idle();

    struct Impl;  // (pool.cpp)

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace cachalot::upstream
