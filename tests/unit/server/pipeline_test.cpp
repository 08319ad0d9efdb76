// The request pipeline without sockets or processes: an in-memory L1, a scripted origin and a
// clock the test moves by hand. Freshness boundaries are crossed by whole seconds exactly, and
// concurrency is staged (an origin answer is held until the test releases it), so nothing here
// depends on timing.

#include "cachalot/store/memory_store.hpp"
#include "server/pipeline.hpp"
#include "support/harness.hpp"

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include <set>

using namespace cachalot;
using namespace cachalot::server;
using namespace std::chrono_literals;

namespace {

// What the scripted origin answers: a response, or a failure of the exchange.
struct Scripted {
    unsigned status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    bool unreachable = false;
    bool timed_out = false;
    std::vector<std::string> rest{};  // more of the body, streamed after `body`
    bool rest_fails = false;        // the stream is cut short after `rest`
    bool announce_length = true;    // Content-Length for body + rest (else none: chunked)
};

// The rest of a scripted body, a piece per read; each read waits while `held` (the test's gate).
class ScriptedBody final : public upstream::BodyReader {
public:
    ScriptedBody(Scripted s, const bool& held, net::steady_timer& gate) : s_(std::move(s)), held_(held), gate_(gate) {
        if (s_.announce_length) {
            std::uint64_t n = s_.body.size();
            for (const auto& part : s_.rest) n += part.size();
            length_ = n;
        }
    }
    net::awaitable<beast::error_code> read(std::string& out) override {
        out.clear();
        while (held_) {
            gate_.expires_after(1h);
            co_await gate_.async_wait(net::as_tuple(net::use_awaitable));
        }
        if (next_ < s_.rest.size()) {
            out = s_.rest[next_++];
            co_return beast::error_code{};
        }
        co_return s_.rest_fails ? beast::error_code(net::error::connection_reset) : beast::error_code{};
    }
    std::optional<std::uint64_t> length() const override { return length_; }

private:
    Scripted s_;
    const bool& held_;
    net::steady_timer& gate_;
    std::size_t next_ = 0;
    std::optional<std::uint64_t> length_;
};

// The request as the origin reads it off the wire.
Request parse_sent(const upstream::OriginRequest& sent) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.eager(true);
    beast::error_code ec;
    const std::string wire = sent.head + sent.body;
    parser.put(net::buffer(wire), ec);
    REQUIRE((!ec || ec == bhttp::error::need_more));
    REQUIRE(parser.is_header_done());
    return parser.release();
}

class ScriptedOrigin final : public upstream::Origin {
public:
    explicit ScriptedOrigin(net::io_context& ioc) : ioc_(ioc), gate_(ioc) {}
    std::function<Scripted(const Request&)> script = [](const Request&) { return Scripted{}; };
    std::vector<Request> seen;
    /// Holds every answer until release().
    void hold() { held_ = true; }
    void release() {
        held_ = false;
        gate_.cancel();
    }
    /// Holds every streamed piece of a body until release_body().
    void hold_body() { body_held_ = true; }
    void release_body() {
        body_held_ = false;
        gate_.cancel();
    }

    net::awaitable<upstream::FetchResult> fetch(std::size_t, const upstream::OriginRequest& sent,
                                                upstream::BodyReader*, upstream::InterimSink*) override {
        seen.push_back(parse_sent(sent));
        const Request request = seen.back();  // (seen grows while this one is held)
        while (held_) {
            gate_.expires_after(1h);
            co_await gate_.async_wait(net::as_tuple(net::use_awaitable));
        }
        const auto s = script(request);
        upstream::FetchResult result;
        if (s.unreachable || s.timed_out) {
            result.error = s.timed_out ? metrics::UpstreamError::Timeout : metrics::UpstreamError::Connect;
            co_return result;
        }
        Response res{static_cast<bhttp::status>(s.status), 11};
        for (const auto& [n, v] : s.headers) res.insert(n, v);
        res.body() = s.body;
        res.prepare_payload();
        if (!s.rest.empty() || s.rest_fails) result.rest = std::make_unique<ScriptedBody>(s, body_held_, gate_);
        result.response = std::move(res);
        co_return result;
    }
    net::any_io_executor executor() const override { return ioc_.get_executor(); }

private:
    net::io_context& ioc_;
    net::steady_timer gate_;
    bool held_ = false;
    bool body_held_ = false;
};

config::Config make_config(std::function<void(config::RouteCache&)> tune) {
    config::Config cfg;
    config::Upstream up;
    up.name = "origin";
    up.servers.push_back({"127.0.0.1"});
    cfg.upstreams.push_back(up);
    config::Route route;
    route.name = "api";
    route.upstream = "origin";
    if (tune) tune(route.cache);
    cfg.routes.push_back(route);
    return cfg;
}

struct Pipe {
    explicit Pipe(std::function<void(config::RouteCache&)> tune = {}, cache::FetchLock::Options lock = {})
        : cfg(make_config(std::move(tune))),
          l1(store::MemoryStore::Options{.now = [this] { return clock; }}),
          origin(ioc),
          pipeline(cfg, origin, cache::TieredCache(&l1, nullptr, &purges.table()), cache::FetchLock(coalescer, nullptr, lock),
                   metrics, budget, [this] { return clock; }) {}

    // A quarter second past a whole second: whole-second steps land far from every boundary.
    core::WallMillis clock = 1'700'000'000'250;
    void advance(std::chrono::seconds s) { clock += std::chrono::milliseconds(s).count(); }

    // Starts a request; its answer appears in the returned slot once the loop has run.
    std::shared_ptr<std::optional<Response>> start(bhttp::verb method, std::string target,
                                                   std::vector<std::pair<std::string, std::string>> headers = {},
                                                   std::string body = {}) {
        auto out = std::make_shared<std::optional<Response>>();
        auto request = std::make_shared<Request>(method, target, 11);
        request->set(bhttp::field::host, "api.example");
        for (const auto& [n, v] : headers) request->insert(n, v);
        request->body() = std::move(body);
        request->prepare_payload();
        net::co_spawn(
            ioc,
            [this, request, out]() -> net::awaitable<void> {
                const ClientInfo client{"192.0.2.7", *http::parse_authority("api.example")};
                auto answer = co_await pipeline.handle(*request, client);
                *out = std::move(answer.response);
                // A streamed body is read to its end, each piece appended as it comes; how it
                // ended is marked for the test (X-Test-Stream: complete | truncated).
                while (answer.stream) {
                    auto piece = co_await answer.stream->next();
                    if (!piece.bytes.empty()) {
                        (*out)->body().append(piece.bytes);
                        continue;
                    }
                    const bool complete = answer.stream->complete();
                    (*out)->set("X-Test-Stream", complete ? "complete" : "truncated");
                    answer.stream.reset();
                }
            },
            net::detached);
        return out;
    }
    // Runs a request, and whatever it started (background revalidations), to the end.
    Response request(bhttp::verb method, std::string target,
                     std::vector<std::pair<std::string, std::string>> headers = {}, std::string body = {}) {
        auto out = start(method, std::move(target), std::move(headers), std::move(body));
        run();
        REQUIRE(*out);
        return std::move(**out);
    }
    Response get(std::string target, std::vector<std::pair<std::string, std::string>> headers = {}) {
        return request(bhttp::verb::get, std::move(target), std::move(headers));
    }
    void run() {
        ioc.restart();
        ioc.run();
    }

    config::Config cfg;
    metrics::Metrics metrics{{"api"}, {"origin"}};
    core::ByteBudget budget{1 << 30};
    store::MemoryStore l1;
    store::MemoryPurgeTable purges;
    cache::Coalescer coalescer;
    net::io_context ioc;
    ScriptedOrigin origin;
    Pipeline pipeline;
};

std::string status_of(const Response& r) { return std::string(r["Cache-Status"]); }

void purge(Pipe& p, cache::PurgeKind kind, std::string_view origin, std::string_view what, cache::PurgeMode mode) {
    cache::purge(p.purges.table(), cache::purge_scope(kind, origin, what), mode, p.clock);
}

}  // namespace

