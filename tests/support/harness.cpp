#include "support/harness.hpp"

#include "cachalot/core/bhttp.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>

namespace cachalot::test {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

std::uint16_t free_port() {
    net::io_context ioc;
    tcp::acceptor a(ioc, {net::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
}

namespace {

struct TempDirs {
    std::vector<std::string> dirs;
    ~TempDirs() {
        // Kept when CACHALOT_KEEP_TEST_DIRS is set, to read a failed test's logs.
        if (std::getenv("CACHALOT_KEEP_TEST_DIRS")) return;
        for (auto& d : dirs) std::filesystem::remove_all(d);
    }
} temp_dirs;

}  // namespace

std::string temp_dir() {
    std::string pattern = "/tmp/cachalot-test-XXXXXX";
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    temp_dirs.dirs.push_back(pattern);
    return pattern;
}

// ---------------------------------------------------------------------------------------------
// TestOrigin

TestOrigin::TestOrigin(Handler handler, const std::string& address, std::uint16_t port)
    : handler_(handler ? std::move(handler) : [](const OriginRequest&) { return Reply{.body = "ok"}; }),
      acceptor_(ioc_, {net::ip::make_address(address), port}) {
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] {
        for (;;) {
            auto socket = std::make_shared<tcp::socket>(ioc_);
            beast::error_code ec;
            acceptor_.accept(*socket, ec);
            if (stopped_) break;
            if (ec) continue;
            std::lock_guard lock(mutex_);
            auto id = ++connections_;
            sockets_.push_back(socket);
            threads_.emplace_back([this, socket, id] { serve(socket, id); });
        }
    });
}

StubDns::StubDns() : socket_(ioc_, net::ip::udp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    port_ = socket_.local_endpoint().port();
    thread_ = std::thread([this] {
        std::array<unsigned char, 512> q;
        for (;;) {
            net::ip::udp::endpoint from;
            beast::error_code ec;
            const auto n = socket_.receive_from(net::buffer(q), from, 0, ec);
            if (stopping_) return;
            if (n < 12 + 5) continue;
            // The question: labels from byte 12, then type and class.
            std::string name;
            std::size_t at = 12;
            while (at < n && q[at] != 0) {
                const std::size_t len = q[at];
                if (at + 1 + len >= n) break;
                if (!name.empty()) name += '.';
                name.append(reinterpret_cast<const char*>(&q[at + 1]), len);
                at += 1 + len;
            }
            if (at + 5 > n) continue;
            const unsigned type = q[at + 1] << 8 | q[at + 2];
            const std::size_t question_end = at + 5;
            std::vector<std::string> addresses;
            bool known = false;
            {
                std::lock_guard lock(mutex_);
                if (auto it = names_.find(name); it != names_.end()) {
                    known = true;
                    if (type == 1) addresses = it->second;
                }
            }
            std::string out(reinterpret_cast<const char*>(q.data()), question_end);
            out[2] = static_cast<char>(0x81);                         // a response, recursion desired
            out[3] = static_cast<char>(known ? 0x80 : 0x83);           // recursion available; NXDOMAIN
            out[6] = 0;
            out[7] = static_cast<char>(addresses.size());              // answers
            out[8] = out[9] = out[10] = out[11] = 0;
            for (const auto& a : addresses) {
                const auto bytes = net::ip::make_address_v4(a).to_bytes();
                out += std::string("\xc0\x0c", 2);                   // the name: the question's
                out += std::string("\x00\x01\x00\x01", 4);         // A, IN
                out += std::string("\x00\x00\x00\x01", 4);         // TTL 1 s
                out += std::string("\x00\x04", 2);
                out.append(reinterpret_cast<const char*>(bytes.data()), 4);
            }
            ++queries_;
            socket_.send_to(net::buffer(out), from, 0, ec);
        }
    });
}

StubDns::~StubDns() {
    stopping_ = true;
    // A datagram of its own wakes the blocking receive.
    net::ip::udp::socket waker(ioc_, net::ip::udp::v4());
    beast::error_code ignored;
    waker.send_to(net::buffer("x", 1), socket_.local_endpoint(), 0, ignored);
    thread_.join();
}

void StubDns::set(const std::string& name, const std::vector<std::string>& addresses) {
    std::lock_guard lock(mutex_);
    names_[name] = addresses;
}

TestOrigin::~TestOrigin() {
    stop();
    if (accept_thread_.joinable()) accept_thread_.join();
    std::vector<std::thread> threads;
    {
        std::lock_guard lock(mutex_);
        threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
}

void TestOrigin::stop() {
    if (stopped_.exchange(true)) return;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);  // wakes the blocking accept
    if (accept_thread_.joinable()) accept_thread_.join();
    beast::error_code ec;
    acceptor_.close(ec);
    std::lock_guard lock(mutex_);
    for (auto& s : sockets_) ::shutdown(s->native_handle(), SHUT_RDWR);
}

std::size_t TestOrigin::request_count() const {
    std::lock_guard lock(mutex_);
    return requests_.size();
}

std::vector<OriginRequest> TestOrigin::requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
}

