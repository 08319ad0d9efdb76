// cachalot-demo-origin: the small origin the README's quick start puts behind Cachalot.
//   GET /            a JSON document with a counter: cacheable for 60 s
//   GET /time        the current time: cacheable for 5 s
//   GET /uncached    Cache-Control: no-store
//   GET /1k          1 KiB of JSON, cacheable for an hour (the benchmarks' cached object)
//   GET /1k-tagged   the same with five purge tags (Surrogate-Key)
//   GET /slow        answered after 300 ms, cacheable for 60 s (the stampede benchmark's cold key;
//                    vary the query string for a new key)
//   GET /slow-swr    answered after 300 ms, fresh for 1 s, then stale-while-revalidate for an hour
//   GET /stats       {"served":N,"slow":M,"workload":W}: requests answered so far, those to
//                    /slow*, and those to /w/*
//   /w/KEY           a workload object (loadtest/traffic.k6.js, the compose stack), shaped by
//                    its query: ttl=SECONDS (max-age; 0: no-store; default 60), size=BYTES
//                    (default 512), latency=MS (default 0), swr=SECONDS and sie=SECONDS
//                    (stale-while-revalidate, stale-if-error), vary=FIELD (Vary, and the body
//                    names the field's value), fail=PERCENT (that share answered 503). It has an
//                    ETag (a 304 for a matching If-None-Match). With Authorization it is the
//                    user's own: Cache-Control private. POST, PUT, DELETE, PATCH: 204 (an update;
//                    a cache invalidates the URL).
//   POST /errors?percent=P   every /w request fails with 503 at P % from now on (0: off): an
//                    origin outage for stale-if-error
//   anything else    404
// Usage: cachalot-demo-origin [PORT [ADDRESS]]   (default 8081 on 127.0.0.1)

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <ctime>
#include <iostream>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

namespace {

std::atomic<unsigned long> served{0};
std::atomic<unsigned long> slow_served{0};
std::atomic<unsigned long> workload_served{0};
std::atomic<unsigned> error_percent{0};  // POST /errors: the share of /w requests answered 503
constexpr std::chrono::milliseconds kSlowDelay{300};

// A number from the query (`name=123`), or `fallback`.
unsigned long query_number(std::string_view target, std::string_view name, unsigned long fallback) {
    const auto q = target.find('?');
    if (q == std::string_view::npos) return fallback;
    for (auto rest = target.substr(q + 1); !rest.empty();) {
        const auto amp = rest.find('&');
        const auto pair = rest.substr(0, amp);
        if (pair.size() > name.size() && pair.substr(0, name.size()) == name && pair[name.size()] == '=') {
            unsigned long v = 0;
            for (char c : pair.substr(name.size() + 1)) {
                if (c < '0' || c > '9' || v > 100'000'000) return fallback;
                v = v * 10 + static_cast<unsigned long>(c - '0');
            }
            return v;
        }
        rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    }
    return fallback;
}

// A word from the query (`name=Accept-Language`: letters, digits and '-'), or "".
std::string query_word(std::string_view target, std::string_view name) {
    const auto at = target.find(std::string(name) + "=");
    if (at == std::string_view::npos || target.find('?') > at) return "";
    std::string out;
    for (char c : target.substr(at + name.size() + 1)) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') break;
        out += c;
    }
    return out;
}

