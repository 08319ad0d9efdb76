// The deploy files fit together. The compose stack (deploy/compose/docker-compose.yml): every file it mounts
// exists, and the ports and addresses of its services agree with the configurations they are
// given (Cachalot's, Prometheus', Grafana's provisioning). The Kubernetes manifests scrape,
// select and protect the same pods. `docker-compose config` and
// `promtool check config` validate the files themselves (tests/CMakeLists.txt).

#include "cachalot/config/config.hpp"

#include <catch2/catch.hpp>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <unistd.h>

using namespace cachalot::config;

namespace {

const std::string kDeploy = CACHALOT_SOURCE_DIR "/deploy/";

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// A service's volumes as (host path relative to deploy/compose, container path).
std::vector<std::pair<std::string, std::string>> mounts(const YAML::Node& service) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& v : service["volumes"]) {
        const auto text = v.as<std::string>();
        const auto first = text.find(':');
        const auto second = text.find(':', first + 1);
        out.emplace_back(text.substr(0, first), text.substr(first + 1, second - first - 1));
    }
    return out;
}

// The container side of a service's published ports ("127.0.0.1:9091:9090" → 9090).
std::vector<unsigned> container_ports(const YAML::Node& service) {
    std::vector<unsigned> out;
    for (const auto& p : service["ports"]) {
        const auto text = p.as<std::string>();
        out.push_back(static_cast<unsigned>(std::stoul(text.substr(text.rfind(':') + 1))));
    }
    return out;
}

// Where a host file is mounted in a service, or "".
std::string mounted_at(const YAML::Node& service, const std::string& host) {
    for (const auto& [from, to] : mounts(service))
        if (from == host) return to;
    return "";
}

}  // namespace

TEST_CASE("every file the compose stack mounts or builds from exists") {
    const auto compose = YAML::LoadFile(kDeploy + "compose/docker-compose.yml");
    std::size_t checked = 0;
    for (const auto& service : compose["services"]) {
        for (const auto& [host, container] : mounts(service.second)) {
            INFO(service.first.as<std::string>() << ": " << host);
            CHECK(std::filesystem::exists(kDeploy + "compose/" + host));
            ++checked;
        }
        if (service.second["build"]) {
            const auto context = kDeploy + "compose/" + service.second["build"]["context"].as<std::string>();
            CHECK(std::filesystem::exists(context + "/" + service.second["build"]["dockerfile"].as<std::string>()));
        }
    }
    CHECK(checked >= 6);
}