OriginRequest TestOrigin::last_request() const {
    std::lock_guard lock(mutex_);
    if (requests_.empty()) throw std::runtime_error("the origin received no request");
    return requests_.back();
}

void TestOrigin::serve(std::shared_ptr<tcp::socket> socket, std::size_t id) {
    beast::flat_buffer buffer;
    beast::error_code ec;
    for (std::size_t n = 1;; ++n) {
        bhttp::request_parser<bhttp::string_body> parser;
        parser.body_limit(1ull << 30);
        bhttp::read(*socket, buffer, parser, ec);
        if (ec) break;
        auto& req = parser.get();
        OriginRequest seen{std::string(req.method_string()), std::string(req.target()), req.base(), req.body(), id, n};
        {
            std::lock_guard lock(mutex_);
            requests_.push_back(seen);
        }
        Reply reply = handler_(seen);
        if (reply.delay.count() > 0) std::this_thread::sleep_for(reply.delay);
        if (stopped_) break;
        if (reply.close_without_answer) break;
        if (reply.raw) {
            net::write(*socket, net::buffer(*reply.raw), ec);
            break;
        }
        if (!reply.parts.empty()) {
            net::write(*socket, net::buffer(reply.parts[0]), ec);
            for (std::size_t round = 0, i = 1; !ec && round < reply.repeat; ++round)
                for (std::size_t part = 1; !ec && part < reply.parts.size(); ++part, ++i) {
                    if (reply.before_part) reply.before_part(i);
                    net::write(*socket, net::buffer(reply.parts[part]), ec);
                }
            if (ec) ++cut_writes_;
            if (reply.reset_after) {
                socket->set_option(net::socket_base::linger(true, 0), ec);
                socket->close(ec);
                return;
            }
            break;
        }
        bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(reply.status), 11};
        res.keep_alive(reply.keep_alive && req.keep_alive());
        bool framed = false;
        for (auto& [name, value] : reply.headers) {
            res.insert(name, value);
            framed = framed || beast::iequals(name, "Content-Length") || beast::iequals(name, "Transfer-Encoding");
        }
        res.body() = reply.body;
        if (!framed) res.prepare_payload();
        if (req.method() == bhttp::verb::head) res.body().clear();
        bhttp::serializer<false, bhttp::string_body> sr{res};
        if (req.method() == bhttp::verb::head) sr.split(true), bhttp::write_header(*socket, sr, ec);
        else bhttp::write(*socket, sr, ec);
        if (!ec && !reply.then_send.empty()) {
            std::this_thread::sleep_for(10ms);
            net::write(*socket, net::buffer(reply.then_send), ec);
            ++unsolicited_writes_;
        }
        if (ec || !res.keep_alive()) break;
    }
    ::shutdown(socket->native_handle(), SHUT_RDWR);
}

void Gate::open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    opened_.notify_all();
}

bool Gate::wait() {
    std::unique_lock lock(mutex_);
    return opened_.wait_for(lock, 10s, [this] { return open_; });
}

// ---------------------------------------------------------------------------------------------
// Daemon

std::string proxy_config(std::uint16_t origin_port, const std::string& extra, const std::string& upstream_extra,
                         unsigned workers) {
    std::ostringstream c;
    c << "listen:\n"
         "  proxy: {address: 127.0.0.1, port: {proxy_port}}\n"
         "  admin: {address: 127.0.0.1, port: {admin_port}}\n"
      << "workers: " << workers << "\n"
      << "upstreams:\n"
         "  - name: origin\n"
         "    host: 127.0.0.1\n"
         "    port: " << origin_port << "\n"
      << upstream_extra
      << "routes:\n"
         "  - name: default\n"
         "    match: {path_prefix: /}\n"
         "    upstream: origin\n"
         "cache:\n"
         "  l1: {path: \"{l1_path}\", size: 8MiB, max_object_size: 256KiB}\n"
      << extra;
    return c.str();
}

