// What ships for the people who watch Cachalot, against what Cachalot really exports: the
// Grafana dashboard's queries (deploy/grafana/cachalot.json) parse and name only exported
// metrics, and a real Prometheus scraping a real Cachalot computes the dashboard's hit ratio
// from the traffic the test sent. (The alert rules' own tests are promtool's: tests/CMakeLists.txt.)

#include "support/harness.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <cctype>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

using namespace cachalot::test;
namespace json = boost::json;

namespace {

const std::string kDashboard = CACHALOT_SOURCE_DIR "/deploy/grafana/cachalot.json";

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Every query of the dashboard: its panels' targets and its template variables' label_values.
struct Query {
    std::string where;  // panel title / legend
    std::string expr;
};

std::vector<Query> dashboard_queries() {
    const auto dash = json::parse(slurp(kDashboard)).as_object();
    std::vector<Query> out;
    for (const auto& p : dash.at("panels").as_array()) {
        const auto& panel = p.as_object();
        if (!panel.contains("targets")) continue;
        for (const auto& t : panel.at("targets").as_array())
            out.push_back({std::string(panel.at("title").as_string()) + " / " +
                               std::string(t.as_object().at("legendFormat").as_string()),
                           std::string(t.as_object().at("expr").as_string())});
    }
    return out;
}

// Grafana's variables as Prometheus sees them once Grafana has filled them in ("All").
std::string filled_in(std::string expr) {
    for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
             {"$__rate_interval", "1m"}, {"$instance", ".*"}, {"$route", ".*"}}) {
        for (auto at = expr.find(from); at != std::string::npos; at = expr.find(from, at + to.size()))
            expr.replace(at, from.size(), to);
    }
    return expr;
}

// The metric names a query reads: identifiers followed by a selector, a range, or ending it,
// that are not functions, keywords or label names.
std::set<std::string> metric_names(const std::string& expr) {
    static const std::set<std::string> not_metrics{"sum", "by", "rate", "increase", "histogram_quantile", "min",
                                                   "max", "le", "and", "or", "without", "offset"};
    std::set<std::string> names;
    // (Label matchers and grouping lists are inside {} and (): strip the {…} first.)
    std::string bare = std::regex_replace(expr, std::regex(R"(\{[^}]*\})"), "{}");
    bare = std::regex_replace(bare, std::regex(R"(by \([^)]*\))"), "");
    bare = std::regex_replace(bare, std::regex(R"(\[[^\]]*\])"), "");  // ranges: [1m]
    const std::regex ident(R"([a-zA-Z_:][a-zA-Z0-9_:]*)");
    for (auto it = std::sregex_iterator(bare.begin(), bare.end(), ident); it != std::sregex_iterator(); ++it) {
        const auto name = it->str();
        if (!not_metrics.count(name)) names.insert(name);
    }
    return names;
}

// The sample names of a Prometheus text exposition.
std::set<std::string> exported(const std::string& exposition) {
    std::set<std::string> names;
    std::istringstream in(exposition);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        names.insert(line.substr(0, line.find_first_of("{ ")));
    }
    return names;
}

// A Cachalot with everything that has metrics turned on: an L1, a Redis L2, an upstream.
struct Monitored {
    TestOrigin origin{[](const OriginRequest& r) {
        return Reply{.headers = {{"Cache-Control", "max-age=300"}}, .body = "page " + r.target};
    }};
    RedisServer redis;
    Daemon cachalot{proxy_config(origin.port(), "  l2: {address: \"" + redis.address() + "\"}\n")};
};

std::string url_encoded(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            char hex[4];
            std::snprintf(hex, sizeof hex, "%%%02X", c);
            out += hex;
        }
    }
    return out;
}

