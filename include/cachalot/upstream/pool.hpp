#pragma once
// The origin client: one Pool per worker thread, holding keep-alive connections to each
// upstream. Used only from its worker's thread, so it takes no locks.

#include "cachalot/config/config.hpp"
#include "cachalot/core/byte_budget.hpp"
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

/// The outcome of one origin exchange.
struct FetchResult {
    std::optional<Response> response;           // set on success
    metrics::UpstreamError error{};              // why it failed, when response is empty
    bool over_budget = false;                    // failed: the body would have passed client.max_buffered_bytes
    double seconds = 0;                          // time spent on the origin, retries included
    core::ByteBudget::Reservation held;          // the response body's share of the budget
    bool timed_out() const { return !response && error == metrics::UpstreamError::Timeout; }
};

/// Where the pipeline sends requests: the Pool in the daemon, a scripted origin in unit tests.
class Origin {
public:
    virtual ~Origin() = default;
    /// Sends `request` (already prepared for forwarding) to upstream `index`; the whole response.
    virtual boost::asio::awaitable<FetchResult> fetch(std::size_t index, const Request& request) = 0;
    /// The executor background work (revalidations) runs on: the caller's worker.
    virtual boost::asio::any_io_executor executor() const = 0;
};

class Pool final : public Origin {
public:
    /// Response bodies are charged to `budget` as they arrive.
    Pool(boost::asio::any_io_executor executor, const std::vector<config::Upstream>& upstreams,
         const metrics::Metrics& metrics, core::ByteBudget& budget);
    ~Pool();
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    /// Sends `request` (already prepared for forwarding) to upstream `index` and reads the whole
    /// response. A pooled connection found dead before any response byte arrived is replaced
    /// and the request sent once more, when the method is idempotent. A body that would pass
    /// the budget is not read: the result is over_budget and the connection is closed.
    boost::asio::awaitable<FetchResult> fetch(std::size_t index, const Request& request) override;

    /// The worker's executor this pool runs on.
    boost::asio::any_io_executor executor() const override;

    /// Closes every idle connection (on shutdown).
    void close_idle();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace cachalot::upstream