std::string with_route_cache(std::string config, const std::string& flow_map) {
    const std::string anchor = "    upstream: origin\n";
    config.replace(config.find(anchor), anchor.size(), anchor + "    cache: " + flow_map + "\n");
    return config;
}

std::string with_servers(std::string config, const std::vector<std::pair<std::uint16_t, unsigned>>& servers) {
    const auto from = config.find("    host: 127.0.0.1\n");
    const auto to = config.find('\n', config.find("    port: ", from)) + 1;
    std::string list = "    servers:\n";
    for (const auto& [port, weight] : servers)
        list += "      - {host: 127.0.0.1, port: " + std::to_string(port) + ", weight: " + std::to_string(weight) + "}\n";
    config.replace(from, to - from, list);
    return config;
}

SharedL1::SharedL1(const std::string& name)
    : path_("/dev/shm/cachalot-test-" + name + "-" + std::to_string(getpid())) {
    std::filesystem::remove(path_);
}

SharedL1::~SharedL1() { std::filesystem::remove(path_); }

std::string SharedL1::use_in(std::string config) const {
    config.replace(config.find("{l1_path}"), 9, path_);
    return config;
}

std::string without_l1(std::string config) {
    const std::string l1 = "size: 8MiB, max_object_size: 256KiB";
    config.replace(config.find(l1), l1.size(), "size: 0");
    return config;
}

namespace {

void replace_all(std::string& s, const std::string& from, const std::string& to) {
    for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
        s.replace(pos, from.size(), to);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

pid_t spawn(const std::vector<std::string>& args, int out_fd, const char* program = CACHALOT_BINARY) {
    pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        dup2(out_fd, 1);
        dup2(out_fd, 2);
        std::vector<char*> argv;
        argv.push_back(const_cast<char*>(program));
        for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        execv(program, argv.data());
        _exit(127);
    }
    return pid;
}

int decode_status(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

}  // namespace

Daemon::Daemon(const std::string& config_template) : dir_(temp_dir()) {
    // A port found free can be taken by a parallel test before the daemon binds it: then the
    // daemon exits at startup saying so, and it is started again on other ports.
    for (int attempt = 1;; ++attempt) {
        port_ = free_port();
        admin_port_ = free_port();
        while (admin_port_ == port_) admin_port_ = free_port();
        rewrite_config(config_template);
        process_ = ChildProcess(CACHALOT_BINARY, {"--config", config_path()}, dir_ + "/output.log");

        // Ready is this daemon's own log line (written once both listeners are bound) and then
        // its /readyz: a /readyz alone could be answered by a parallel test's daemon that took
        // the port while this one failed to bind it.
        const std::string listening = "listening on 127.0.0.1:" + std::to_string(port_) +
                                      " (admin 127.0.0.1:" + std::to_string(admin_port_) + ")";
        auto deadline = std::chrono::steady_clock::now() + 30s;
        while (std::chrono::steady_clock::now() < deadline) {
            if (!running()) break;
            try {
                if (output().find(listening) != std::string::npos &&
                    fetch(admin_port_, "/readyz").result_int() == 200)
                    return;
            } catch (const std::exception&) {
            }
            std::this_thread::sleep_for(20ms);
        }
        if (!running() && attempt < 5 && output().find("Address already in use") != std::string::npos) continue;
        if (!running()) throw std::runtime_error("cachalot exited at startup:\n" + output());
        process_.signal(SIGKILL);
        wait(5s);
        throw std::runtime_error("cachalot did not become ready:\n" + output());
    }
}

void Daemon::rewrite_config(const std::string& config_template) const {
    auto config = config_template;
    replace_all(config, "{proxy_port}", std::to_string(port_));
    replace_all(config, "{admin_port}", std::to_string(admin_port_));
    replace_all(config, "{l1_path}", l1_path());
    // (Written aside and renamed: a reload never reads half a file.)
    const auto aside = config_path() + ".new";
    std::ofstream(aside) << config;
    std::filesystem::rename(aside, config_path());
}

Daemon::~Daemon() {
    if (running()) {
        signal(SIGTERM);
        if (wait(20s) < 0) std::fprintf(stderr, "cachalot did not stop on SIGTERM; killed\n");
    }
    if (!std::getenv("CACHALOT_KEEP_TEST_DIRS")) std::filesystem::remove(l1_path());
}

std::string Daemon::l1_path() const { return "/dev/shm/cachalot-test-l1-" + dir_.substr(dir_.rfind('-') + 1); }

std::string Daemon::output() const { return read_file(dir_ + "/output.log"); }

ChildProcess::ChildProcess(const char* program, const std::vector<std::string>& args, const std::string& log) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_ = spawn(args, fd, program);
    ::close(fd);
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
    pid_ = std::exchange(other.pid_, -1);
    status_ = std::exchange(other.status_, -1);
    return *this;
}