// A real Prometheus (Debian's) scraping `target` every second, its data in a temporary directory.
class Prometheus {
public:
    explicit Prometheus(std::uint16_t target) : dir_(temp_dir()), port_(free_port()) {
        std::ofstream(dir_ + "/prometheus.yml") << "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                                                   "scrape_configs:\n"
                                                   "  - job_name: cachalot\n"
                                                   "    static_configs: [{targets: ['127.0.0.1:"
                                                << target << "']}]\n";
        process_ = ChildProcess("/usr/bin/prometheus",
                                {"--config.file=" + dir_ + "/prometheus.yml", "--storage.tsdb.path=" + dir_ + "/data",
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port_)},
                                dir_ + "/output.log");
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        while (std::chrono::steady_clock::now() < deadline) {
            try {
                if (fetch(port_, "/-/ready").result_int() == 200) return;
            } catch (const std::exception&) {
            }
            std::this_thread::sleep_for(50ms);
        }
        throw std::runtime_error("prometheus did not become ready: " + slurp(dir_ + "/output.log"));
    }
    ~Prometheus() {
        process_.signal(SIGTERM);
        process_.wait(20s);
    }
    // The value of an instant query with one result, or nothing (no result yet).
    std::optional<double> query(const std::string& expr) {
        const auto res = fetch(port_, "/api/v1/query?query=" + url_encoded(expr));
        INFO(res.body());
        REQUIRE(res.result_int() == 200);
        const auto body = json::parse(res.body()).as_object();
        REQUIRE(body.at("status").as_string() == "success");
        const auto& result = body.at("data").as_object().at("result").as_array();
        if (result.size() != 1) return std::nullopt;
        return std::stod(std::string(result[0].as_object().at("value").as_array()[1].as_string()));
    }
    // Polls until `expr` has the value `expected`, at most 30 s (a few scrapes).
    bool await(const std::string& expr, double expected) {
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        while (std::chrono::steady_clock::now() < deadline) {
            if (auto v = query(expr); v && std::abs(*v - expected) < 1e-9) return true;
            std::this_thread::sleep_for(100ms);
        }
        return false;
    }

private:
    std::string dir_;
    std::uint16_t port_;
    ChildProcess process_;
};

}  // namespace

TEST_CASE("every query of the Grafana dashboard parses and reads only metrics Cachalot exports") {
    const auto queries = dashboard_queries();
    REQUIRE(queries.size() > 20);

    // Parsed by Prometheus' own parser: promtool checks them as recording rules.
    const auto dir = temp_dir();
    {
        std::ofstream rules(dir + "/dashboard_rules.yml");
        rules << "groups:\n  - name: dashboard\n    rules:\n";
        for (std::size_t i = 0; i < queries.size(); ++i)
            rules << "      - record: dashboard:query_" << i << "\n        expr: " << json::serialize(json::string(filled_in(queries[i].expr))) << "\n";
    }
    const auto checked = run_program("/usr/bin/promtool", {"check", "rules", dir + "/dashboard_rules.yml"});
    INFO(checked.output);
    CHECK(checked.exit_code == 0);

    // Scraped from a running Cachalot with an L1, an L2 and an upstream, after some traffic.
    Monitored m;
    fetch(m.cachalot.port(), "/a");
    fetch(m.cachalot.port(), "/a");
    const auto names = exported(fetch(m.cachalot.admin_port(), "/metrics").body());
    REQUIRE(names.count("cachalot_requests_total"));
    for (const auto& q : queries) {
        for (const auto& name : metric_names(filled_in(q.expr))) {
            INFO(q.where << ": " << q.expr);
            INFO("metric: " << name);
            CHECK(names.count(name));
        }
    }
    // The template variables read a metric that exists, with the labels they ask for.
    CHECK_THAT(slurp(kDashboard), Catch::Contains("label_values(cachalot_requests_total, instance)"));
    CHECK_THAT(fetch(m.cachalot.admin_port(), "/metrics").body(),
               Catch::Contains(R"(cachalot_requests_total{route="default",status_class="2xx"})"));
}

TEST_CASE("a real Prometheus scraping Cachalot computes the dashboard's hit ratio from the traffic sent") {
    std::string hit_ratio;
    for (const auto& q : dashboard_queries())
        if (q.where == "Hit ratio by route / all routes") hit_ratio = filled_in(q.expr);
    REQUIRE_FALSE(hit_ratio.empty());
    // (Over the whole test: the window then holds the scrape from before the traffic, so the
    // ratio of the two rates is the ratio of the counts.)
    hit_ratio = std::regex_replace(hit_ratio, std::regex(R"(\[1m\])"), "[10m]");

    Monitored m;
    Prometheus prometheus(m.cachalot.admin_port());
    REQUIRE(prometheus.await(R"(up{job="cachalot"})", 1));
    REQUIRE(prometheus.await(R"(sum(cachalot_cache_requests_total{job="cachalot"}))", 0));

    // 4 misses, then 12 hits: 12 / 16.
    for (int round = 0; round < 4; ++round)
        for (const auto* path : {"/p1", "/p2", "/p3", "/p4"}) REQUIRE(fetch(m.cachalot.port(), path).result_int() == 200);
    REQUIRE(m.origin.request_count() == 4);
    CHECK(prometheus.await(R"(sum(cachalot_cache_requests_total{job="cachalot", result="hit"}))", 12));
    CHECK(prometheus.await(hit_ratio, 0.75));
}
