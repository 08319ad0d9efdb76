#pragma once
// Zero-downtime restart on one host (binary upgrades): the running process hands its listening
// sockets to a successor started with `--upgrade`, over the Unix socket listen.upgrade_socket,
// with SCM_RIGHTS (as Envoy's hot restart and Pingora's --upgrade do). Both processes then
// hold the same sockets: a connection queued on them is accepted by one or the other, none is
// reset (SO_REUSEPORT alone would reset those queued on the socket that closes). The successor
// attaches to the same L1 file, so it is warm from its first request.
//
//   successor                                running process
//   connects, sends "upgrade\n"        →
//                                      ←     "listeners\n" with [proxy, admin] (SCM_RIGHTS)
//   accepts on both, serves
//   sends "ready\n"                    →     stops accepting, closes its upgrade socket
//                                      ←     "draining\n"
//   binds the upgrade socket anew            drains in-flight requests, exits 0
//
// Each side checks that the other runs as the same user (SO_PEERCRED); the successor checks
// that the sockets listen where its own configuration says. A successor that dies before
// "ready" changes nothing: the running process keeps serving.

#include "core/net.hpp"

#include <sys/types.h>

#include <array>
#include <functional>
#include <memory>
#include <string>

namespace cachalot::server {

/// The successor's side, at startup, before it serves (blocking calls, each within 10 s).
class Takeover {
public:
    /// Connects to the running process at `path` and receives its listening sockets; throws
    /// std::runtime_error with the reason (nothing there, another user, a refusal).
    explicit Takeover(const std::string& path);
    ~Takeover();
    Takeover(const Takeover&) = delete;
    Takeover& operator=(const Takeover&) = delete;

    /// The proxy and admin listening sockets; the caller owns them from then on.
    int release_proxy() { return std::exchange(proxy_, -1); }
    int release_admin() { return std::exchange(admin_, -1); }
    /// The running process' pid.
    pid_t peer() const { return peer_; }

    /// Tells the running process that this one serves, and waits until it has stopped
    /// accepting; throws when it does not say so.
    void serving();

private:
    int conn_ = -1;
    int proxy_ = -1;
    int admin_ = -1;
    pid_t peer_ = 0;
};

/// The running process' side: successors are awaited on the Unix socket at `path` (mode 0600;
/// a stale socket file there is replaced, anything else refused), on `ioc`.
class UpgradeListener {
public:
    /// `listeners()` gives the proxy and admin listening sockets to pass on; `handed_over()`
    /// is called once a successor serves (on ioc's thread): stop accepting and drain.
    UpgradeListener(net::io_context& ioc, std::string path, std::function<std::array<int, 2>()> listeners,
                    std::function<void()> handed_over);
    ~UpgradeListener();
    UpgradeListener(const UpgradeListener&) = delete;
    UpgradeListener& operator=(const UpgradeListener&) = delete;

    /// Stops waiting for successors (the socket file stays for the successor to replace).
    void close();

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

/// Starts `program --config config_path --upgrade` (the binary at the path this process was
/// started from: a new build installed there since is what runs), as a child of this process
/// (under systemd: in the service's cgroup). Returns its pid; throws when it cannot start.
pid_t spawn_successor(const std::string& program, const std::string& config_path);

/// Tells systemd (Type=notify; NotifyAccess=all for upgrades) about this process: `state` is a
/// sd_notify message ("READY=1\nMAINPID=…", "STOPPING=1"). Does nothing without NOTIFY_SOCKET.
void notify_service_manager(const std::string& state);

/// Binds and listens on a Unix stream socket at `path`, mode 0600. A socket file nobody
/// listens on is replaced; a symbolic link, another kind of file or a socket someone listens
/// on is an error (std::runtime_error). Returns the descriptor.
int listen_unix(const std::string& path);

}  // namespace cachalot::server