void ChildProcess::signal(int sig) {
    if (pid_ > 0 && status_ < 0) ::kill(pid_, sig);
}

bool ChildProcess::running() {
    if (pid_ <= 0) return false;
    if (status_ >= 0) return false;
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
        status_ = decode_status(st);
        return false;
    }
    return true;
}

int ChildProcess::wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            ::kill(pid_, SIGKILL);
            int st = 0;
            waitpid(pid_, &st, 0);
            status_ = decode_status(st);
            return -1;
        }
        std::this_thread::sleep_for(10ms);
    }
    return status_;
}

DemoOrigin::DemoOrigin() : dir_(temp_dir()) {
    for (int attempt = 1;; ++attempt) {
        port_ = free_port();
        process_ = ChildProcess(CACHALOT_DEMO_ORIGIN, {std::to_string(port_)}, dir_ + "/output.log");
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        // Its own "listening" line first: /stats alone could reach another test's demo origin.
        const std::string listening = "demo origin listening on 127.0.0.1:" + std::to_string(port_) + "\n";
        while (process_.running() && std::chrono::steady_clock::now() < deadline) {
            try {
                if (read_file(dir_ + "/output.log").find(listening) != std::string::npos &&
                    fetch(port_, "/stats").result_int() == 200)
                    return;
            } catch (const std::exception&) {
            }
            std::this_thread::sleep_for(20ms);
        }
        const bool exited = !process_.running();
        process_.signal(SIGKILL);
        process_.wait(5s);
        if (exited && attempt < 5) continue;  // most likely its port was taken meanwhile
        throw std::runtime_error("cachalot-demo-origin did not start:\n" + read_file(dir_ + "/output.log"));
    }
}

DemoOrigin::~DemoOrigin() {
    process_.signal(SIGKILL);
    process_.wait(5s);
}

DescriptorStarvation::DescriptorStarvation(pid_t pid) : pid_(pid) {
    std::size_t open = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
        ++open;
    // Only the soft limit: raising a hard limit again needs CAP_SYS_RESOURCE, which a container's
    // root may lack.
    struct rlimit old {};
    if (::prlimit(pid, RLIMIT_NOFILE, nullptr, &old) != 0)
        throw std::runtime_error("prlimit failed: " + std::string(std::strerror(errno)));
    const struct rlimit tight{open, old.rlim_max};
    if (::prlimit(pid, RLIMIT_NOFILE, &tight, nullptr) != 0)
        throw std::runtime_error("prlimit failed: " + std::string(std::strerror(errno)));
    old_ = {old.rlim_cur, old.rlim_max};
    active_ = true;
}

void DescriptorStarvation::end() {
    if (!active_) return;
    const struct rlimit old{old_.soft, old_.hard};
    if (::prlimit(pid_, RLIMIT_NOFILE, &old, nullptr) != 0)
        std::fprintf(stderr, "could not restore the descriptor limit of %d: %s\n", int(pid_), std::strerror(errno));
    active_ = false;
}

bool connect_until(std::uint16_t port, std::vector<std::unique_ptr<Client>>& held, const std::function<bool()>& log_says) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!log_says() && std::chrono::steady_clock::now() < deadline) {
        if (held.size() < 64) held.push_back(std::make_unique<Client>(port));
        std::this_thread::sleep_for(10ms);
    }
    return log_says();
}

RunResult run_cachalot(const std::vector<std::string>& args) { return run_program(CACHALOT_BINARY, args); }

