// cachalot-demo-origin: the small origin the README's quick start puts behind Cachalot.
//   GET /            a JSON document with a counter: cacheable for 60 s
//   GET /time        the current time: cacheable for 5 s
//   GET /uncached    Cache-Control: no-store
//   GET /1k          1 KiB of JSON, cacheable for an hour (the benchmarks' cached object)
//   GET /slow        answered after 300 ms, cacheable for 60 s (the stampede benchmark's cold key;
//                    vary the query string for a new key)
//   GET /slow-swr    answered after 300 ms, fresh for 1 s, then stale-while-revalidate for an hour
//   GET /stats       {"served":N,"slow":M}: requests answered so far, and those to /slow*
//   anything else    404
// Usage: cachalot-demo-origin [PORT]   (default 8081, loopback only)

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <ctime>
#include <iostream>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

namespace {

std::atomic<unsigned long> served{0};
std::atomic<unsigned long> slow_served{0};
constexpr std::chrono::milliseconds kSlowDelay{300};

// How long to hold the answer back.
std::chrono::milliseconds delay_for(const http::request<http::string_body>& req) {
    auto path = req.target().substr(0, req.target().find('?'));
    return path == "/slow" || path == "/slow-swr" ? kSlowDelay : std::chrono::milliseconds(0);
}

http::response<http::string_body> answer(const http::request<http::string_body>& req) {
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "cachalot-demo-origin");
    res.set(http::field::content_type, "application/json");
    auto n = ++served;
    auto path = req.target().substr(0, req.target().find('?'));
    if (path == "/") {
        res.set(http::field::cache_control, "public, max-age=60");
        res.body() = R"({"message":"hello from the demo origin","origin_requests":)" + std::to_string(n) + "}\n";
    } else if (path == "/time") {
        res.set(http::field::cache_control, "max-age=5");
        res.body() = R"({"unix_time":)" + std::to_string(std::time(nullptr)) + "}\n";
    } else if (path == "/1k") {
        res.set(http::field::cache_control, "public, max-age=3600");
        std::string body = R"({"items":[)";
        while (body.size() < 990) body += R"("0123456789abcdef",)";
        body += R"("end"]})";
        body.resize(1023, ' ');
        res.body() = body + "\n";
    } else if (path == "/slow" || path == "/slow-swr") {
        ++slow_served;
        res.set(http::field::cache_control,
                path == "/slow" ? "public, max-age=60" : "public, max-age=1, stale-while-revalidate=3600");
        res.body() = R"({"slow":true,"origin_requests":)" + std::to_string(n) + "}\n";
    } else if (path == "/stats") {
        res.set(http::field::cache_control, "no-store");
        res.body() = R"({"served":)" + std::to_string(n) + R"(,"slow":)" + std::to_string(slow_served.load()) + "}\n";
    } else if (path == "/uncached") {
        res.set(http::field::cache_control, "no-store");
        res.body() = R"({"origin_requests":)" + std::to_string(n) + "}\n";
    } else {
        res.result(http::status::not_found);
        res.body() = R"({"error":"not found"})" "\n";
    }
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    if (req.method() == http::verb::head) res.body().clear();
    return res;
}

net::awaitable<void> session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
        http::request<http::string_body> req;
        stream.expires_after(std::chrono::seconds(60));
        auto [ec, n] = co_await http::async_read(stream, buffer, req, net::as_tuple(net::use_awaitable));
        if (ec) break;
        if (auto delay = delay_for(req); delay.count() > 0) {
            net::steady_timer pause(stream.get_executor(), delay);
            co_await pause.async_wait(net::as_tuple(net::use_awaitable));
        }
        auto res = answer(req);
        auto [wec, wn] = co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
        if (wec || !res.keep_alive()) break;
    }
}

net::awaitable<void> listen(tcp::acceptor acceptor) {
    for (;;) {
        auto socket = co_await acceptor.async_accept(net::use_awaitable);
        net::co_spawn(acceptor.get_executor(), session(std::move(socket)), net::detached);
    }
}

}  // namespace

int main(int argc, char** argv) {
    unsigned short port = argc > 1 ? static_cast<unsigned short>(std::stoi(argv[1])) : 8081;
    net::io_context ioc{1};
    tcp::acceptor acceptor(ioc, {net::ip::make_address("127.0.0.1"), port});
    net::signal_set signals(ioc, SIGTERM, SIGINT);
    signals.async_wait([&](auto, auto) { ioc.stop(); });
    net::co_spawn(ioc, listen(std::move(acceptor)), net::detached);
    std::cout << "demo origin listening on 127.0.0.1:" << port << std::endl;
    ioc.run();
}
