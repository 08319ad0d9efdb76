#include "server/handoff.hpp"

#include <spdlog/spdlog.h>

#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <stdexcept>

extern char** environ;

namespace cachalot::server {
namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

std::runtime_error failure(const std::string& what) { return std::runtime_error(what + ": " + std::strerror(errno)); }

sockaddr_un address_of(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) throw std::runtime_error(path + ": too long for a Unix socket path");
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return a;
}

// The peer's credentials; refused unless it runs as this process' user.
ucred same_user(int fd, const std::string& path) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) throw failure(path + ": SO_PEERCRED");
    if (cred.uid != ::geteuid())
        throw std::runtime_error(path + ": the process at the other end runs as uid " + std::to_string(cred.uid) +
                                 ", not as this one's (" + std::to_string(::geteuid()) + ")");
    return cred;
}

// A directory others may write in could have the socket replaced under us: refused unless
// it is sticky (as /tmp is), where only the owner can remove it.
void check_directory(const std::string& path) {
    const auto slash = path.rfind('/');
    const auto dir = slash == 0 ? std::string("/") : path.substr(0, slash);
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0) throw failure(dir);
    if (!S_ISDIR(st.st_mode)) throw std::runtime_error(dir + ": not a directory (a symbolic link?)");
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
        throw std::runtime_error(dir + ": writable by others and not sticky; put listen.upgrade_socket elsewhere");
}

void write_all(int fd, std::string_view text) {
    while (!text.empty()) {
        const auto n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw failure("upgrade socket: write");
        text.remove_prefix(static_cast<std::size_t>(n));
    }
}

// One line (at most 64 bytes), read a byte at a time so nothing after it is taken.
std::string read_line(int fd) {
    std::string line;
    while (line.size() < 64) {
        char c;
        const auto n = ::recv(fd, &c, 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw failure("upgrade socket: read");
        if (n == 0) break;
        line += c;
        if (c == '\n') break;
    }
    return line;
}

// Sends `text` with the descriptors `fds` attached.
bool send_with_fds(int socket, std::string_view text, const std::array<int, 2>& fds) {
    msghdr msg{};
    iovec iov{const_cast<char*>(text.data()), text.size()};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)]{};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    auto* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * 2);
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * 2);
    return ::sendmsg(socket, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

}  // namespace

pid_t spawn_successor(const std::string& program, const std::string& config_path) {
    std::vector<std::string> args{program, "--config", config_path, "--upgrade"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (const int error = ::posix_spawn(&pid, program.c_str(), nullptr, nullptr, argv.data(), environ); error != 0)
        throw std::runtime_error("cannot start " + program + ": " + std::strerror(error));
    return pid;
}

void notify_service_manager(const std::string& state) {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (!path || !*path) return;
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string p(path);
    if (p.size() >= sizeof a.sun_path) return;
    std::memcpy(a.sun_path, p.data(), p.size());
    if (a.sun_path[0] == '@') a.sun_path[0] = '\0';  // an abstract socket
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&a),
             static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + p.size()));
    ::close(fd);
}

int listen_unix(const std::string& path) {
    check_directory(path);
    const auto address = address_of(path);
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) throw std::runtime_error(path + ": exists and is not a socket; not replaced");
        const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const bool answered = ::connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
        ::close(probe);
        if (answered) throw std::runtime_error(path + ": another process listens there (start with --upgrade to take over)");
        ::unlink(path.c_str());  // (stale: left by a process that has gone)
    }
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw failure(path);
    // (Made with no permission for others from the start: no moment when anyone could connect.)
    const auto old_mask = ::umask(0177);
    const int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    ::umask(old_mask);
    if (bound != 0 || ::listen(fd, 4) != 0) {
        const auto error = failure(path);
        ::close(fd);
        throw error;
    }
    return fd;
}

// ---- the successor ------------------------------------------------------------------------------