// How long to hold the answer back.
std::chrono::milliseconds delay_for(const bhttp::request<bhttp::string_body>& req) {
    auto path = req.target().substr(0, req.target().find('?'));
    if (path.starts_with("/w/")) return std::chrono::milliseconds(std::min(query_number(req.target(), "latency", 0), 60'000ul));
    return path == "/slow" || path == "/slow-swr" ? kSlowDelay : std::chrono::milliseconds(0);
}

// /w/KEY: see the top of the file.
void workload(const bhttp::request<bhttp::string_body>& req, bhttp::response<bhttp::string_body>& res) {
    ++workload_served;
    const auto target = req.target();
    const auto path = target.substr(0, target.find('?'));
    const auto method = req.method();
    if (method == bhttp::verb::post || method == bhttp::verb::put || method == bhttp::verb::delete_ ||
        method == bhttp::verb::patch) {
        res.result(bhttp::status::no_content);
        res.set(bhttp::field::cache_control, "no-store");
        return;
    }
    const auto fail = std::max<unsigned long>(query_number(target, "fail", 0), error_percent.load());
    if (fail > 0 && static_cast<unsigned long>(std::rand() % 100) < fail) {
        res.result(bhttp::status::service_unavailable);
        res.set(bhttp::field::cache_control, "no-store");
        res.body() = R"({"error":"the demo origin fails on purpose"})" "\n";
        return;
    }
    const auto ttl = query_number(target, "ttl", 60);
    const auto size = std::min(query_number(target, "size", 512), 16ul * 1024 * 1024);
    std::string cc = ttl == 0 ? "no-store" : (req.count(bhttp::field::authorization) ? "private" : "public");
    if (ttl > 0) {
        cc += ", max-age=" + std::to_string(ttl);
        if (auto swr = query_number(target, "swr", 0)) cc += ", stale-while-revalidate=" + std::to_string(swr);
        if (auto sie = query_number(target, "sie", 0)) cc += ", stale-if-error=" + std::to_string(sie);
    }
    res.set(bhttp::field::cache_control, cc);
    std::string body = R"({"key":")" + std::string(path.substr(3)) + "\"";
    if (const auto vary = query_word(target, "vary"); !vary.empty()) {
        res.set(bhttp::field::vary, vary);
        std::string value;
        for (char c : req[vary])
            if (std::isalnum(static_cast<unsigned char>(c)) || c == '-') value += c;
        body += R"(,"variant":")" + value + "\"";
    }
    body += R"(,"pad":")";
    while (body.size() + 3 < size) body += 'x';
    body += "\"}\n";
    // The same object keeps its ETag: the key and the size.
    const auto etag = "\"" + std::to_string(std::hash<std::string_view>{}(path) ^ size) + "\"";
    res.set(bhttp::field::etag, etag);
    if (req[bhttp::field::if_none_match] == etag) {
        res.result(bhttp::status::not_modified);
        return;
    }
    res.body() = std::move(body);
}

bhttp::response<bhttp::string_body> answer(const bhttp::request<bhttp::string_body>& req) {
    bhttp::response<bhttp::string_body> res{bhttp::status::ok, req.version()};
    res.set(bhttp::field::server, "cachalot-demo-origin");
    res.set(bhttp::field::content_type, "application/json");
    auto n = ++served;
    auto path = req.target().substr(0, req.target().find('?'));
    if (path == "/") {
        res.set(bhttp::field::cache_control, "public, max-age=60");
        res.body() = R"({"message":"hello from the demo origin","origin_requests":)" + std::to_string(n) + "}\n";
    } else if (path == "/time") {
        res.set(bhttp::field::cache_control, "max-age=5");
        res.body() = R"({"unix_time":)" + std::to_string(std::time(nullptr)) + "}\n";
    } else if (path == "/1k" || path == "/1k-tagged") {
        res.set(bhttp::field::cache_control, "public, max-age=3600");
        if (path == "/1k-tagged") res.set("Surrogate-Key", "bench user:42 item:7 list:items team:3");
        std::string body = R"({"items":[)";
        while (body.size() < 990) body += R"("0123456789abcdef",)";
        body += R"("end"]})";
        body.resize(1023, ' ');
        res.body() = body + "\n";
    } else if (path == "/slow" || path == "/slow-swr") {
        ++slow_served;
        res.set(bhttp::field::cache_control,
                path == "/slow" ? "public, max-age=60" : "public, max-age=1, stale-while-revalidate=3600");
        res.body() = R"({"slow":true,"origin_requests":)" + std::to_string(n) + "}\n";
    } else if (path.starts_with("/w/")) {
        workload(req, res);
    } else if (path == "/errors" && req.method() == bhttp::verb::post) {
        error_percent = static_cast<unsigned>(std::min(query_number(req.target(), "percent", 0), 100ul));
        res.set(bhttp::field::cache_control, "no-store");
        res.body() = R"({"error_percent":)" + std::to_string(error_percent.load()) + "}\n";
    } else if (path == "/stats") {
        res.set(bhttp::field::cache_control, "no-store");
        res.body() = R"({"served":)" + std::to_string(n) + R"(,"slow":)" + std::to_string(slow_served.load()) +
                     R"(,"workload":)" + std::to_string(workload_served.load()) + "}\n";
    } else if (path == "/uncached") {
        res.set(bhttp::field::cache_control, "no-store");
        res.body() = R"({"origin_requests":)" + std::to_string(n) + "}\n";
    } else {
        res.result(bhttp::status::not_found);
        res.body() = R"({"error":"not found"})" "\n";
    }
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    if (req.method() == bhttp::verb::head) res.body().clear();
    return res;
}