TEST_CASE("the compose stack's ports and addresses agree with the configurations it mounts") {
    const auto compose = YAML::LoadFile(kDeploy + "compose/docker-compose.yml");
    const auto services = compose["services"];

    // Cachalot: its config parses; it listens where the stack publishes; its upstream, L2 and
    // token file are where the stack puts them.
    const auto cachalot = services["cachalot"];
    const auto config_in_container = mounted_at(cachalot, "./cachalot.yaml");
    REQUIRE(config_in_container == cachalot["command"][1].as<std::string>());
    auto parsed = parse_config(slurp(kDeploy + "compose/cachalot.yaml"));
    INFO(format_errors("deploy/compose/cachalot.yaml", parsed.errors));
    REQUIRE(parsed.ok());
    const auto& c = *parsed.config;
    CHECK(container_ports(cachalot) == std::vector<unsigned>{c.listen.proxy.port, c.listen.admin.port});
    CHECK(mounted_at(cachalot, "./admin-token") == c.admin.token_file);
    REQUIRE(c.upstreams.size() == 1);
    const auto& server = c.upstreams[0].servers.at(0);
    REQUIRE(services[server.host]);
    const auto origin_args = services[server.host]["entrypoint"];
    CHECK(origin_args[1].as<std::string>() == std::to_string(server.port));
    CHECK(origin_args[2].as<std::string>() == "0.0.0.0");  // reachable from the cachalot container
    const auto l2 = c.cache.l2.address;
    REQUIRE(services[l2.substr(0, l2.find(':'))]);
    CHECK(l2.substr(l2.find(':') + 1) == "6379");  // redis-server's default port

    // The demo token file passes the token rules (read as load_config reads it).
    auto with_host_token = slurp(kDeploy + "compose/cachalot.yaml");
    with_host_token.replace(with_host_token.find(c.admin.token_file), c.admin.token_file.size(),
                            kDeploy + "compose/admin-token");
    const auto dir = std::filesystem::temp_directory_path() / ("cachalot-compose-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "cachalot.yaml") << with_host_token;
    auto loaded = load_config((dir / "cachalot.yaml").string());
    std::filesystem::remove_all(dir);
    INFO(format_errors("cachalot.yaml", loaded.errors));
    CHECK(loaded.ok());

    // Prometheus scrapes Cachalot's admin port as job "cachalot" and loads the alert rules
    // mounted beside its config.
    const auto prometheus = services["prometheus"];
    const auto scrape = YAML::LoadFile(kDeploy + "prometheus/prometheus.yml");
    CHECK(scrape["scrape_configs"][0]["job_name"].as<std::string>() == "cachalot");
    CHECK(scrape["scrape_configs"][0]["static_configs"][0]["targets"][0].as<std::string>() ==
          "cachalot:" + std::to_string(c.listen.admin.port));
    const auto config_dir = std::filesystem::path(mounted_at(prometheus, "../prometheus/prometheus.yml")).parent_path();
    CHECK(mounted_at(prometheus, "../prometheus/alerts.yml") ==
          (config_dir / scrape["rule_files"][0].as<std::string>()).string());

    // Grafana: the data source is Prometheus' port in the stack; the dashboard is where the
    // provider reads.
    const auto grafana = services["grafana"];
    const auto datasources = YAML::LoadFile(kDeploy + "grafana/provisioning/datasources/prometheus.yml");
    CHECK(datasources["datasources"][0]["url"].as<std::string>() ==
          "http://prometheus:" + std::to_string(container_ports(prometheus).at(0)));
    const auto providers = YAML::LoadFile(kDeploy + "grafana/provisioning/dashboards/cachalot.yml");
    CHECK(std::filesystem::path(mounted_at(grafana, "../grafana/cachalot.json")).parent_path() ==
          providers["providers"][0]["options"]["path"].as<std::string>());
    CHECK(mounted_at(grafana, "../grafana/provisioning") == "/etc/grafana/provisioning");
}

TEST_CASE("the Kubernetes manifests scrape, select and protect the same pods") {
    std::map<std::string, YAML::Node> docs;
    for (const auto& doc : YAML::LoadAllFromFile(kDeploy + "kubernetes/cachalot.yaml"))
        docs[doc["kind"].as<std::string>() + "/" + doc["metadata"]["name"].as<std::string>()] = doc;
    const auto deployment = docs.at("Deployment/cachalot");
    const auto pod = deployment["spec"]["template"];
    const auto app = pod["metadata"]["labels"]["app"].as<std::string>();
    auto parsed = parse_config(docs.at("ConfigMap/cachalot-config")["data"]["cachalot.yaml"].as<std::string>());
    REQUIRE(parsed.ok());
    const auto admin_port = parsed.config->listen.admin.port;

    // Annotation-based discovery scrapes the admin port.
    CHECK(pod["metadata"]["annotations"]["prometheus.io/port"].as<std::string>() == std::to_string(admin_port));
    // The admin Service selects the pods and targets the container port named admin, which is
    // the config's admin port.
    const auto admin = docs.at("Service/cachalot-admin");
    CHECK(admin["spec"]["selector"]["app"].as<std::string>() == app);
    unsigned container_admin = 0;
    for (const auto& port : pod["spec"]["containers"][0]["ports"])
        if (port["name"].as<std::string>() == "admin") container_admin = port["containerPort"].as<unsigned>();
    CHECK(container_admin == admin_port);
    CHECK(admin["spec"]["ports"][0]["targetPort"].as<std::string>() == "admin");
    // The ServiceMonitor selects that Service by its labels and port name, as job "cachalot".
    const auto monitor = YAML::LoadFile(kDeploy + "kubernetes/monitoring.yaml");
    for (const auto& label : monitor["spec"]["selector"]["matchLabels"])
        CHECK(admin["metadata"]["labels"][label.first.as<std::string>()].as<std::string>() == label.second.as<std::string>());
    CHECK(monitor["spec"]["endpoints"][0]["port"].as<std::string>() == "admin");
    CHECK(admin["metadata"]["labels"][monitor["spec"]["jobLabel"].as<std::string>()].as<std::string>() == "cachalot");
    // The disruption budget covers the same pods and leaves most of them serving.
    const auto pdb = docs.at("PodDisruptionBudget/cachalot");
    CHECK(pdb["spec"]["selector"]["matchLabels"]["app"].as<std::string>() == app);
    CHECK(pdb["spec"]["maxUnavailable"].as<int>() < deployment["spec"]["replicas"].as<int>());
}