Takeover::Takeover(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) throw failure("--upgrade: nothing to take over from at " + path);
    if (!S_ISSOCK(st.st_mode)) throw std::runtime_error("--upgrade: " + path + " is not a socket");
    if (st.st_uid != ::geteuid()) throw std::runtime_error("--upgrade: " + path + " belongs to another user");
    conn_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (conn_ < 0) throw failure(path);
    timeval timeout{10, 0};
    ::setsockopt(conn_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(conn_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    const auto address = address_of(path);
    if (::connect(conn_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        const auto error = failure("--upgrade: no running process answers at " + path);
        ::close(conn_);
        throw error;
    }
    try {
        peer_ = same_user(conn_, path).pid;
        write_all(conn_, "upgrade\n");
        char text[16] = {};
        iovec iov{text, sizeof text - 1};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)]{};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        const auto n = ::recvmsg(conn_, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0) throw failure("--upgrade: reading the listening sockets");
        for (auto* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            const auto count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int fds[2] = {-1, -1};
            std::memcpy(fds, CMSG_DATA(c), sizeof(int) * std::min<std::size_t>(count, 2));
            proxy_ = fds[0];
            admin_ = fds[1];
        }
        if (std::string_view(text, static_cast<std::size_t>(n)) != "listeners\n" || proxy_ < 0 || admin_ < 0 ||
            (msg.msg_flags & MSG_CTRUNC))
            throw std::runtime_error("--upgrade: the process at " + path + " did not hand over its sockets");
    } catch (...) {
        for (int fd : {conn_, proxy_, admin_})
            if (fd >= 0) ::close(fd);
        throw;
    }
}

Takeover::~Takeover() {
    for (int* fd : {&conn_, &proxy_, &admin_}) {
        if (*fd >= 0) ::close(*fd);
        *fd = -1;
    }
}

void Takeover::serving() {
    write_all(conn_, "ready\n");
    if (read_line(conn_) != "draining\n")
        throw std::runtime_error("--upgrade: process " + std::to_string(peer_) + " did not confirm that it stopped accepting");
}

// ---- the running process ----------------------------------------------------------------------

struct UpgradeListener::Impl {
    Impl(net::io_context& c, std::string p, std::function<std::array<int, 2>()> l, std::function<void()> h)
        : ioc(c), path(std::move(p)), acceptor(c), listeners(std::move(l)), handed_over(std::move(h)) {}
    net::io_context& ioc;
    std::string path;
    net::local::stream_protocol::acceptor acceptor;
    std::function<std::array<int, 2>()> listeners;
    std::function<void()> handed_over;

    static net::awaitable<void> accept(std::shared_ptr<Impl> self) {
        while (self->acceptor.is_open()) {
            auto [ec, socket] = co_await self->acceptor.async_accept(use_tuple);
            if (!self->acceptor.is_open()) co_return;
            if (ec) {
                net::steady_timer pause(self->ioc, std::chrono::milliseconds(50));
                co_await pause.async_wait(use_tuple);
                continue;
            }
            co_await self->serve(std::move(socket));  // one successor at a time
        }
    }

    net::awaitable<void> serve(net::local::stream_protocol::socket socket) {
        pid_t pid = 0;
        try {
            pid = same_user(socket.native_handle(), path).pid;
        } catch (const std::exception& e) {
            spdlog::warn("upgrade refused: {}", e.what());
            co_return;
        }
        // A successor has this long to say it serves; else this process goes on as before.
        net::steady_timer limit(ioc, std::chrono::seconds(60));
        limit.async_wait([&socket](const beast::error_code& ec) {
            beast::error_code ignored;
            if (!ec) socket.close(ignored);
        });
        std::string line;
        auto [rec, n] = co_await net::async_read_until(socket, net::dynamic_buffer(line, 64), '\n', use_tuple);
        if (rec || line != "upgrade\n") co_return;
        spdlog::info("upgrade: process {} takes over the listening sockets", pid);
        if (!send_with_fds(socket.native_handle(), "listeners\n", listeners())) {
            spdlog::warn("upgrade: the listening sockets could not be sent to process {}", pid);
            co_return;
        }
        line.clear();
        auto [ready_ec, m] = co_await net::async_read_until(socket, net::dynamic_buffer(line, 64), '\n', use_tuple);
        if (ready_ec || line != "ready\n") {
            spdlog::warn("upgrade: process {} did not start serving; this one goes on", pid);
            co_return;
        }
        beast::error_code ignored;
        acceptor.close(ignored);
        spdlog::info("upgrade: process {} serves; this one stops accepting and drains", pid);
        handed_over();
        co_await net::async_write(socket, net::buffer(std::string_view("draining\n")), use_tuple);
        limit.cancel();
    }
};

UpgradeListener::UpgradeListener(net::io_context& ioc, std::string path, std::function<std::array<int, 2>()> listeners,
                                 std::function<void()> handed_over)
    : impl_(std::make_shared<Impl>(ioc, std::move(path), std::move(listeners), std::move(handed_over))) {
    impl_->acceptor.assign(net::local::stream_protocol(), listen_unix(impl_->path));
    net::co_spawn(ioc, Impl::accept(impl_), net::detached);
}

UpgradeListener::~UpgradeListener() { close(); }

void UpgradeListener::close() {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
}

}  // namespace cachalot::server
