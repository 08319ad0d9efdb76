// Zero-downtime restart (binary upgrades): a process started with --upgrade takes the listening
// sockets over from the running one (listen.upgrade_socket, SCM_RIGHTS), which then drains and
// exits; under a steady request stream nothing fails, and the new process serves hits from the
// L1 the old one filled.

#include "support/harness.hpp"

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>

using namespace cachalot::test;

namespace {

std::string with_upgrade_socket(std::string config, const std::string& path) {
    const std::string admin = "  admin: {address: 127.0.0.1, port: {admin_port}}\n";
    return config.replace(config.find(admin), admin.size(), admin + "  upgrade_socket: " + path + "\n");
}

std::string read_log(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("a takeover (--upgrade) under load: nothing fails, and the new process serves hits from the old one's L1") {
    TestOrigin origin([](const OriginRequest& r) {
        return Reply{.headers = {{"Cache-Control", "max-age=600"}}, .body = "page " + r.target};
    });
    SharedL1 l1("upgrade");
    const auto dir = temp_dir();
    Daemon old(with_upgrade_socket(l1.use_in(proxy_config(origin.port(), "", "", 2)), dir + "/upgrade.sock"));
    for (int i = 0; i < 20; ++i) REQUIRE(fetch(old.port(), "/k" + std::to_string(i)).result_int() == 200);
    REQUIRE(origin.request_count() == 20);

    // Clients: half on a new connection per request, half keep-alive. A keep-alive client retries
    // a request once when its connection was closed while idle (the server may close an idle
    // connection at any time; clients retry idempotent requests then, RFC 9112 §9.3.1).
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, failed{0}, retried{0};
    std::mutex mutex;
    std::string first_failure;
    auto stream = [&](bool keep_alive, int offset) {
        std::unique_ptr<Client> client;
        bool used = false;
        for (int i = offset; !stop; ++i) {
            const auto target = "/k" + std::to_string(i % 20);
            std::string problem;
            for (int attempt = 0; attempt < 2; ++attempt) {
                try {
                    if (!client) {
                        client = std::make_unique<Client>(old.port());
                        used = false;
                    }
                    const auto res = client->request("GET", target);
                    used = true;
                    if (!keep_alive || !res.keep_alive()) client.reset();
                    if (res.result_int() == 200 && res.body() == "page " + target &&
                        std::string(res["Cache-Status"]).find("hit") != std::string::npos) {
                        problem.clear();
                        ++ok;
                    } else {
                        problem = std::to_string(res.result_int()) + " " + std::string(res["Cache-Status"]);
                    }
                    break;
                } catch (const std::exception& e) {
                    problem = e.what();
                    const bool may_retry = keep_alive && used && attempt == 0;
                    client.reset();
                    if (!may_retry) break;
                    ++retried;
                }
            }
            if (!problem.empty()) {
                ++failed;
                std::lock_guard lock(mutex);
                if (first_failure.empty()) first_failure = target + ": " + problem;
            }
        }
    };
    std::vector<std::thread> clients;
    for (int i = 0; i < 4; ++i) clients.emplace_back(stream, i % 2 == 1, i * 5);
    REQUIRE(eventually([&] { return ok.load() >= 200; }, 20s));

    ChildProcess successor(CACHALOT_BINARY, {"--config", old.config_path(), "--upgrade"}, dir + "/successor.log");
    CHECK(old.wait(30s) == 0);  // handed over, drained, exited
    const int after = ok.load();
    CHECK(eventually([&] { return ok.load() >= after + 300; }, 20s));  // served by the successor alone
    stop = true;
    for (auto& t : clients) t.join();

    INFO("first failure: " << first_failure << "; keep-alive retries: " << retried.load());
    CHECK(failed == 0);
    CHECK(origin.request_count() == 20);  // every request after the fill was a hit, in both processes
    CHECK_THAT(old.output(), Catch::Contains("serves; this one stops accepting and drains"));
    CHECK_THAT(read_log(dir + "/successor.log"),
               Catch::Contains("took over the listening sockets of process " + std::to_string(old.pid())));
    // The admin listener went over too: these are the successor's counters, hits only.
    const auto metrics = fetch(old.admin_port(), "/metrics").body();
    CHECK(metric_value(metrics, R"(cachalot_cache_requests_total{result="hit",route="default"})") > 0);
    CHECK(metric_value(metrics, R"(cachalot_cache_requests_total{result="miss",route="default"})") == 0);
    CHECK(metric_value(metrics, "cachalot_l1_hits_total") > 0);

    successor.signal(SIGTERM);
    CHECK(successor.wait() == 0);
}

TEST_CASE("a takeover (--upgrade) with nothing to take over, or other listen addresses, fails and leaves the running process") {
    TestOrigin origin;
    const auto dir = temp_dir();
    const auto socket_path = dir + "/upgrade.sock";
    // Nothing there.
    {
        std::ofstream(dir + "/alone.yaml") << "listen:\n  proxy: {address: 127.0.0.1, port: " << free_port()
                                           << "}\n  admin: {address: 127.0.0.1, port: " << free_port()
                                           << "}\n  upgrade_socket: " << dir << "/nothing.sock\n"
                                           << "upstreams: [{name: o, host: 127.0.0.1, port: " << origin.port() << "}]\n"
                                           << "routes: [{name: r, upstream: o}]\ncache: {l1: {size: 0}}\n";
        const auto r = run_cachalot({"--config", dir + "/alone.yaml", "--upgrade"});
        CHECK(r.exit_code == 1);
        CHECK_THAT(r.output, Catch::Contains("--upgrade: nothing to take over from at " + dir + "/nothing.sock"));
    }
    // A successor whose configuration listens elsewhere is refused; the running one goes on.
    Daemon running(with_upgrade_socket(without_l1(proxy_config(origin.port())), socket_path));
    std::ofstream(dir + "/elsewhere.yaml") << "listen:\n  proxy: {address: 127.0.0.1, port: " << free_port()
                                           << "}\n  admin: {address: 127.0.0.1, port: " << running.admin_port()
                                           << "}\n  upgrade_socket: " << socket_path << "\n"
                                           << "upstreams: [{name: o, host: 127.0.0.1, port: " << origin.port() << "}]\n"
                                           << "routes: [{name: r, upstream: o}]\ncache: {l1: {size: 0}}\n";
    const auto r = run_cachalot({"--config", dir + "/elsewhere.yaml", "--upgrade"});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("a takeover keeps the listen addresses"));
    CHECK(eventually([&] { return running.output().find("did not start serving; this one goes on") != std::string::npos; }));
    CHECK(fetch(running.port(), "/").result_int() == 200);
    CHECK(running.running());
    // A second process without --upgrade cannot take the socket either.
    const auto second = run_cachalot({"--config", running.config_path()});
    CHECK(second.exit_code == 1);
}

TEST_CASE("SIGUSR2 starts a successor that takes over, and tells systemd the new main process") {
    // systemd's notification socket, as Type=notify gives it (NOTIFY_SOCKET), inherited by the
    // daemon and by the successor it starts.
    const auto dir = temp_dir();
    const auto notify_path = dir + "/notify";
    const int notify = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, notify_path.c_str(), notify_path.size() + 1);
    REQUIRE(::bind(notify, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    timeval timeout{20, 0};
    ::setsockopt(notify, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    auto next_message = [&](int flags = 0) {
        char text[256];
        const auto n = ::recv(notify, text, sizeof text, flags);
        return n > 0 ? std::string(text, static_cast<std::size_t>(n)) : std::string("(nothing)");
    };

    TestOrigin origin;
    ::setenv("NOTIFY_SOCKET", notify_path.c_str(), 1);
    Daemon old(with_upgrade_socket(proxy_config(origin.port()), dir + "/upgrade.sock"));
    ::unsetenv("NOTIFY_SOCKET");
    CHECK(next_message() == "READY=1\nMAINPID=" + std::to_string(old.pid()));

    old.signal(SIGUSR2);
    const auto ready = next_message();  // from the successor, once it serves
    REQUIRE_THAT(ready, Catch::StartsWith("READY=1\nMAINPID="));
    const pid_t successor = std::stoi(ready.substr(ready.find('=', 8) + 1));
    CHECK(successor != old.pid());
    CHECK(old.wait(30s) == 0);
    CHECK_THAT(old.output(), Catch::Contains("received SIGUSR2: started process " + std::to_string(successor)));
    // The old one has exited: whatever it sent is here. It must not have stopped the service.
    CHECK(next_message(MSG_DONTWAIT) == "(nothing)");
    CHECK(fetch(old.port(), "/").result_int() == 200);  // the successor serves on the same ports

    ::kill(successor, SIGTERM);
    CHECK(eventually([&] { return ::kill(successor, 0) != 0; }, 20s));
    ::close(notify);
}