TEST_CASE("pipeline: fresh until max-age, then revalidated with its ETag, a 304 refreshes it", "[pipeline]") {
    Pipe p;
    p.origin.script = [](const Request& r) {
        if (r[bhttp::field::if_none_match] == "\"v1\"")
            return Scripted{304, {{"Cache-Control", "max-age=60"}, {"ETag", "\"v1\""}, {"X-Seen", "2"}}, ""};
        return Scripted{200, {{"Cache-Control", "max-age=60"}, {"ETag", "\"v1\""}, {"X-Seen", "1"}}, "one"};
    };
    auto first = p.get("/a");
    CHECK(status_of(first) == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=60");
    p.advance(59s);
    auto hit = p.get("/a");
    CHECK(status_of(hit) == "cachalot; hit; ttl=1");
    CHECK(hit[bhttp::field::age] == "59");
    CHECK(p.origin.seen.size() == 1);

    p.advance(1s);  // age 60 = max-age: stale
    auto revalidated = p.get("/a");
    REQUIRE(p.origin.seen.size() == 2);
    CHECK(p.origin.seen[1][bhttp::field::if_none_match] == "\"v1\"");
    CHECK(revalidated.result_int() == 200);
    CHECK(revalidated.body() == "one");
    CHECK(revalidated["X-Seen"] == "2");  // the 304's fields replace the stored ones
    CHECK(status_of(revalidated) == "cachalot; fwd=stale; fwd-status=304; stored; ttl=60");
    CHECK(status_of(p.get("/a")) == "cachalot; hit; ttl=60");
    CHECK(test::metric_value(p.metrics.serialize(), "cachalot_cache_requests_total{result=\"revalidated\",route=\"api\"}") ==
          1);
}

TEST_CASE("pipeline: request max-age and min-fresh narrow what a hit may be, and an expired response is fetched "
          "again",
          "[pipeline]") {
    Pipe p;
    int n = 0;
    p.origin.script = [&](const Request&) {
        return Scripted{200, {{"Cache-Control", "max-age=60"}}, "response " + std::to_string(++n)};
    };
    p.get("/m");
    CHECK(p.get("/m", {{"Cache-Control", "min-fresh=30"}}).body() == "response 1");
    auto too_short = p.get("/m", {{"Cache-Control", "min-fresh=120"}});
    CHECK(too_short.body() == "response 2");
    CHECK(status_of(too_short) == "cachalot; fwd=request; fwd-status=200; stored; ttl=60");
    p.advance(2s);
    CHECK(p.get("/m", {{"Cache-Control", "max-age=1"}}).body() == "response 3");  // 2 s old: too old for it
    CHECK(p.get("/m", {{"Cache-Control", "max-age=1"}}).body() == "response 3");  // just stored: young enough
    p.advance(60s);
    auto expired = p.get("/m");
    CHECK(expired.body() == "response 4");
    CHECK(status_of(expired) == "cachalot; fwd=stale; fwd-status=200; stored; ttl=60");
}

TEST_CASE("pipeline: request max-stale is served a stale response but must-revalidate forbids it", "[pipeline]") {
    Pipe p;
    p.origin.script = [](const Request& r) {
        const char* cc = r.target() == "/strict" ? "max-age=10, must-revalidate" : "max-age=10";
        return Scripted{200, {{"Cache-Control", cc}}, "v"};
    };
    p.get("/lenient");
    p.get("/strict");
    p.advance(15s);
    CHECK(status_of(p.get("/lenient", {{"Cache-Control", "max-stale=60"}})) == "cachalot; hit; ttl=-5");
    CHECK(status_of(p.get("/strict", {{"Cache-Control", "max-stale=60"}})) ==
          "cachalot; fwd=stale; fwd-status=200; stored; ttl=10");
    CHECK(p.origin.seen.size() == 3);
}

TEST_CASE("pipeline: the client's own conditional request is answered 304 from a fresh stored response",
          "[pipeline]") {
    Pipe p;
    p.origin.script = [](const Request&) { return Scripted{200, {{"Cache-Control", "max-age=60"}, {"ETag", "\"e\""}}, "x"}; };
    p.get("/c");
    auto res = p.get("/c", {{"If-None-Match", "\"e\""}});
    CHECK(res.result_int() == 304);
    CHECK(res.body().empty());
    CHECK(p.origin.seen.size() == 1);
}

TEST_CASE("pipeline: stale-while-revalidate serves the stale copy at once and revalidates it once in the background",
          "[pipeline]") {
    Pipe p;
    int n = 0;
    p.origin.script = [&](const Request& r) {
        ++n;
        if (r[bhttp::field::if_none_match] == "\"v1\"")  // still current, and now fresh for a minute
            return Scripted{304, {{"Cache-Control", "max-age=60"}, {"ETag", "\"v1\""}}, ""};
        return Scripted{200, {{"Cache-Control", "max-age=10, stale-while-revalidate=60"}, {"ETag", "\"v1\""}},
                        "response " + std::to_string(n)};
    };
    p.get("/swr");
    p.advance(15s);
    p.origin.hold();  // the revalidation stays at the origin while ten clients are answered
    std::vector<std::shared_ptr<std::optional<Response>>> stale;
    for (int i = 0; i < 10; ++i) stale.push_back(p.start(bhttp::verb::get, "/swr"));
    p.ioc.restart();
    p.ioc.poll();
    for (auto& r : stale) {
        REQUIRE(*r);
        CHECK((*r)->result_int() == 200);
        CHECK((*r)->body() == "response 1");
        CHECK(status_of(**r) == "cachalot; hit; ttl=-5; detail=stale-while-revalidate");
    }
    REQUIRE(p.origin.seen.size() == 2);  // exactly one revalidation under way
    CHECK(p.origin.seen[1][bhttp::field::if_none_match] == "\"v1\"");  // conditional: validators were stored
    p.origin.release();
    p.run();
    auto after = p.get("/swr");
    CHECK(after.body() == "response 1");  // the 304 kept the stored body, now fresh again
    CHECK(status_of(after) == "cachalot; hit; ttl=60");
    CHECK(p.origin.seen.size() == 2);
    const auto metrics = p.metrics.serialize();
    CHECK(test::metric_value(metrics, "cachalot_background_revalidations_total{route=\"api\"}") == 1);
    CHECK(test::metric_value(metrics, "cachalot_stale_served_total{reason=\"stale-while-revalidate\",route=\"api\"}") ==
          10);
    CHECK(test::metric_value(metrics, "cachalot_cache_requests_total{result=\"revalidated\",route=\"api\"}") == 1);
}

TEST_CASE("pipeline: a route's stale_while_revalidate applies to responses that set none, and without it a stale "
          "response waits for the origin",
          "[pipeline]") {
    for (const bool route_swr : {true, false}) {
        INFO("route stale_while_revalidate " << route_swr);
        Pipe p([&](config::RouteCache& c) {
            if (route_swr) c.stale_while_revalidate = 30s;
        });
        int n = 0;
        p.origin.script = [&](const Request&) {
            return Scripted{200, {{"Cache-Control", "max-age=10"}}, "response " + std::to_string(++n)};
        };
        p.get("/x");
        p.advance(15s);
        auto res = p.get("/x");
        if (route_swr) {
            CHECK(res.body() == "response 1");
            CHECK(status_of(res) == "cachalot; hit; ttl=-5; detail=stale-while-revalidate");
            p.advance(45s);  // the background refresh (stored at +15 s) is now 35 s stale: past the window
            CHECK(status_of(p.get("/x")) == "cachalot; fwd=stale; fwd-status=200; stored; ttl=10");
        } else {
            CHECK(res.body() == "response 2");
            CHECK(status_of(res) == "cachalot; fwd=stale; fwd-status=200; stored; ttl=10");
        }
    }
}

TEST_CASE("pipeline: a failed origin is answered by stale-if-error, then grace, then the error goes through",
          "[pipeline]") {
    Pipe p([](config::RouteCache& c) {
        c.stale_if_error = 20s;
        c.grace = 100s;
    });
    bool down = false, unreachable = false;
    p.origin.script = [&](const Request&) {
        if (unreachable) return Scripted{200, {}, "", true};
        if (down) return Scripted{503, {}, "down"};
        return Scripted{200, {{"Cache-Control", "max-age=10"}}, "good"};
    };
    p.get("/e");
    down = true;
    p.advance(15s);
    auto sie = p.get("/e");
    CHECK(sie.body() == "good");
    CHECK(status_of(sie) == "cachalot; fwd=stale; fwd-status=503; detail=stale-if-error");
    unreachable = true;
    p.advance(50s);  // 55 s stale: past stale-if-error, within grace
    auto grace = p.get("/e");
    CHECK(grace.body() == "good");
    CHECK(status_of(grace) == "cachalot; fwd=stale; detail=grace");
    p.advance(100s);
    auto gone = p.get("/e");
    CHECK(gone.result_int() == 502);
    CHECK(status_of(gone) == "cachalot; fwd=stale; detail=origin-unavailable");
    down = unreachable = false;
    CHECK(p.get("/e").body() == "good");
}

TEST_CASE("pipeline: stale-if-error answers a 503, a timeout and an unreachable origin, within its window only",
          "[pipeline]") {
    Pipe p;
    enum { Fine, Error, Slow, Down } mode = Fine;
    p.origin.script = [&](const Request&) {
        if (mode == Error) return Scripted{503, {}, "down"};
        if (mode == Slow) return Scripted{200, {}, "", false, true};
        if (mode == Down) return Scripted{200, {}, "", true};
        return Scripted{200, {{"Cache-Control", "max-age=10, stale-if-error=30"}}, "response 1"};
    };
    p.get("/sie");
    p.advance(15s);
    mode = Error;
    auto on_503 = p.get("/sie");
    CHECK(on_503.result_int() == 200);
    CHECK(on_503.body() == "response 1");
    CHECK(status_of(on_503) == "cachalot; fwd=stale; fwd-status=503; detail=stale-if-error");
    mode = Slow;
    auto on_timeout = p.get("/sie");
    CHECK(on_timeout.body() == "response 1");
    CHECK(status_of(on_timeout) == "cachalot; fwd=stale; detail=stale-if-error");
    mode = Down;
    CHECK(p.get("/sie").body() == "response 1");
    p.advance(30s);  // 35 s stale: past the window
    auto after = p.get("/sie");
    CHECK(after.result_int() == 502);
    CHECK(status_of(after) == "cachalot; fwd=stale; detail=origin-unavailable");
    mode = Slow;
    CHECK(p.get("/sie").result_int() == 504);
    CHECK(test::metric_value(p.metrics.serialize(),
                             "cachalot_stale_served_total{reason=\"stale-if-error\",route=\"api\"}") == 3);
}

TEST_CASE("pipeline: stale-if-error from the request, and from the route, when the response says nothing",
          "[pipeline]") {
    for (const bool route_window : {false, true}) {
        INFO("route stale_if_error " << route_window);
        Pipe p([&](config::RouteCache& c) {
            if (route_window) c.stale_if_error = 60s;
        });
        bool down = false;
        p.origin.script = [&](const Request&) {
            if (down) return Scripted{500, {}, "broken"};
            return Scripted{200, {{"Cache-Control", "max-age=10"}}, "response 1"};
        };
        p.get("/r");
        p.advance(15s);
        down = true;
        if (route_window) {
            auto res = p.get("/r");
            CHECK(res.result_int() == 200);
            CHECK(res.body() == "response 1");
        } else {
            CHECK(p.get("/r").result_int() == 500);  // no window anywhere: the error goes through
            CHECK(p.get("/r", {{"Cache-Control", "stale-if-error=60"}}).body() == "response 1");
        }
    }
}

TEST_CASE("pipeline: grace serves a stored response while the origin is down, whatever its directives",
          "[pipeline]") {
    for (const bool grace : {true, false}) {
        INFO("grace " << grace);
        Pipe p([&](config::RouteCache& c) {
            if (grace) c.grace = 60s;
            else c.stale_if_error = 60s;
        });
        bool down = false;
        p.origin.script = [&](const Request&) {
            if (down) return Scripted{200, {}, "", true};
            return Scripted{200, {{"Cache-Control", "max-age=10, must-revalidate"}}, "response 1"};
        };
        p.get("/g");
        p.advance(15s);
        down = true;
        auto res = p.get("/g");
        if (grace) {
            CHECK(res.result_int() == 200);
            CHECK(res.body() == "response 1");
            CHECK(status_of(res) == "cachalot; fwd=stale; detail=grace");
            CHECK(test::metric_value(p.metrics.serialize(),
                                     "cachalot_stale_served_total{reason=\"grace\",route=\"api\"}") == 1);
        } else {
            CHECK(res.result_int() == 502);  // must-revalidate forbids stale-if-error
        }
    }
}

TEST_CASE("pipeline: concurrent misses of one key make one origin request, the others are collapsed",
          "[pipeline]") {
    Pipe p;
    p.origin.script = [](const Request&) { return Scripted{200, {{"Cache-Control", "max-age=60"}}, "shared"}; };
    p.origin.hold();
    std::vector<std::shared_ptr<std::optional<Response>>> out;
    for (int i = 0; i < 3; ++i) out.push_back(p.start(bhttp::verb::get, "/hot"));
    p.ioc.restart();
    p.ioc.poll();  // all three are in: one at the origin, two waiting on it
    CHECK(p.origin.seen.size() == 1);
    CHECK(p.coalescer.in_flight() == 1);
    p.origin.release();
    p.run();
    int collapsed = 0;
    for (auto& r : out) {
        REQUIRE(*r);
        CHECK((*r)->body() == "shared");
        if (status_of(**r) == "cachalot; fwd=uri-miss; fwd-status=200; collapsed; ttl=60") ++collapsed;
    }
    CHECK(collapsed == 2);
    CHECK(p.origin.seen.size() == 1);
}

TEST_CASE("pipeline: a collapsed request of another variant fetches on its own, and both variants stay stored",
          "[pipeline]") {
    Pipe p;
    p.origin.script = [](const Request& r) {
        return Scripted{200, {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Language"}},
                        "lang:" + std::string(r["Accept-Language"])};
    };
    p.origin.hold();
    auto de = p.start(bhttp::verb::get, "/v", {{"Accept-Language", "de"}});
    auto en = p.start(bhttp::verb::get, "/v", {{"Accept-Language", "en"}});
    p.ioc.restart();
    p.ioc.poll();
    p.origin.release();
    p.run();
    REQUIRE(*de);
    REQUIRE(*en);
    CHECK((*de)->body() == "lang:de");
    CHECK((*en)->body() == "lang:en");
    CHECK(p.origin.seen.size() == 2);
    // Both variants are stored, each served to its own request.
    CHECK(p.get("/v", {{"Accept-Language", "en"}}).body() == "lang:en");
    CHECK(p.get("/v", {{"Accept-Language", "de"}}).body() == "lang:de");
    CHECK(status_of(p.get("/v", {{"Accept-Language", "fr"}})) ==
          "cachalot; fwd=vary-miss; fwd-status=200; stored; ttl=60");
    CHECK(p.origin.seen.size() == 3);
}

TEST_CASE("pipeline: a successful unsafe request drops the stored response of its URI, a failed one does not",
          "[pipeline]") {
    Pipe p;
    unsigned post_status = 500;
    p.origin.script = [&](const Request& r) {
        if (r.method() == bhttp::verb::post) return Scripted{post_status, {}, "posted"};
        return Scripted{200, {{"Cache-Control", "max-age=60"}}, "item"};
    };
    p.get("/item");
    auto failed = p.request(bhttp::verb::post, "/item", {}, "x");
    CHECK(status_of(failed) == "cachalot; fwd=bypass");
    CHECK(p.origin.seen.back().body() == "x");
    CHECK(status_of(p.get("/item")) == "cachalot; hit; ttl=60");
    post_status = 201;
    p.request(bhttp::verb::post, "/item", {}, "x");
    CHECK(status_of(p.get("/item")) == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=60");
}

TEST_CASE("pipeline: only-if-cached with nothing stored gets 504 without asking the origin", "[pipeline]") {
    Pipe p;
    auto res = p.get("/none", {{"Cache-Control", "only-if-cached"}});
    CHECK(res.result_int() == 504);
    CHECK(status_of(res) == "cachalot; fwd=uri-miss; detail=only-if-cached");
    CHECK(p.origin.seen.empty());
}

TEST_CASE("pipeline: a GET with a body is forwarded with it and never stored", "[pipeline]") {
    Pipe p;
    p.origin.script = [](const Request&) { return Scripted{200, {{"Cache-Control", "max-age=60"}}, "found"}; };
    auto res = p.request(bhttp::verb::get, "/search", {}, "{\"q\":1}");
    CHECK(status_of(res) == "cachalot; fwd=bypass; detail=request-body");
    CHECK(p.origin.seen.back().body() == "{\"q\":1}");
    CHECK(status_of(p.get("/search")) == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=60");
}

TEST_CASE("pipeline: a HEAD is answered from a stored GET, a HEAD miss is not stored", "[pipeline]") {
    Pipe p;
    p.origin.script = [](const Request&) { return Scripted{200, {{"Cache-Control", "max-age=60"}}, "12345"}; };
    auto head_miss = p.request(bhttp::verb::head, "/h");
    CHECK(status_of(head_miss) == "cachalot; fwd=uri-miss; fwd-status=200; detail=head");
    CHECK(p.origin.seen[0].method() == bhttp::verb::head);  // a HEAD miss stays a HEAD
    p.get("/h");
    auto head_hit = p.request(bhttp::verb::head, "/h");
    CHECK(status_of(head_hit) == "cachalot; hit; ttl=60");
    CHECK(head_hit.body().empty());
    CHECK(head_hit[bhttp::field::content_length] == "5");
}

TEST_CASE("pipeline: the origin request is a new message: forwarding fields added, the client's left alone",
          "[pipeline]") {
    Pipe p;
    p.get("/f", {{"X-Forwarded-For", "203.0.113.1"}, {"X-HTTP-Method-Override", "DELETE"}});
    REQUIRE(p.origin.seen.size() == 1);
    const auto& sent = p.origin.seen[0];
    CHECK(sent["X-Forwarded-For"] == "203.0.113.1, 192.0.2.7");
    CHECK(sent["Via"] == "1.1 cachalot");
    CHECK(sent.count("X-HTTP-Method-Override") == 0);  // the route's default strip list
    CHECK(sent[bhttp::field::host] == "api.example");
}

TEST_CASE("pipeline: a stale response with only Last-Modified is revalidated with If-Modified-Since", "[pipeline]") {
    Pipe p;
    const std::string last_modified = "Tue, 14 Nov 2023 21:00:00 GMT";
    p.origin.script = [&](const Request& r) {
        if (r[bhttp::field::if_modified_since] == last_modified)
            return Scripted{304, {{"Cache-Control", "max-age=60"}, {"X-Refreshed", "2"}}, ""};
        return Scripted{200, {{"Cache-Control", "max-age=10"}, {"Last-Modified", last_modified}}, "body 1"};
    };
    p.get("/r");
    p.advance(15s);
    auto revalidated = p.get("/r");
    REQUIRE(p.origin.seen.size() == 2);
    CHECK(p.origin.seen[1][bhttp::field::if_modified_since] == last_modified);
    CHECK(p.origin.seen[1].count(bhttp::field::if_none_match) == 0);
    CHECK(revalidated.body() == "body 1");
    CHECK(revalidated["X-Refreshed"] == "2");
    CHECK(status_of(revalidated) == "cachalot; fwd=stale; fwd-status=304; stored; ttl=60");
}

TEST_CASE("pipeline: a 200 answer to a revalidation replaces the stored response", "[pipeline]") {
    Pipe p;
    int n = 0;
    p.origin.script = [&](const Request&) {
        return Scripted{200, {{"Cache-Control", "max-age=10"}, {"ETag", "\"v" + std::to_string(++n) + "\""}},
                        "body " + std::to_string(n)};
    };
    p.get("/r");
    p.advance(15s);
    auto replaced = p.get("/r");
    CHECK(p.origin.seen[1][bhttp::field::if_none_match] == "\"v1\"");
    CHECK(replaced.body() == "body 2");
    CHECK(status_of(replaced) == "cachalot; fwd=stale; fwd-status=200; stored; ttl=10");
    auto hit = p.get("/r");
    CHECK(hit.body() == "body 2");
    CHECK(hit[bhttp::field::etag] == "\"v2\"");
    CHECK(p.origin.seen.size() == 2);
}

TEST_CASE("pipeline: route status_ttl caches negative answers the origin gave no freshness", "[pipeline]") {
    Pipe p([](config::RouteCache& c) { c.status_ttl = {{404, 30s}}; });
    p.origin.script = [](const Request&) { return Scripted{404, {}, "nothing"}; };
    CHECK(status_of(p.get("/gone")) == "cachalot; fwd=uri-miss; fwd-status=404; stored; ttl=30");
    p.advance(29s);
    auto hit = p.get("/gone");
    CHECK(hit.result_int() == 404);
    CHECK(status_of(hit) == "cachalot; hit; ttl=1");
    CHECK(p.origin.seen.size() == 1);
}

TEST_CASE("pipeline: route default_ttl applies when the origin says nothing, and never over the origin's own",
          "[pipeline]") {
    Pipe p([](config::RouteCache& c) { c.default_ttl = 90s; });
    p.origin.script = [](const Request& r) {
        if (r.target() == "/max-age") return Scripted{200, {{"Cache-Control", "max-age=60"}}, "x"};
        return Scripted{200, {}, "x"};
    };
    CHECK(status_of(p.get("/other")) == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=90");
    CHECK(status_of(p.get("/max-age")) == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=60");
}

TEST_CASE("pipeline: route override_origin replaces the origin's freshness, never its no-store, and max_ttl caps "
          "every lifetime",
          "[pipeline]") {
    auto script = [](const Request& r) {
        if (r.target() == "/no-store") return Scripted{200, {{"Cache-Control", "max-age=60, no-store"}}, "x"};
        return Scripted{200, {{"Cache-Control", "max-age=60"}}, "x"};
    };
    Pipe overriding([](config::RouteCache& c) {
        c.default_ttl = 90s;
        c.override_origin = true;
    });
    overriding.origin.script = script;
    CHECK(status_of(overriding.get("/max-age")) == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=90");
    CHECK(status_of(overriding.get("/no-store")) == "cachalot; fwd=uri-miss; fwd-status=200; detail=no-store");
    Pipe capped([](config::RouteCache& c) { c.max_ttl = 10s; });
    capped.origin.script = script;
    CHECK(status_of(capped.get("/max-age")) == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=10");
    capped.advance(11s);
    CHECK(status_of(capped.get("/max-age")) == "cachalot; fwd=stale; fwd-status=200; stored; ttl=10");
}

TEST_CASE("pipeline: Vary keeps several variants of one URL, each served only to matching requests", "[pipeline]") {
    Pipe p;
    p.origin.script = [](const Request& r) {
        return Scripted{200, {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Language"}},
                        "lang " + std::string(r["Accept-Language"])};
    };
    auto get = [&](const char* lang) { return p.get("/vary", {{"Accept-Language", lang}}); };
    CHECK(get("en").body() == "lang en");
    auto fr = get("fr");
    CHECK(fr.body() == "lang fr");
    CHECK(status_of(fr) == "cachalot; fwd=vary-miss; fwd-status=200; stored; ttl=60");
    auto en_again = get("en");
    CHECK(en_again.body() == "lang en");
    CHECK(status_of(en_again) == "cachalot; hit; ttl=60");
    CHECK(get("fr").body() == "lang fr");
    CHECK(p.origin.seen.size() == 2);
    CHECK(get("de").body() == "lang de");
    CHECK(p.origin.seen.size() == 3);
}

TEST_CASE("pipeline: Vary compares the nominated fields after normalization", "[pipeline]") {
    Pipe p;
    p.origin.script = [](const Request&) {
        return Scripted{200, {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Encoding, X-Flags"}}, "v"};
    };
    p.get("/", {{"Accept-Encoding", "gzip, br"}, {"X-Flags", "a,b"}});
    auto same = p.get("/", {{"Accept-Encoding", "br;q=1, gzip, deflate"}, {"X-Flags", "b, a"}});
    CHECK(status_of(same) == "cachalot; hit; ttl=60");
    CHECK(p.origin.seen.size() == 1);
}

TEST_CASE("pipeline: Vary: * is never stored", "[pipeline]") {
    Pipe p;
    p.origin.script = [](const Request&) {
        return Scripted{200, {{"Cache-Control", "max-age=60"}, {"Vary", "*"}}, "v"};
    };
    CHECK(status_of(p.get("/")) == "cachalot; fwd=uri-miss; fwd-status=200; detail=vary-star");
    p.get("/");
    CHECK(p.origin.seen.size() == 2);
}

TEST_CASE("pipeline: an unsafe request invalidates every Vary variant of its URI", "[pipeline]") {
    Pipe p;
    p.origin.script = [](const Request& r) {
        if (r.method() == bhttp::verb::put) return Scripted{200, {}, "put"};
        return Scripted{200, {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Language"}},
                        "lang " + std::string(r["Accept-Language"])};
    };
    p.get("/vary", {{"Accept-Language", "en"}});
    p.get("/vary", {{"Accept-Language", "fr"}});
    CHECK(p.request(bhttp::verb::put, "/vary", {}, "x").result_int() == 200);
    p.get("/vary", {{"Accept-Language", "en"}});  // stored again, under a new epoch
    auto fr = p.get("/vary", {{"Accept-Language", "fr"}});
    CHECK(status_of(fr) == "cachalot; fwd=vary-miss; fwd-status=200; stored; ttl=60");
    CHECK(p.origin.seen.size() == 5);
}

TEST_CASE("pipeline: requests collapsed on a response that is not stored go to the origin on their own",
          "[pipeline]") {
    Pipe p;
    int n = 0;
    p.origin.script = [&](const Request&) {
        return Scripted{200, {{"Cache-Control", "private, max-age=60"}}, "for you alone " + std::to_string(++n)};
    };
    p.origin.hold();
    std::vector<std::shared_ptr<std::optional<Response>>> out;
    for (int i = 0; i < 3; ++i) out.push_back(p.start(bhttp::verb::get, "/mine"));
    p.ioc.restart();
    p.ioc.poll();
    CHECK(p.origin.seen.size() == 1);  // the others wait on the first
    p.origin.release();
    p.run();
    std::set<std::string> bodies;
    for (auto& r : out) {
        REQUIRE(*r);
        CHECK((*r)->result_int() == 200);
        CHECK_THAT(status_of(**r), Catch::EndsWith("detail=private"));
        bodies.insert((*r)->body());
    }
    CHECK(bodies.size() == 3);  // nobody got someone else's private response
    CHECK(p.origin.seen.size() == 3);
}

TEST_CASE("pipeline: a waiter goes to the origin on its own after coalesce_timeout", "[pipeline]") {
    cache::FetchLock::Options lock;
    lock.wait_timeout = 200ms;
    Pipe p({}, lock);
    p.origin.script = [](const Request&) { return Scripted{200, {{"Cache-Control", "max-age=60"}}, "x"}; };
    p.origin.hold();
    std::vector<std::shared_ptr<std::optional<Response>>> out;
    for (int i = 0; i < 3; ++i) out.push_back(p.start(bhttp::verb::get, "/slow"));
    p.ioc.restart();
    p.ioc.poll();
    CHECK(p.origin.seen.size() == 1);
    // The first answer is held: the waiters' own timers are what sends them to the origin.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (p.origin.seen.size() < 3 && std::chrono::steady_clock::now() < deadline) p.ioc.run_one_for(100ms);
    CHECK(p.origin.seen.size() == 3);
    p.origin.release();
    p.run();
    for (auto& r : out) {
        REQUIRE(*r);
        CHECK((*r)->result_int() == 200);
    }
}

TEST_CASE("pipeline: Age includes the Age the origin sent and the time the origin took to answer", "[pipeline]") {
    Pipe p;
    p.origin.script = [&](const Request&) {
        p.clock += 1'200;  // the origin takes 1.2 s
        return Scripted{200, {{"Cache-Control", "max-age=600"}, {"Age", "100"}}, "slow"};
    };
    p.get("/slow");
    auto hit = p.get("/slow");
    CHECK(status_of(hit) == "cachalot; hit; ttl=499");
    CHECK(hit[bhttp::field::age] == "101");  // 100 from upstream + 1 s of response delay
}

TEST_CASE("pipeline: a response that took most of a second to arrive is not aged a whole second", "[pipeline]") {
    // Asked at x.250 s, answered at (x+1).150 s: 900 ms. Taking the difference of the two
    // readings rounded to seconds would make it a second old, and with max-age=1 stale on arrival.
    Pipe p;
    p.origin.script = [&](const Request&) {
        p.clock += 900;
        return Scripted{200, {{"Cache-Control", "max-age=1"}}, "slow"};
    };
    CHECK(status_of(p.get("/slow")) == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=1");
    CHECK(status_of(p.get("/slow")) == "cachalot; hit; ttl=1");
}

TEST_CASE("pipeline: a hard purge of a URL makes every Vary variant of it a miss, and what is fetched after "
          "it is kept",
          "[pipeline][purge]") {
    Pipe p;
    int n = 0;
    p.origin.script = [&](const Request& r) {
        return Scripted{200, {{"Cache-Control", "max-age=600"}, {"Vary", "Accept-Language"}},
                        std::string(r["Accept-Language"]) + " " + std::to_string(++n)};
    };
    p.get("/v?b=2&a=1", {{"Accept-Language", "en"}});
    p.get("/v?a=1&b=2", {{"Accept-Language", "fr"}});
    p.advance(1s);
    purge(p, cache::PurgeKind::Url, "", "http://api.example/v?a=1&b=2", cache::PurgeMode::Hard);
    p.advance(1s);  // (a fetch in the purge's own millisecond is covered by it too)
    auto en = p.get("/v?a=1&b=2", {{"Accept-Language", "en"}});
    CHECK(en.body() == "en 3");
    CHECK(status_of(en) == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=600");
    CHECK(p.get("/v?a=1&b=2", {{"Accept-Language", "fr"}}).body() == "fr 4");
    // Fetched after the purge: kept.
    CHECK(status_of(p.get("/v?a=1&b=2", {{"Accept-Language", "en"}})) == "cachalot; hit; ttl=600");
    CHECK(test::metric_value(p.metrics.serialize(), R"(cachalot_purged_lookups_total{route="api",verdict="gone"})") ==
          2);
}

TEST_CASE("pipeline: a soft purge within stale-while-revalidate serves the stale copy and revalidates it in the "
          "background",
          "[pipeline][purge]") {
    Pipe p([](config::RouteCache& c) { c.stale_while_revalidate = 30s; });
    p.origin.script = [](const Request& r) {
        if (r[bhttp::field::if_none_match] == "\"v1\"")
            return Scripted{304, {{"Cache-Control", "max-age=600"}, {"ETag", "\"v1\""}}, ""};
        return Scripted{200, {{"Cache-Control", "max-age=600"}, {"ETag", "\"v1\""}, {"Surrogate-Key", "user:42"}},
                        "profile"};
    };
    auto first = p.get("/users/42");
    CHECK(first.count("Surrogate-Key") == 0);  // tag fields are for this cache: stripped by default
    p.advance(5s);
    purge(p, cache::PurgeKind::Tag, "", "user:42", cache::PurgeMode::Soft);
    p.advance(10s);
    auto stale = p.get("/users/42");
    CHECK(stale.body() == "profile");
    CHECK(status_of(stale) == "cachalot; hit; ttl=-10; detail=stale-while-revalidate");
    REQUIRE(p.origin.seen.size() == 2);  // the background revalidation
    CHECK(p.origin.seen[1][bhttp::field::if_none_match] == "\"v1\"");
    CHECK(status_of(p.get("/users/42")) == "cachalot; hit; ttl=600");  // current again
    CHECK(test::metric_value(p.metrics.serialize(), R"(cachalot_purged_lookups_total{route="api",verdict="stale"})") ==
          1);
}

TEST_CASE("pipeline: a soft-purged response past its stale windows is revalidated before it is served",
          "[pipeline][purge]") {
    Pipe p;
    p.origin.script = [](const Request& r) {
        if (r[bhttp::field::if_none_match] == "\"v1\"")
            return Scripted{304, {{"Cache-Control", "max-age=600"}, {"ETag", "\"v1\""}}, ""};
        return Scripted{200, {{"Cache-Control", "max-age=600"}, {"ETag", "\"v1\""}, {"Cache-Tag", "a, b"}}, "x"};
    };
    p.get("/x");
    p.advance(1s);
    purge(p, cache::PurgeKind::Tag, "", "b", cache::PurgeMode::Soft);
    p.advance(1s);
    auto res = p.get("/x");
    CHECK(status_of(res) == "cachalot; fwd=stale; fwd-status=304; stored; ttl=600");
    CHECK(res.body() == "x");
    CHECK(status_of(p.get("/x")) == "cachalot; hit; ttl=600");
}

TEST_CASE("pipeline: repeated soft purges never keep a response alive longer than the first one did",
          "[pipeline][purge]") {
    Pipe p([](config::RouteCache& c) { c.stale_if_error = 60s; });
    bool down = false;
    p.origin.script = [&](const Request&) {
        if (down) return Scripted{503, {}, "down"};
        return Scripted{200, {{"Cache-Control", "max-age=600"}, {"Surrogate-Key", "t"}}, "kept"};
    };
    p.get("/k");
    p.advance(10s);
    purge(p, cache::PurgeKind::Tag, "", "t", cache::PurgeMode::Soft);  // stale from here
    down = true;
    p.advance(40s);
    auto within = p.get("/k");
    CHECK(within.body() == "kept");
    CHECK_THAT(status_of(within), Catch::EndsWith("detail=stale-if-error"));
    p.advance(15s);
    purge(p, cache::PurgeKind::Tag, "", "t", cache::PurgeMode::Soft);  // again: must not restart the window
    p.advance(15s);  // 70 s after the first purge: past stale-if-error
    auto past = p.get("/k");
    CHECK(past.result_int() == 503);
}

TEST_CASE("pipeline: Cache-Group-Invalidation on an unsafe request's answer purges the origin's groups",
          "[pipeline][purge]") {
    Pipe p;
    int n = 0;
    p.origin.script = [&](const Request& r) {
        if (r.method() == bhttp::verb::post)
            return Scripted{204, {{"Cache-Group-Invalidation", "\"scripts\""}}, ""};
        return Scripted{200, {{"Cache-Control", "max-age=600"}, {"Cache-Groups", "\"scripts\", \"all\""}},
                        "v" + std::to_string(++n)};
    };
    p.get("/app.js");
    p.get("/other.js");
    p.advance(1s);
    p.request(bhttp::verb::post, "/upload", {}, "x");
    CHECK(p.get("/app.js").body() == "v3");
    CHECK(p.get("/other.js").body() == "v4");
    CHECK(test::metric_value(p.metrics.serialize(), R"(cachalot_purges_total{kind="group",mode="hard"})") == 1);
}

// ---- streamed bodies ----------------------------------------------------------------------------

TEST_CASE("pipeline: a streamed body reaches the client piece by piece and is stored only once it is complete",
          "[pipeline][stream]") {
    Pipe p;
    p.origin.script = [](const Request&) {
        return Scripted{200, {{"Cache-Control", "max-age=60"}}, "one,", false, false, {"two,", "three"}};
    };
    p.origin.hold_body();
    auto first = p.start(bhttp::verb::get, "/s");
    p.ioc.restart();
    p.ioc.poll();
    REQUIRE(*first);
    CHECK((*first)->body() == "one,");  // the head and the first bytes, before the origin finished
    CHECK(status_of(**first) == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=60");
    const std::string stored = R"(cachalot_cache_store_total{outcome="stored",route="api"})";
    CHECK(test::metric_value(p.metrics.serialize(), stored) == 0);  // not yet: it may still fail
    p.origin.release_body();
    p.run();
    CHECK(test::metric_value(p.metrics.serialize(), stored) == 1);
    CHECK((*first)->body() == "one,two,three");
    CHECK((*first)->at("X-Test-Stream") == "complete");
    const auto hit = p.get("/s");
    CHECK(hit.body() == "one,two,three");
    CHECK(hit[bhttp::field::content_length] == "13");
    CHECK(status_of(hit) == "cachalot; hit; ttl=60");
    CHECK(p.origin.seen.size() == 1);
}

TEST_CASE("pipeline: a body the origin cuts short is seen as truncated and never stored", "[pipeline][stream]") {
    Pipe p;
    const auto announce = GENERATE(true, false);  // Content-Length, or none (chunked)
    p.origin.script = [&](const Request&) {
        return Scripted{200, {{"Cache-Control", "max-age=60"}}, "part", false, false, {"ial"}, true, announce};
    };
    const auto first = p.get("/cut");
    CHECK(first.body() == "partial");
    CHECK(first.at("X-Test-Stream") == "truncated");
    const auto second = p.get("/cut");
    CHECK(second.at("X-Test-Stream") == "truncated");
    CHECK(p.origin.seen.size() == 2);  // nothing was stored
    CHECK(p.metrics.streams_interrupted(false).Value() == 2);
}

TEST_CASE("pipeline: a body that grows past what a tier takes still reaches the client whole, and is recorded "
          "too large",
          "[pipeline][stream]") {
    Pipe p;
    p.cfg.cache.l1.max_object_size = 10;  // what the pipeline keeps: the store limit
    p.origin.script = [](const Request&) {
        return Scripted{200, {{"Cache-Control", "max-age=60"}}, "0123", false, false, {"4567", "89ab", "cdef"}, false,
                        false};
    };
    const auto first = p.get("/big");
    CHECK(first.body() == "0123456789abcdef");
    CHECK(first.at("X-Test-Stream") == "complete");
    CHECK(p.get("/big").body() == "0123456789abcdef");
    CHECK(p.origin.seen.size() == 2);
    CHECK(test::metric_value(p.metrics.serialize(), R"(cachalot_cache_store_total{outcome="too-large",route="api"})") ==
          2);
}

TEST_CASE("pipeline: requests coalesced on a streaming fetch read its body as it arrives, and it is stored once",
          "[pipeline][stream]") {
    Pipe p;
    p.origin.script = [](const Request&) {
        return Scripted{200, {{"Cache-Control", "max-age=60"}}, "a", false, false, {"b", "c"}, false, false};
    };
    p.origin.hold_body();
    std::vector<std::shared_ptr<std::optional<Response>>> out;
    for (int i = 0; i < 3; ++i) out.push_back(p.start(bhttp::verb::get, "/hot"));
    p.ioc.restart();
    p.ioc.poll();
    CHECK(p.origin.seen.size() == 1);
    int collapsed = 0;
    for (auto& r : out) {
        REQUIRE(*r);  // every one has its head and the first byte while the origin still sends
        CHECK((*r)->body() == "a");
        if (status_of(**r) == "cachalot; fwd=uri-miss; fwd-status=200; collapsed; ttl=60") ++collapsed;
    }
    CHECK(collapsed == 2);
    // One that comes while the body still streams reads it from the first byte too.
    auto late = p.start(bhttp::verb::get, "/hot");
    p.ioc.restart();
    p.ioc.poll();
    REQUIRE(*late);
    CHECK((*late)->body() == "a");
    p.origin.release_body();
    p.run();
    out.push_back(late);
    for (auto& r : out) {
        CHECK((*r)->body() == "abc");
        CHECK((*r)->at("X-Test-Stream") == "complete");
    }
    CHECK(p.get("/hot").body() == "abc");
    CHECK(p.origin.seen.size() == 1);
}

TEST_CASE("pipeline: when the streaming fetch fails mid-body, the coalesced requests see it truncated as well",
          "[pipeline][stream]") {
    Pipe p;
    p.origin.script = [](const Request&) {
        return Scripted{200, {{"Cache-Control", "max-age=60"}}, "a", false, false, {"b"}, true, true};
    };
    p.origin.hold_body();
    auto first = p.start(bhttp::verb::get, "/f");
    auto second = p.start(bhttp::verb::get, "/f");
    p.ioc.restart();
    p.ioc.poll();
    p.origin.release_body();
    p.run();
    for (auto& r : {first, second}) {
        REQUIRE(*r);
        CHECK((*r)->body() == "ab");
        CHECK((*r)->at("X-Test-Stream") == "truncated");
    }
    CHECK(p.origin.seen.size() == 1);
}

TEST_CASE("pipeline: a streamed body is not lost when its client goes: the fetch completes for the store",
          "[pipeline][stream]") {
    Pipe p;
    p.origin.script = [](const Request&) {
        return Scripted{200, {{"Cache-Control", "max-age=60"}}, "x", false, false, {"y", "z"}, false, true};
    };
    p.origin.hold_body();
    // A client that takes the head and goes away at once.
    net::co_spawn(
        p.ioc,
        [&]() -> net::awaitable<void> {
            Request request{bhttp::verb::get, "/gone", 11};
            request.set(bhttp::field::host, "api.example");
            const ClientInfo client{"192.0.2.7", *http::parse_authority("api.example")};
            auto answer = co_await p.pipeline.handle(request, client);
            CHECK(answer.stream);
        },
        net::detached);
    p.ioc.restart();
    p.ioc.poll();
    p.origin.release_body();
    p.run();
    CHECK(p.get("/gone").body() == "xyz");
    CHECK(p.origin.seen.size() == 1);
}

TEST_CASE("pipeline: a background revalidation whose new body streams stores it when it completes, with no client "
          "reading it",
          "[pipeline][stream]") {
    Pipe p;
    int n = 0;
    p.origin.script = [&](const Request&) {
        ++n;
        if (n == 1) return Scripted{200, {{"Cache-Control", "max-age=10, stale-while-revalidate=60"}}, "old"};
        return Scripted{200, {{"Cache-Control", "max-age=60"}}, "n", false, false, {"e", "w"}, false, false};
    };
    p.get("/bg");
    p.advance(15s);
    const auto stale = p.get("/bg");  // runs the background revalidation to its end too
    CHECK(stale.body() == "old");
    CHECK(status_of(stale) == "cachalot; hit; ttl=-5; detail=stale-while-revalidate");
    const auto fresh = p.get("/bg");
    CHECK(fresh.body() == "new");
    CHECK(status_of(fresh) == "cachalot; hit; ttl=60");
    CHECK(p.origin.seen.size() == 2);
    CHECK(test::metric_value(p.metrics.serialize(), R"(cachalot_cache_store_total{outcome="stored",route="api"})") == 2);
}

TEST_CASE("pipeline: a variant fetched while another variant's body still streams in joins its epoch: both stay "
          "stored",
          "[pipeline][stream]") {
    Pipe p;
    p.origin.script = [](const Request& r) {
        const std::string lang(r["Accept-Language"]);
        Scripted s{200, {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Language"}}, "lang:" + lang};
        if (lang == "de") s.rest = {"-streamed"};  // de's body streams; en's comes whole
        return s;
    };
    p.origin.hold_body();
    auto de = p.start(bhttp::verb::get, "/v", {{"Accept-Language", "de"}});
    p.ioc.restart();
    p.ioc.poll();  // de's head is in, its body held
    auto en = p.start(bhttp::verb::get, "/v", {{"Accept-Language", "en"}});
    p.ioc.restart();
    p.ioc.poll();  // en waited on de's fetch, saw another variant, fetched and stored its own
    REQUIRE(*en);
    CHECK((*en)->body() == "lang:en");
    p.origin.release_body();
    p.run();
    CHECK((*de)->body() == "lang:de-streamed");
    CHECK(p.origin.seen.size() == 2);
    // Both variants are reachable: de stored last, under the epoch en joined.
    CHECK(status_of(p.get("/v", {{"Accept-Language", "en"}})) == "cachalot; hit; ttl=60");
    CHECK(status_of(p.get("/v", {{"Accept-Language", "de"}})) == "cachalot; hit; ttl=60");
    CHECK(p.origin.seen.size() == 2);
}

// ---- conditions and ranges answered here ------------------------------------------------------

namespace {
// An origin with one representation: its body, ETag "r1", a Last-Modified a day before the test's
// clock and a Date; it answers whatever it is asked (the test checks what it was asked).
Scripted representation(const Request&, const std::string& body = "0123456789abcdefghij", bool streamed = false) {
    Scripted s{200,
               {{"Cache-Control", "max-age=60"},
                {"ETag", "\"r1\""},
                {"Content-Type", "text/plain"},
                {"Last-Modified", "Mon, 13 Nov 2023 22:13:20 GMT"},
                {"Date", "Tue, 14 Nov 2023 22:13:20 GMT"}},
               body};
    if (streamed) {  // the first 5 bytes with the head, the rest as 3 pieces
        s.rest = {body.substr(5, 5), body.substr(10, 5), body.substr(15)};
        s.body = body.substr(0, 5);
    }
    return s;
}
}  // namespace

TEST_CASE("pipeline: a conditional GET miss is fetched whole, stored, and its condition answered here",
          "[pipeline][conditional]") {
    Pipe p;
    p.origin.script = [](const Request& r) { return representation(r); };
    SECTION("If-None-Match that matches: 304") {
        const auto res = p.get("/c", {{"If-None-Match", "\"r1\""}});
        CHECK(res.result_int() == 304);
        CHECK(res.body().empty());
        CHECK(res[bhttp::field::etag] == "\"r1\"");
        CHECK(status_of(res) == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=60");
    }
    SECTION("If-Modified-Since at Last-Modified: 304") {
        CHECK(p.get("/c", {{"If-Modified-Since", "Mon, 13 Nov 2023 22:13:20 GMT"}}).result_int() == 304);
    }
    SECTION("If-None-Match that does not match: the full 200") {
        const auto res = p.get("/c", {{"If-None-Match", "\"old\""}});
        CHECK(res.result_int() == 200);
        CHECK(res.body() == "0123456789abcdefghij");
    }
    REQUIRE(p.origin.seen.size() == 1);
    CHECK(p.origin.seen[0].count(bhttp::field::if_none_match) == 0);  // the origin was asked unconditionally
    CHECK(p.origin.seen[0].count(bhttp::field::if_modified_since) == 0);
    const auto hit = p.get("/c");  // what was fetched for it was stored whole
    CHECK(hit.body() == "0123456789abcdefghij");
    CHECK(status_of(hit) == "cachalot; hit; ttl=60");
    CHECK(p.origin.seen.size() == 1);
}

TEST_CASE("pipeline: If-Match is the origin's to answer: forwarded as it is, and its answer not stored",
          "[pipeline][conditional]") {
    Pipe p;
    p.origin.script = [](const Request& r) { return representation(r); };
    const auto res = p.get("/m", {{"If-Match", "\"r1\""}, {"Range", "bytes=0-1"}});
    CHECK(status_of(res) == "cachalot; fwd=uri-miss; fwd-status=200; detail=conditional");
    REQUIRE(p.origin.seen.size() == 1);
    CHECK(p.origin.seen[0][bhttp::field::if_match] == "\"r1\"");
    CHECK(p.origin.seen[0][bhttp::field::range] == "bytes=0-1");
    p.get("/m");
    CHECK(p.origin.seen.size() == 2);
}

TEST_CASE("pipeline: a stale stored response is revalidated with its own validators, and the client's "
          "condition answered from the result",
          "[pipeline][conditional]") {
    Pipe p;
    p.origin.script = [](const Request& r) {
        if (r[bhttp::field::if_none_match] == "\"r1\"")  // (dated when the test asks: 61 s after the first)
            return Scripted{304, {{"Cache-Control", "max-age=60"}, {"Date", "Tue, 14 Nov 2023 22:14:21 GMT"}}, ""};
        return representation(r);
    };
    p.get("/v");
    p.advance(61s);
    const auto res = p.get("/v", {{"If-None-Match", "\"client-copy\""}, {"Range", "bytes=2-4"}});
    REQUIRE(p.origin.seen.size() == 2);
    CHECK(p.origin.seen[1][bhttp::field::if_none_match] == "\"r1\"");  // the cache's validator, not the client's
    CHECK(p.origin.seen[1].count(bhttp::field::range) == 0);
    CHECK(res.result_int() == 206);
    CHECK(res.body() == "234");
    CHECK(res[bhttp::field::content_range] == "bytes 2-4/20");
    CHECK(status_of(res) == "cachalot; fwd=stale; fwd-status=304; stored; ttl=60");
}

TEST_CASE("pipeline: ranges of a stored response, table", "[pipeline][range]") {
    Pipe p;
    p.origin.script = [](const Request& r) { return representation(r); };
    p.get("/r");
    struct Row {
        std::vector<std::pair<std::string, std::string>> headers;
        unsigned status;
        std::string body;
        std::string content_range;
    };
    auto row = GENERATE(values<Row>({
        {{{"Range", "bytes=0-4"}}, 206, "01234", "bytes 0-4/20"},
        {{{"Range", "bytes=15-"}}, 206, "fghij", "bytes 15-19/20"},
        {{{"Range", "bytes=-3"}}, 206, "hij", "bytes 17-19/20"},
        {{{"Range", "bytes=18-99"}}, 206, "ij", "bytes 18-19/20"},
        {{{"Range", "bytes=20-"}}, 416, "", "bytes */20"},
        {{{"Range", "bytes=x-y"}}, 200, "0123456789abcdefghij", ""},  // invalid: ignored
        {{{"Range", "bytes=0-4"}, {"If-Range", "\"r1\""}}, 206, "01234", "bytes 0-4/20"},
        {{{"Range", "bytes=0-4"}, {"If-Range", "\"r0\""}}, 200, "0123456789abcdefghij", ""},  // another version
        {{{"Range", "bytes=0-4"}, {"If-Range", "Mon, 13 Nov 2023 22:13:20 GMT"}}, 206, "01234", "bytes 0-4/20"},
        {{{"Range", "bytes=0-4"}, {"If-None-Match", "\"r1\""}}, 304, "", ""},  // the client has it all
    }));
    INFO(row.headers.front().second);
    const auto res = p.get("/r", row.headers);
    CHECK(res.result_int() == row.status);
    CHECK(res.body() == row.body);
    CHECK(res[bhttp::field::content_range] == row.content_range);
    if (row.status == 206) CHECK(res[bhttp::field::content_length] == std::to_string(row.body.size()));
    CHECK(status_of(res) == "cachalot; hit; ttl=60");
    CHECK(p.origin.seen.size() == 1);
}

TEST_CASE("pipeline: several ranges of a stored response are one multipart/byteranges answer",
          "[pipeline][range]") {
    Pipe p;
    p.origin.script = [](const Request& r) { return representation(r); };
    p.get("/mr");
    const auto res = p.get("/mr", {{"Range", "bytes=0-1, 18-"}});
    REQUIRE(res.result_int() == 206);
    const std::string type(res[bhttp::field::content_type]);
    REQUIRE(type.rfind("multipart/byteranges; boundary=", 0) == 0);
    const auto boundary = type.substr(type.find('=') + 1);
    CHECK(res.body() == "\r\n--" + boundary + "\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/20\r\n\r\n01" +
                            "\r\n--" + boundary + "\r\nContent-Type: text/plain\r\nContent-Range: bytes 18-19/20\r\n\r\nij" +
                            "\r\n--" + boundary + "--\r\n");
    CHECK(res.count(bhttp::field::content_range) == 0);
}

TEST_CASE("pipeline: a range miss fetches the whole response, stores it, and answers the range",
          "[pipeline][range]") {
    Pipe p;
    const bool streamed = GENERATE(false, true);
    p.origin.script = [&](const Request& r) { return representation(r, "0123456789abcdefghij", streamed); };
    const auto res = p.get("/rm", {{"Range", "bytes=3-12"}});
    REQUIRE(p.origin.seen.size() == 1);
    CHECK(p.origin.seen[0].count(bhttp::field::range) == 0);
    CHECK(res.result_int() == 206);
    CHECK(res.body() == "3456789abc");
    CHECK(res[bhttp::field::content_range] == "bytes 3-12/20");
    if (streamed) CHECK(res.at("X-Test-Stream") == "complete");
    CHECK(status_of(res) == "cachalot; fwd=uri-miss; fwd-status=200; stored; ttl=60");
    const auto hit = p.get("/rm");
    CHECK(hit.body() == "0123456789abcdefghij");  // the store got the whole body, not the range
    CHECK(p.origin.seen.size() == 1);
}

TEST_CASE("pipeline: a range miss for a body that streams without a length is answered with the whole body",
          "[pipeline][range]") {
    Pipe p;
    p.origin.script = [](const Request& r) {
        auto s = representation(r, "0123456789abcdefghij", true);
        s.announce_length = false;
        return s;
    };
    const auto res = p.get("/rn", {{"Range", "bytes=3-12"}});
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "0123456789abcdefghij");
    CHECK(p.get("/rn", {{"Range", "bytes=3-12"}}).body() == "3456789abc");  // now stored: its length is known
    CHECK(p.origin.seen.size() == 1);
}

TEST_CASE("pipeline: parts of a body too large to store are stored, serve the ranges they hold, combine when they "
          "touch, and are revalidated with the range",
          "[pipeline][range]") {
    Pipe p;
    p.cfg.cache.l1.max_object_size = 10;
    const std::string whole = "0123456789abcdefghij";
    p.origin.script = [&](const Request& r) {
        if (r[bhttp::field::if_none_match] == "\"r1\"")  // (dated when the test asks: 61 s after the first)
            return Scripted{304, {{"Cache-Control", "max-age=60"}, {"Date", "Tue, 14 Nov 2023 22:14:21 GMT"},
                                  {"X-Refreshed", "yes"}}, ""};
        const std::string range(r[bhttp::field::range]);
        if (range.empty()) return representation(r, whole, true);  // announced 20 bytes: too large
        const auto dash = range.find('-');
        const auto first = std::stoul(range.substr(6, dash - 6)), last = std::stoul(range.substr(dash + 1));
        auto s = representation(r, whole.substr(first, last - first + 1));
        s.status = 206;
        s.headers.emplace_back("Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/20");
        return s;
    };
    const auto first = p.get("/big", {{"Range", "bytes=3-4"}});
    REQUIRE(p.origin.seen.size() == 2);
    CHECK(p.origin.seen[0].count(bhttp::field::range) == 0);  // the whole, first: its length was not known
    CHECK(p.origin.seen[1][bhttp::field::range] == "bytes=3-4");
    CHECK(first.result_int() == 206);
    CHECK(first.body() == "34");
    CHECK(status_of(first) == "cachalot; fwd=uri-miss; fwd-status=206; stored; ttl=60");

    // The stored part answers the ranges it holds, and 416 for those past the whole.
    auto sub = p.get("/big", {{"Range", "bytes=4-4"}});
    CHECK(sub.result_int() == 206);
    CHECK(sub.body() == "4");
    CHECK(sub[bhttp::field::content_range] == "bytes 4-4/20");
    CHECK(status_of(sub) == "cachalot; hit; ttl=60");
    CHECK(p.get("/big", {{"Range", "bytes=20-"}}).result_int() == 416);
    CHECK(p.origin.seen.size() == 2);

    // A range next to it is asked for as it is (its whole is known to be too large), and the two
    // parts become one.
    const auto next = p.get("/big", {{"Range", "bytes=5-7"}});
    REQUIRE(p.origin.seen.size() == 3);
    CHECK(p.origin.seen[2][bhttp::field::range] == "bytes=5-7");
    CHECK(next.body() == "567");
    CHECK(status_of(next) == "cachalot; fwd=partial; fwd-status=206; stored; ttl=60");
    const auto joined = p.get("/big", {{"Range", "bytes=3-7"}});
    CHECK(joined.body() == "34567");
    CHECK(joined[bhttp::field::content_range] == "bytes 3-7/20");
    CHECK(status_of(joined) == "cachalot; hit; ttl=60");
    // Not a range, or one it does not hold: the origin's.
    CHECK(p.get("/big").body() == whole);
    CHECK(p.origin.seen.size() == 4);

    // Stale: revalidated with its ETag and the range; the 304 refreshes the part's fields.
    p.advance(61s);
    const auto revalidated = p.get("/big", {{"Range", "bytes=3-5"}});
    REQUIRE(p.origin.seen.size() == 5);
    CHECK(p.origin.seen[4][bhttp::field::if_none_match] == "\"r1\"");
    CHECK(p.origin.seen[4][bhttp::field::range] == "bytes=3-5");
    CHECK(revalidated.body() == "345");
    CHECK(revalidated[bhttp::field::content_range] == "bytes 3-5/20");
    CHECK(status_of(revalidated) == "cachalot; fwd=stale; fwd-status=304; stored; ttl=60");
    const auto refreshed = p.get("/big", {{"Range", "bytes=6-7"}});
    CHECK(refreshed.body() == "67");
    CHECK(refreshed["X-Refreshed"] == "yes");
    CHECK(p.origin.seen.size() == 5);
}

TEST_CASE("pipeline: parts from an origin that answers in parts combine into the whole, then stored as a 200",
          "[pipeline][range]") {
    Pipe p;
    const std::string whole = "0123456789";
    p.origin.script = [&](const Request& r) {  // a Range gets its part; no Range gets the first half
        const std::string range(r[bhttp::field::range]);
        const auto first = range.empty() ? 0 : std::stoul(range.substr(6, range.find('-') - 6));
        const auto last = range.empty() ? 4 : std::stoul(range.substr(range.find('-') + 1));
        auto s = representation(r, whole.substr(first, last - first + 1));
        s.status = 206;
        s.headers.emplace_back("Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/10");
        return s;
    };
    CHECK(p.get("/parts", {{"Range", "bytes=0-4"}}).body() == "01234");
    CHECK(p.origin.seen[0].count(bhttp::field::range) == 0);  // nothing known yet: the whole was asked for
    CHECK(p.get("/parts", {{"Range", "bytes=5-9"}}).body() == "56789");
    CHECK(p.origin.seen[1][bhttp::field::range] == "bytes=5-9");  // a part is stored: filled by ranges
    const auto hit = p.get("/parts");
    CHECK(hit.result_int() == 200);
    CHECK(hit.body() == whole);
    CHECK(hit.count(bhttp::field::content_range) == 0);
    CHECK(status_of(hit) == "cachalot; hit; ttl=60");
    CHECK(p.origin.seen.size() == 2);
}

TEST_CASE("pipeline: range and plain GETs of one cold URL share one fetch", "[pipeline][range]") {
    Pipe p;
    p.origin.script = [](const Request& r) { return representation(r, "0123456789abcdefghij", true); };
    p.origin.hold();
    auto ranged = p.start(bhttp::verb::get, "/share", {{"Range", "bytes=-4"}});
    auto plain = p.start(bhttp::verb::get, "/share");
    auto conditional = p.start(bhttp::verb::get, "/share", {{"If-None-Match", "\"r1\""}});
    p.ioc.restart();
    p.ioc.poll();
    p.origin.release();
    p.run();
    CHECK(p.origin.seen.size() == 1);
    REQUIRE(*ranged);
    CHECK((*ranged)->result_int() == 206);
    CHECK((*ranged)->body() == "ghij");
    REQUIRE(*plain);
    CHECK((*plain)->body() == "0123456789abcdefghij");
    REQUIRE(*conditional);
    CHECK((*conditional)->result_int() == 304);
}

// ---- POST with Content-Location ---------------------------------------------------------------

TEST_CASE("pipeline: a POST answer with explicit freshness and its own URI as Content-Location is stored for GET",
          "[pipeline][post]") {
    Pipe p;
    struct Row {
        std::string name;
        std::vector<std::pair<std::string, std::string>> headers;
        bool stored;
    };
    auto row = GENERATE(values<Row>({
        {"relative", {{"Cache-Control", "max-age=60"}, {"Content-Location", "/doc?b=2&a=1"}}, true},
        {"absolute", {{"Cache-Control", "max-age=60"}, {"Content-Location", "http://api.example/doc?a=1&b=2"}}, true},
        {"another URI", {{"Cache-Control", "max-age=60"}, {"Content-Location", "/other"}}, false},
        {"another host", {{"Cache-Control", "max-age=60"}, {"Content-Location", "http://evil.example/doc?a=1&b=2"}}, false},
        {"no Content-Location", {{"Cache-Control", "max-age=60"}}, false},
        {"heuristic only", {{"Content-Location", "/doc?a=1&b=2"}, {"Last-Modified", "Mon, 13 Nov 2023 22:13:20 GMT"}},
         false},
        {"private", {{"Cache-Control", "private, max-age=60"}, {"Content-Location", "/doc?a=1&b=2"}}, false},
    }));
    INFO(row.name);
    int n = 0;
    p.origin.script = [&](const Request& r) {
        ++n;
        if (r.method() == bhttp::verb::post) return Scripted{200, row.headers, "posted"};
        return Scripted{200, {{"Cache-Control", "max-age=60"}}, "got " + std::to_string(n)};
    };
    const auto post = p.request(bhttp::verb::post, "/doc?a=1&b=2", {}, "new state");
    CHECK(post.body() == "posted");
    const auto get = p.get("/doc?a=1&b=2");
    if (row.stored) {
        CHECK(status_of(post) == "cachalot; fwd=bypass; stored; ttl=60");
        CHECK(get.body() == "posted");
        CHECK(status_of(get) == "cachalot; hit; ttl=60");
        CHECK(p.origin.seen.size() == 1);
    } else {
        CHECK(get.body() == "got 2");
        CHECK(p.origin.seen.size() == 2);
    }
}