RunResult run_program(const std::string& program, const std::vector<std::string>& args) {
    auto dir = temp_dir();
    int fd = ::open((dir + "/output.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = spawn(args, fd, program.c_str());
    ::close(fd);
    int st = 0;
    waitpid(pid, &st, 0);
    return {decode_status(st), read_file(dir + "/output.log")};
}

// ---------------------------------------------------------------------------------------------
// Client

namespace {

// Runs one async operation on `ioc` for at most `timeout`; throws on timeout.
template <class Start>
beast::error_code run_for(net::io_context& ioc, tcp::socket& socket, std::chrono::milliseconds timeout,
                          Start&& start) {
    beast::error_code result;
    bool done = false;
    ioc.restart();
    start([&](beast::error_code ec, std::size_t) {
        result = ec;
        done = true;
    });
    ioc.run_for(timeout);
    if (!done) {
        beast::error_code ignored;
        socket.cancel(ignored);
        ioc.restart();
        ioc.run();
        throw std::runtime_error("client: timed out");
    }
    return result;
}

}  // namespace

Client::Client(std::uint16_t port, std::chrono::milliseconds timeout) : socket_(ioc_), timeout_(timeout) {
    socket_.connect({net::ip::make_address("127.0.0.1"), port});
    socket_.set_option(tcp::no_delay(true));
}

Client::~Client() = default;

Response Client::request(const std::string& method, const std::string& target, const Headers& headers,
                         const std::string& body) {
    bhttp::request<bhttp::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    for (auto& [name, value] : headers) req.insert(name, value);
    if (req.count(bhttp::field::host) == 0) req.set(bhttp::field::host, "localhost");
    req.body() = body;
    if (!body.empty() || method == "POST" || method == "PUT") req.prepare_payload();
    auto ec = run_for(ioc_, socket_, timeout_,
                      [&](auto handler) { bhttp::async_write(socket_, req, std::move(handler)); });
    if (ec) throw beast::system_error(ec);
    return read_response(method == "HEAD");
}

void Client::send_raw(const std::string& bytes) {
    auto ec = run_for(ioc_, socket_, timeout_,
                      [&](auto handler) { net::async_write(socket_, net::buffer(bytes), std::move(handler)); });
    if (ec) throw beast::system_error(ec);
}

Response Client::read_response(bool head) {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(1ull << 30);
    parser.skip(head);
    auto ec = run_for(ioc_, socket_, timeout_,
                      [&](auto handler) { bhttp::async_read(socket_, buffer_, parser, std::move(handler)); });
    if (ec) throw beast::system_error(ec);
    return parser.release();
}

std::string Client::read_until_close() {
    std::string out(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    buffer_.consume(buffer_.size());
    for (;;) {
        std::array<char, 4096> chunk;
        std::size_t got = 0;
        auto ec = run_for(ioc_, socket_, timeout_, [&](auto handler) {
            socket_.async_read_some(net::buffer(chunk), [&got, handler](beast::error_code e, std::size_t n) mutable {
                got = n;
                handler(e, n);
            });
        });
        out.append(chunk.data(), got);
        if (ec) return out;
    }
}

std::string Client::read_until(const std::string& needle) {
    for (;;) {
        const std::string_view have(static_cast<const char*>(buffer_.data().data()), buffer_.size());
        if (auto at = have.find(needle); at != std::string_view::npos) {
            std::string out(have.substr(0, at + needle.size()));
            buffer_.consume(out.size());
            return out;
        }
        std::size_t got = 0;
        auto space = buffer_.prepare(65536);
        auto ec = run_for(ioc_, socket_, timeout_, [&](auto handler) {
            socket_.async_read_some(space, [&got, handler](beast::error_code e, std::size_t n) mutable {
                got = n;
                handler(e, n);
            });
        });
        buffer_.commit(got);
        if (ec) throw beast::system_error(ec);
    }
}

Client::Ending Client::read_to_end(bool keep) {
    Ending end;
    end.count = buffer_.size();
    if (keep) end.bytes.assign(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    buffer_.consume(buffer_.size());
    std::vector<char> chunk(65536);
    for (;;) {
        std::size_t got = 0;
        auto ec = run_for(ioc_, socket_, timeout_, [&](auto handler) {
            socket_.async_read_some(net::buffer(chunk), [&got, handler](beast::error_code e, std::size_t n) mutable {
                got = n;
                handler(e, n);
            });
        });
        end.count += got;
        if (keep) end.bytes.append(chunk.data(), got);
        if (ec == net::error::eof) return end;
        if (ec == net::error::connection_reset) {
            end.reset = true;
            return end;
        }
        if (ec) throw beast::system_error(ec);
    }
}

bool Client::closed_by_peer() {
    try {
        read_until_close();
        return true;
    } catch (const std::runtime_error&) {
        return false;
    }
}

Response fetch(std::uint16_t port, const std::string& target, const std::string& method, const Headers& headers,
               const std::string& body) {
    Client c(port);
    return c.request(method, target, headers, body);
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return done();
}

double metric_value(const std::string& exposition, const std::string& series) {
    std::istringstream in(exposition);
    std::string line;
    while (std::getline(in, line))
        if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ')
            return std::stod(line.substr(series.size() + 1));
    return -1;
}

double await_metric(std::uint16_t admin_port, const std::string& series, double expected,
                    std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        double v = metric_value(fetch(admin_port, "/metrics").body(), series);
        if (v == expected || std::chrono::steady_clock::now() >= deadline) return v;
        std::this_thread::sleep_for(10ms);
    }
}

// ---------------------------------------------------------------------------------------------
// RedisServer

RedisServer::RedisServer(std::vector<std::string> extra)
    : dir_(temp_dir()), port_(free_port()), extra_(std::move(extra)) {
    start();
}

RedisServer::~RedisServer() { kill(); }

std::string RedisServer::address() const { return "127.0.0.1:" + std::to_string(port_); }

std::string RedisServer::unix_address() const { return "unix:" + dir_ + "/redis.sock"; }

void RedisServer::start() {
    for (int attempt = 1;; ++attempt) {
        int fd = ::open((dir_ + "/redis.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        std::vector<std::string> args{"--port",       std::to_string(port_), "--bind", "127.0.0.1",
                                      "--save",       "",                    "--appendonly", "no",
                                      "--dir",        dir_,                  "--unixsocket", dir_ + "/redis.sock"};
        args.insert(args.end(), extra_.begin(), extra_.end());
        pid_ = spawn(args, fd, "/usr/bin/redis-server");
        ::close(fd);
        auto deadline = std::chrono::steady_clock::now() + 10s;
        while (std::chrono::steady_clock::now() < deadline) {
            int st = 0;
            if (waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                break;
            }
            try {
                // Its own directory back proves this is our redis-server, not a parallel test's
                // that took the port while ours failed to bind it.
                if (command({"CONFIG", "GET", "dir"}).find(dir_) != std::string::npos) return;
            } catch (const std::exception&) {
            }
            std::this_thread::sleep_for(20ms);
        }
        kill();
        // The port was taken meanwhile (a parallel test): once more on another one.
        if (attempt < 5) {
            port_ = free_port();
            continue;
        }
        throw std::runtime_error("redis-server did not start:\n" + read_file(dir_ + "/redis.log"));
    }
}

void RedisServer::require_password(const std::string& password) {
    command({"CONFIG", "SET", "requirepass", password});
    password_ = password;
}

void RedisServer::pause() {
    if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void RedisServer::resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
}

void RedisServer::kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
}

namespace {

// Reads one RESP value from the stream as text (see RedisServer::command).
std::string read_resp(tcp::socket& s, net::streambuf& buf) {
    net::read_until(s, buf, "\r\n");
    std::istream in(&buf);
    std::string line;
    std::getline(in, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) throw std::runtime_error("empty RESP line");
    const char type = line[0];
    const std::string rest = line.substr(1);
    if (type == '+' || type == ':') return rest;
    if (type == '-') return "-" + rest;
    if (type == '$') {
        const long n = std::stol(rest);
        if (n < 0) return "(nil)";
        const std::size_t need = static_cast<std::size_t>(n) + 2;
        if (buf.size() < need) net::read(s, buf, net::transfer_at_least(need - buf.size()));
        std::string data(static_cast<std::size_t>(n), '\0');
        in.read(data.data(), n);
        in.ignore(2);
        return data;
    }
    if (type == '*') {
        const long n = std::stol(rest);
        std::string out;
        for (long i = 0; i < n; ++i) {
            if (i) out += '\n';
            out += read_resp(s, buf);
        }
        return out;
    }
    throw std::runtime_error("unexpected RESP type");
}

}  // namespace

std::string redis_command(std::uint16_t port, const std::vector<std::string>& args, const std::string& password) {
    net::io_context ioc;
    tcp::socket s(ioc);
    s.connect({net::ip::make_address("127.0.0.1"), port});
    auto encode = [](const std::vector<std::string>& argv) {
        std::string req = "*" + std::to_string(argv.size()) + "\r\n";
        for (const auto& a : argv) req += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
        return req;
    };
    net::streambuf buf;
    if (!password.empty()) {
        net::write(s, net::buffer(encode({"AUTH", password})));
        read_resp(s, buf);
    }
    net::write(s, net::buffer(encode(args)));
    return read_resp(s, buf);
}

std::string RedisServer::command(const std::vector<std::string>& args) { return redis_command(port_, args, password_); }

// ---------------------------------------------------------------------------------------------
// Redis Cluster, Sentinel

namespace {

// One node's line of CLUSTER NODES: "ID HOST:PORT@BUS FLAGS PRIMARY PING PONG EPOCH LINK SLOTS…".
struct ClusterNodeLine {
    std::uint16_t port = 0;
    bool primary = false, failed = false;
    std::vector<std::pair<unsigned, unsigned>> ranges;
};

std::vector<ClusterNodeLine> parse_cluster_nodes(const std::string& text) {
    std::vector<ClusterNodeLine> out;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream words(line);
        std::vector<std::string> w;
        for (std::string x; words >> x;) w.push_back(x);
        if (w.size() < 8) continue;
        ClusterNodeLine n;
        const auto colon = w[1].rfind(':'), at = w[1].find('@');
        n.port = static_cast<std::uint16_t>(std::stoi(w[1].substr(colon + 1, at - colon - 1)));
        n.primary = w[2].find("master") != std::string::npos;
        n.failed = w[2].find("fail") != std::string::npos;
        for (std::size_t i = 8; i < w.size(); ++i) {
            if (w[i].front() == '[') continue;  // a slot being migrated
            const auto dash = w[i].find('-');
            const unsigned lo = std::stoul(w[i].substr(0, dash));
            const unsigned hi = dash == std::string::npos ? lo : std::stoul(w[i].substr(dash + 1));
            n.ranges.emplace_back(lo, hi);
        }
        out.push_back(std::move(n));
    }
    return out;
}

}  // namespace

RedisCluster::RedisCluster(int primaries, int replicas) {
    const std::vector<std::string> cluster_args{"--cluster-enabled", "yes",
                                                "--cluster-config-file", "nodes.conf",
                                                "--cluster-node-timeout", "500",
                                                "--cluster-require-full-coverage", "no",
                                                "--cluster-replica-validity-factor", "0"};
    const int total = primaries * (1 + replicas);
    for (int i = 0; i < total; ++i) nodes_.push_back(std::make_unique<RedisServer>(cluster_args));
    std::vector<std::string> args{"--cluster", "create"};
    for (const auto& a : seeds()) args.push_back(a);
    args.insert(args.end(), {"--cluster-replicas", std::to_string(replicas), "--cluster-yes"});
    const auto created = run_program("/usr/bin/redis-cli", args);
    if (created.exit_code != 0) throw std::runtime_error("redis-cli --cluster create failed:\n" + created.output);
    await_healthy();
}

std::vector<std::string> RedisCluster::seeds() const {
    std::vector<std::string> out;
    for (const auto& n : nodes_) out.push_back(n->address());
    return out;
}

std::string RedisCluster::seeds_yaml() const {
    std::string out = "[";
    for (const auto& a : seeds()) out += (out.size() > 1 ? ", \"" : "\"") + a + "\"";
    return out + "]";
}

RedisServer& RedisCluster::any_live() {
    for (auto& n : nodes_)
        if (n->running()) return *n;
    throw std::runtime_error("no live cluster node");
}

unsigned RedisCluster::keyslot(const std::string& key) {
    return static_cast<unsigned>(std::stoul(any_live().command({"CLUSTER", "KEYSLOT", key})));
}

RedisServer& RedisCluster::owner(unsigned slot) {
    for (const auto& line : parse_cluster_nodes(any_live().command({"CLUSTER", "NODES"}))) {
        if (!line.primary || line.failed) continue;
        for (auto [lo, hi] : line.ranges)
            if (slot >= lo && slot <= hi)
                for (auto& n : nodes_)
                    if (n->port() == line.port) return *n;
    }
    throw std::runtime_error("no live primary serves slot " + std::to_string(slot));
}

std::string RedisCluster::command_on_owner(const std::string& key, const std::vector<std::string>& args) {
    return owner(key).command(args);
}

void RedisCluster::await_healthy(std::chrono::milliseconds timeout) {
    const bool ok = eventually(
        [&] {
            try {
                unsigned covered = 0;
                for (auto& n : nodes_) {
                    if (!n->running()) continue;
                    if (n->command({"CLUSTER", "INFO"}).find("cluster_state:ok") == std::string::npos) return false;
                    const auto repl = n->command({"INFO", "replication"});
                    if (repl.find("role:slave") != std::string::npos &&
                        repl.find("master_link_status:up") == std::string::npos)
                        return false;
                }
                for (const auto& line : parse_cluster_nodes(any_live().command({"CLUSTER", "NODES"})))
                    if (line.primary && !line.failed)
                        for (auto [lo, hi] : line.ranges) covered += hi - lo + 1;
                return covered == 16384;
            } catch (const std::exception&) {
                return false;
            }
        },
        timeout);
    if (!ok) throw std::runtime_error("the Redis Cluster did not become healthy");
}

RedisSentinels::RedisSentinels() : dir_(temp_dir()) {
    primary_ = std::make_unique<RedisServer>();
    replica_ = std::make_unique<RedisServer>(
        std::vector<std::string>{"--replicaof", "127.0.0.1", std::to_string(primary_->port())});
    if (!eventually([&] { return replica_->command({"INFO", "replication"}).find("master_link_status:up") != std::string::npos; }))
        throw std::runtime_error("the replica did not sync");
    for (int i = 0; i < 3; ++i) {
        const auto port = free_port();
        const auto conf = dir_ + "/sentinel-" + std::to_string(i) + ".conf";
        std::ofstream(conf) << "port " << port << "\nbind 127.0.0.1\ndir " << dir_ << "\n"
                            << "sentinel monitor cachalot 127.0.0.1 " << primary_->port() << " 2\n"
                            << "sentinel down-after-milliseconds cachalot 500\n"
                            << "sentinel failover-timeout cachalot 2000\n"
                            << "sentinel parallel-syncs cachalot 1\n";
        int fd = ::open((dir_ + "/sentinel-" + std::to_string(i) + ".log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        pids_.push_back(spawn({conf, "--sentinel"}, fd, "/usr/bin/redis-server"));
        ::close(fd);
        ports_.push_back(port);
    }
    // Ready when every sentinel has found the replica and the other sentinels.
    const bool ready = eventually(
        [&] {
            try {
                for (auto port : ports_) {
                    std::istringstream fields(redis_command(port, {"SENTINEL", "MASTER", "cachalot"}));
                    std::map<std::string, std::string> info;
                    for (std::string name, value; std::getline(fields, name) && std::getline(fields, value);)
                        info[name] = value;
                    if (info["num-slaves"] != "1" || info["num-other-sentinels"] != "2") return false;
                }
                return true;
            } catch (const std::exception&) {
                return false;
            }
        },
        20s);
    if (!ready) throw std::runtime_error("the sentinels did not find each other:\n" + read_file(dir_ + "/sentinel-0.log"));
}

RedisSentinels::~RedisSentinels() {
    for (auto pid : pids_) {
        ::kill(pid, SIGKILL);
        int st = 0;
        waitpid(pid, &st, 0);
    }
}

std::vector<std::string> RedisSentinels::addresses() const {
    std::vector<std::string> out;
    for (auto p : ports_) out.push_back("127.0.0.1:" + std::to_string(p));
    return out;
}

std::string RedisSentinels::current_primary() {
    for (auto port : ports_) {
        try {
            const auto reply = redis_command(port, {"SENTINEL", "get-master-addr-by-name", "cachalot"});
            const auto nl = reply.find('\n');
            if (nl != std::string::npos) return reply.substr(0, nl) + ":" + reply.substr(nl + 1);
        } catch (const std::exception&) {
        }
    }
    return {};
}

std::string RedisSentinels::command_on_primary(const std::vector<std::string>& args) {
    const auto now = current_primary();
    for (auto* r : {primary_.get(), replica_.get()})
        if (r->running() && r->address() == now) return r->command(args);
    throw std::runtime_error("the sentinels name no live primary (" + now + ")");
}

}  // namespace cachalot::test
