#pragma once
// The integration harness: real processes and real sockets on loopback.
//
//   TestOrigin origin([](const OriginRequest& r) { return Reply{.body = "hi"}; });
//   Daemon cachalot(proxy_config(origin.port()));
//   auto res = Client(cachalot.port()).request("GET", "/");
//
// Every port is a free one picked at run time, so tests can run in parallel.

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace cachalot::test {

using namespace std::chrono_literals;
using Response = boost::beast::http::response<boost::beast::http::string_body>;
using Headers = std::vector<std::pair<std::string, std::string>>;

/// A TCP port that was free a moment ago on 127.0.0.1.
std::uint16_t free_port();

/// A fresh directory under /tmp, removed at exit of the test process.
std::string temp_dir();

// ---------------------------------------------------------------------------------------------
// Origin

/// A request as the origin received it.
struct OriginRequest {
    std::string method;
    std::string target;
    boost::beast::http::fields headers;
    std::string body;
    std::size_t connection = 0;  // 1-based number of the connection it came on
    std::size_t index_on_connection = 0;  // 1 for the first request of that connection
    std::string header(const std::string& name) const { return std::string(headers[name]); }
};

/// What the origin answers.
struct Reply {
    unsigned status = 200;
    Headers headers{};
    std::string body{};
    std::chrono::milliseconds delay{0};  // before answering
    std::optional<std::string> raw{};    // bytes to send instead of a well-formed response
    bool close_without_answer = false;   // drop the connection instead of answering
    bool keep_alive = true;
    /// Bytes written on the same connection 10 ms after the response, nobody having asked for
    /// them (a buggy or hostile origin); the connection then goes on serving requests.
    std::string then_send{};
    /// Raw bytes written in parts instead of a response: parts[0], then the rest `repeat` times
    /// over; `before_part(i)` runs (on the origin's thread) before part i > 0, so a test can hold
    /// the response mid-body. Then the connection is closed, or reset when `reset_after`.
    std::vector<std::string> parts = {};
    std::size_t repeat = 1;
    std::function<void(std::size_t)> before_part = {};
    bool reset_after = false;
};

/// A handler answering `body` with Cache-Control: no-store: every request reaches the origin
/// (to see which of several origins answered).
inline std::function<Reply(const OriginRequest&)> uncached(std::string body) {
    return [body](const OriginRequest&) { return Reply{.headers = {{"Cache-Control", "no-store"}}, .body = body}; };
}

/// A gate a thread waits at until the test opens it (at most 10 s: a test fails, never hangs).
class Gate {
public:
    void open();
    /// True when it was opened, false after 10 s.
    bool wait();

private:
    std::mutex mutex_;
    std::condition_variable opened_;
    bool open_ = false;
};

/// A real HTTP/1.1 origin on loopback, a thread per connection, counting what it sees.
class TestOrigin {
public:
    using Handler = std::function<Reply(const OriginRequest&)>;
    /// The default handler answers 200 with "ok". It listens on `address` (any loopback
    /// address: 127.0.0.2 is another host with the same port), port `port` (0: a free one).
    explicit TestOrigin(Handler handler = {}, const std::string& address = "127.0.0.1", std::uint16_t port = 0);
    ~TestOrigin();

    std::uint16_t port() const { return port_; }
    std::size_t connections() const { return connections_.load(); }
    /// How many Reply::then_send writes have been made.
    std::size_t unsolicited_writes() const { return unsolicited_writes_.load(); }
    /// How many Reply::parts responses could not be written to the end (the peer closed).
    std::size_t cut_writes() const { return cut_writes_.load(); }
    std::size_t request_count() const;
    std::vector<OriginRequest> requests() const;
    OriginRequest last_request() const;
    /// Stops listening and closes every connection: the port then refuses connections.
    void stop();

private:
    void serve(std::shared_ptr<boost::asio::ip::tcp::socket> socket, std::size_t id);

    Handler handler_;
    boost::asio::io_context ioc_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::uint16_t port_ = 0;
    std::atomic<std::size_t> connections_{0};
    std::atomic<std::size_t> unsolicited_writes_{0};
    std::atomic<std::size_t> cut_writes_{0};
    std::atomic<bool> stopped_{false};
    mutable std::mutex mutex_;
    std::vector<OriginRequest> requests_;
    std::vector<std::shared_ptr<boost::asio::ip::tcp::socket>> sockets_;
    std::vector<std::thread> threads_;
    std::thread accept_thread_;
};

/// A DNS server on a free UDP port of 127.0.0.1, answering A queries for the names it is given
/// (NXDOMAIN for others; no AAAA records), with a TTL of 1 s. set() changes the answers at once.
class StubDns {
public:
    StubDns();
    ~StubDns();
    StubDns(const StubDns&) = delete;
    std::uint16_t port() const { return port_; }
    /// `name` resolves to `addresses` (IPv4) from now on.
    void set(const std::string& name, const std::vector<std::string>& addresses);
    /// Queries answered so far.
    std::size_t queries() const { return queries_.load(); }

private:
    boost::asio::io_context ioc_;
    boost::asio::ip::udp::socket socket_;
    std::uint16_t port_ = 0;
    std::mutex mutex_;
    std::map<std::string, std::vector<std::string>> names_;
    std::atomic<std::size_t> queries_{0};
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// Cachalot

/// A config with the proxy and admin on free loopback ports ({proxy_port}, {admin_port} are
/// filled in by Daemon), one upstream "origin" and one route "default" to it, and a small L1
/// of the daemon's own ({l1_path}, removed with the Daemon). `extra` is
/// appended verbatim (top-level keys such as `client:`); `upstream_extra` goes inside the
/// upstream's mapping, indented by four spaces.
std::string proxy_config(std::uint16_t origin_port, const std::string& extra = "",
                         const std::string& upstream_extra = "", unsigned workers = 1);

/// `config` (from proxy_config) with `cache: <flow_map>` on its route, e.g. "{grace: 30s}".
std::string with_route_cache(std::string config, const std::string& flow_map);

/// `config` (from proxy_config) with its upstream's single server replaced by `servers` on
/// loopback: {port, weight} each.
std::string with_servers(std::string config, const std::vector<std::pair<std::uint16_t, unsigned>>& servers);

/// An L1 file that outlives one Daemon, for restarts and for processes sharing it: removed when
/// made and when it goes.
class SharedL1 {
public:
    explicit SharedL1(const std::string& name);
    ~SharedL1();
    SharedL1(const SharedL1&) = delete;
    const std::string& path() const { return path_; }
    /// `config` (from proxy_config) with its L1 in this file.
    std::string use_in(std::string config) const;

private:
    std::string path_;
};

/// `config` (from proxy_config) with the L1 turned off (cache.l1.size: 0).
std::string without_l1(std::string config);

/// A child process running `program` with `args`, its stdout and stderr going to `log`.
class ChildProcess {
public:
    ChildProcess() = default;
    ChildProcess(const char* program, const std::vector<std::string>& args, const std::string& log);
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(ChildProcess&& other) noexcept;

    pid_t pid() const { return pid_; }
    /// Sends `signal` while it runs.
    void signal(int signal);
    /// Waits for the process to exit (up to `timeout`) and returns its exit code, or -1 on
    /// timeout (then kills it), or 128+N when killed by signal N.
    int wait(std::chrono::milliseconds timeout = 20s);
    bool running();

private:
    pid_t pid_ = -1;
    int status_ = -1;
};

/// The real cachalot binary as a child process, started on construction and ready (its
/// /readyz answers 200) when the constructor returns. Stopped with SIGTERM on destruction.
class Daemon {
public:
    explicit Daemon(const std::string& config_template);
    ~Daemon();
    Daemon(const Daemon&) = delete;

    std::uint16_t port() const { return port_; }
    std::uint16_t admin_port() const { return admin_port_; }
    pid_t pid() const { return process_.pid(); }
    /// The daemon's own L1 file.
    std::string l1_path() const;
    /// Everything the process wrote to stdout and stderr so far.
    std::string output() const;
    /// Its configuration file.
    std::string config_path() const { return dir_ + "/cachalot.yaml"; }
    /// Writes `config_template` to its configuration file, filled in with its ports and L1 as
    /// at start (for a reload: SIGHUP, or POST /reload).
    void rewrite_config(const std::string& config_template) const;
    /// Sends `signal`. Use wait() for the exit status.
    void signal(int signal) { process_.signal(signal); }
    /// As ChildProcess::wait.
    int wait(std::chrono::milliseconds timeout = 20s) { return process_.wait(timeout); }
    bool running() { return process_.running(); }

private:
    std::string dir_;
    std::uint16_t port_ = 0;
    std::uint16_t admin_port_ = 0;
    ChildProcess process_;
};

/// The shipped cachalot-demo-origin on a free loopback port, answering when the constructor returns.
class DemoOrigin {
public:
    DemoOrigin();
    ~DemoOrigin();
    DemoOrigin(const DemoOrigin&) = delete;

    std::uint16_t port() const { return port_; }
    ChildProcess& process() { return process_; }
    /// Where its stdout and stderr go.
    std::string log() const { return dir_ + "/output.log"; }

private:
    std::string dir_;
    std::uint16_t port_ = 0;
    ChildProcess process_;
};

/// Runs the cachalot binary with `args` to completion; returns exit code and combined output.
struct RunResult {
    int exit_code;
    std::string output;
};
RunResult run_cachalot(const std::vector<std::string>& args);
/// Runs `program` (a full path) with `args` to completion, the same way.
RunResult run_program(const std::string& program, const std::vector<std::string>& args);

/// Lowers a running process' descriptor limit to the number it has open, so that its accepts
/// fail with EMFILE once any gaps in its descriptor numbers are used up. end() (or the
/// destructor) gives the old limit back.
class DescriptorStarvation {
public:
    explicit DescriptorStarvation(pid_t pid);
    ~DescriptorStarvation() { end(); }
    DescriptorStarvation(const DescriptorStarvation&) = delete;
    void end();

private:
    pid_t pid_;
    bool active_ = false;
    struct Limit {
        unsigned long long soft, hard;
    } old_{};
};

// ---------------------------------------------------------------------------------------------
// Redis

/// One command to the Redis (or sentinel) on 127.0.0.1:`port`, on a new connection; the reply as
/// RedisServer::command gives it.
std::string redis_command(std::uint16_t port, const std::vector<std::string>& args, const std::string& password = {});

/// A real redis-server on a free loopback port (no persistence), killed on destruction.
class RedisServer {
public:
    /// `extra` goes on its command line (cluster mode, a replica's settings…).
    explicit RedisServer(std::vector<std::string> extra = {});
    ~RedisServer();
    RedisServer(const RedisServer&) = delete;

    std::uint16_t port() const { return port_; }
    /// "127.0.0.1:PORT", as cache.l2.address takes it.
    std::string address() const;
    /// "unix:/…/redis.sock": the same server on its Unix socket.
    std::string unix_address() const;
    /// SIGKILL: the port refuses connections until start().
    void kill();
    /// Starts it again (empty) on the same port.
    void start();
    /// SIGSTOP / SIGCONT: connections stay open, nothing is answered.
    void pause();
    void resume();
    /// Turns AUTH on; command() then authenticates first.
    void require_password(const std::string& password);
    /// One command on a new connection. The reply as text: a bulk string's bytes, a status or an
    /// integer as written, "(nil)", an error as "-ERR …", an array's elements joined by '\n'.
    std::string command(const std::vector<std::string>& args);
    bool running() const { return pid_ > 0; }

private:
    std::string dir_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
    std::string password_;
    std::vector<std::string> extra_;
};

/// A Redis Cluster of real redis-servers on free ports, made by `redis-cli --cluster create`:
/// `primaries` primaries, each with `replicas` replicas. No persistence, a 500 ms node timeout,
/// and slots of a failed primary do not stop the others (cluster-require-full-coverage no).
class RedisCluster {
public:
    explicit RedisCluster(int primaries = 3, int replicas = 0);
    /// "127.0.0.1:PORT" of every node, as cache.l2.cluster takes them.
    std::vector<std::string> seeds() const;
    /// The same as a YAML flow list.
    std::string seeds_yaml() const;
    std::size_t size() const { return nodes_.size(); }
    RedisServer& node(std::size_t i) { return *nodes_[i]; }
    /// The slot of `key` (CLUSTER KEYSLOT).
    unsigned keyslot(const std::string& key);
    /// The primary serving `slot` now, as a live node's CLUSTER NODES says.
    RedisServer& owner(unsigned slot);
    RedisServer& owner(const std::string& key) { return owner(keyslot(key)); }
    /// A command on the primary serving `key`.
    std::string command_on_owner(const std::string& key, const std::vector<std::string>& args);
    /// Waits until every live node says cluster_state:ok, every slot has a live primary and every
    /// replica is in sync with its primary.
    void await_healthy(std::chrono::milliseconds timeout = 20s);

private:
    RedisServer& any_live();
    std::vector<std::unique_ptr<RedisServer>> nodes_;
};

/// One primary, one replica, and three sentinels (quorum 2, down-after 500 ms) watching the
/// primary as "cachalot".
class RedisSentinels {
public:
    RedisSentinels();
    ~RedisSentinels();
    RedisServer& primary() { return *primary_; }
    RedisServer& replica() { return *replica_; }
    /// "127.0.0.1:PORT" of each sentinel.
    std::vector<std::string> addresses() const;
    /// The primary the sentinels name now ("127.0.0.1:PORT"), asked of the first that answers.
    std::string current_primary();
    /// A command on the server the sentinels name as the primary.
    std::string command_on_primary(const std::vector<std::string>& args);

private:
    std::unique_ptr<RedisServer> primary_, replica_;
    std::string dir_;
    std::vector<std::uint16_t> ports_;
    std::vector<pid_t> pids_;
};

// ---------------------------------------------------------------------------------------------
// Client

/// One client connection. Every read gives up after a timeout, so a test fails, never hangs.
class Client {
public:
    explicit Client(std::uint16_t port, std::chrono::milliseconds timeout = 10s);
    ~Client();

    /// Sends a request and reads its response on this connection (keep-alive).
    Response request(const std::string& method, const std::string& target, const Headers& headers = {},
                     const std::string& body = "");
    /// Writes bytes as they are.
    void send_raw(const std::string& bytes);
    /// Reads one response (for HEAD requests pass head = true).
    Response read_response(bool head = false);
    /// Reads until the server closes; returns what came. Throws on timeout.
    std::string read_until_close();
    /// Reads until `needle` has come; returns everything read up to and including it. Throws on
    /// timeout or close.
    std::string read_until(const std::string& needle);
    /// Reads until the server ends the connection: the bytes (kept only when `keep`), their
    /// count, and whether it was reset rather than closed. Throws on timeout.
    struct Ending {
        std::string bytes;
        std::size_t count = 0;
        bool reset = false;
    };
    Ending read_to_end(bool keep = true);
    /// True if the server closed the connection (EOF or reset) within the timeout.
    bool closed_by_peer();

private:
    boost::asio::io_context ioc_;
    boost::asio::ip::tcp::socket socket_;
    boost::beast::flat_buffer buffer_;
    std::chrono::milliseconds timeout_;
};

/// GET (or another method) on a new connection.
Response fetch(std::uint16_t port, const std::string& target, const std::string& method = "GET",
               const Headers& headers = {}, const std::string& body = "");

/// Opens connections to `port` (kept in `held`) until `log_says()` is true, at most 64 of them
/// and for 10 s; returns whether it became true.
bool connect_until(std::uint16_t port, std::vector<std::unique_ptr<Client>>& held,
                   const std::function<bool()>& log_says);

/// Polls `done()` every 10 ms until it is true (returns true) or `timeout` passes (false).
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s);

/// The value of one sample in Prometheus text (`name{labels}` exactly as exposed), or -1.
double metric_value(const std::string& exposition, const std::string& series);

/// Polls the admin /metrics until `series` equals `expected` (metrics are recorded just after a
/// response is sent, so a client can see the response first); returns the last value seen.
double await_metric(std::uint16_t admin_port, const std::string& series, double expected,
                    std::chrono::milliseconds timeout = 5s);

}  // namespace cachalot::test