net::awaitable<void> session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
        bhttp::request<bhttp::string_body> req;
        stream.expires_after(std::chrono::seconds(60));
        auto [ec, n] = co_await bhttp::async_read(stream, buffer, req, net::as_tuple(net::use_awaitable));
        if (ec) break;
        if (auto delay = delay_for(req); delay.count() > 0) {
            net::steady_timer pause(stream.get_executor(), delay);
            co_await pause.async_wait(net::as_tuple(net::use_awaitable));
        }
        auto res = answer(req);
        auto [wec, wn] = co_await bhttp::async_write(stream, res, net::as_tuple(net::use_awaitable));
        if (wec || !res.keep_alive()) break;
    }
}

// Accepts until the acceptor is closed. A failed accept (out of descriptors) pauses and goes on:
// it must neither spin nor end the listener.
net::awaitable<void> listen(tcp::acceptor& acceptor) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(net::as_tuple(net::use_awaitable));
        if (!acceptor.is_open()) co_return;
        if (ec) {
            std::cerr << "demo origin: accept failed: " << ec.message() << std::endl;
            net::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(50));
            co_await pause.async_wait(net::as_tuple(net::use_awaitable));
            continue;
        }
        net::co_spawn(acceptor.get_executor(), session(std::move(socket)), net::detached);
    }
}

int run(unsigned short port, const std::string& address) {
    net::io_context ioc{1};
    tcp::acceptor acceptor(ioc, {net::ip::make_address(address), port});
    // SIGTERM/SIGINT: stop accepting, then stop the loop; requests in flight are dropped (a demo
    // needs no drain). Everything is destroyed in order on the way out of run().
    net::signal_set signals(ioc, SIGTERM, SIGINT);
    signals.async_wait([&](const boost::system::error_code& ec, int) {
        if (ec) return;
        boost::system::error_code ignored;
        acceptor.close(ignored);
        ioc.stop();
    });
    net::co_spawn(ioc, listen(acceptor), net::detached);
    std::cout << "demo origin listening on " << address << ":" << port << std::endl;
    ioc.run();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    unsigned port = 8081;
    std::string address = "127.0.0.1";  // (0.0.0.0 in a container, where Cachalot is another host)
    if (argc > 3 || (argc >= 2 && (std::sscanf(argv[1], "%u", &port) != 1 || port == 0 || port > 65535))) {
        std::cerr << "usage: cachalot-demo-origin [PORT [ADDRESS]]   (1-65535, default 8081 on 127.0.0.1)" << std::endl;
        return 2;
    }
    if (argc == 3) address = argv[2];
    try {
        return run(static_cast<unsigned short>(port), address);
    } catch (const std::exception& e) {
        std::cerr << "cachalot-demo-origin: " << e.what() << std::endl;
        return 1;
    }
}
