#include "store/redis/connection.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <vector>

namespace cachalot::store::redis {
namespace {

// What hiredis' ev hooks see: the descriptor we wait on, and which readiness hiredis wants.
struct Events {
    Events(const net::any_io_executor& ex, redisAsyncContext* c) : ac(c), sd(ex) {}
    redisAsyncContext* ac;
    net::posix::stream_descriptor sd;  // never owns the fd: hiredis closes it
    bool want_read = false, want_write = false;
    bool read_armed = false, write_armed = false;
    bool gone = false;                 // hiredis freed the context
    std::function<void()> on_gone;
};
using EventsPtr = std::shared_ptr<Events>;

void arm(const EventsPtr& e, bool read) {
    bool& armed = read ? e->read_armed : e->write_armed;
    if (e->gone || armed) return;
    armed = true;
    const auto what = read ? net::posix::descriptor_base::wait_read : net::posix::descriptor_base::wait_write;
    e->sd.async_wait(what, [e, read](const boost::system::error_code& ec) {
        (read ? e->read_armed : e->write_armed) = false;
        if (ec || e->gone || !(read ? e->want_read : e->want_write)) return;
        if (read) redisAsyncHandleRead(e->ac);
        else redisAsyncHandleWrite(e->ac);
        // hiredis may have freed the context in there (then `gone` is set).
        if (!e->gone && (read ? e->want_read : e->want_write)) arm(e, read);
    });
}

EventsPtr& events_of(void* privdata) { return *static_cast<EventsPtr*>(privdata); }

void add_read(void* p) {
    auto& e = events_of(p);
    e->want_read = true;
    arm(e, true);
}
void del_read(void* p) { events_of(p)->want_read = false; }
void add_write(void* p) {
    auto& e = events_of(p);
    e->want_write = true;
    arm(e, false);
}
void del_write(void* p) { events_of(p)->want_write = false; }
void cleanup(void* p) {
    auto* holder = static_cast<EventsPtr*>(p);
    auto e = std::move(*holder);
    delete holder;
    e->gone = true;
    e->want_read = e->want_write = false;
    boost::system::error_code ignored;
    if (e->sd.is_open()) e->sd.release();
    if (e->on_gone) std::exchange(e->on_gone, nullptr)();
}

Reply convert(const redisReply* r) {
    Reply out;
    if (!r) return out;  // Failed: the connection went away with this command in flight
    switch (r->type) {
        case REDIS_REPLY_STRING: out.kind = Reply::Kind::String; out.str.assign(r->str, r->len); break;
        case REDIS_REPLY_NIL: out.kind = Reply::Kind::Nil; break;
        case REDIS_REPLY_INTEGER: out.kind = Reply::Kind::Integer; out.integer = r->integer; break;
        case REDIS_REPLY_STATUS: out.kind = Reply::Kind::Status; out.str.assign(r->str, r->len); break;
        case REDIS_REPLY_ARRAY:
            out.kind = Reply::Kind::Array;
            for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
            break;
        default: out.kind = Reply::Kind::Error; out.str.assign(r->str ? r->str : "", r->str ? r->len : 0); break;
    }
    return out;
}

void on_reply(redisAsyncContext*, void* reply, void* privdata) {
    auto* holder = static_cast<std::shared_ptr<Pending>*>(privdata);
    auto pending = std::move(*holder);
    delete holder;
    pending->reply = convert(static_cast<redisReply*>(reply));
    pending->done = true;
    pending->timer.cancel();  // wakes the waiter, if it is waiting already
}

// Replies to the commands a connection sends for itself (AUTH, SELECT): only failures matter.
void on_setup_reply(redisAsyncContext*, void* reply, void* privdata) {
    auto* r = static_cast<redisReply*>(reply);
    if (r && r->type == REDIS_REPLY_ERROR)
        spdlog::warn("redis: {} refused: {}", static_cast<const char*>(privdata), std::string_view(r->str, r->len));
}

// Every reply on a subscribed connection: the SUBSCRIBE confirmation, then ["message", channel,
// payload] for each message; a null reply when the connection goes away.
void on_message(redisAsyncContext*, void* reply, void* privdata) {
    auto* r = static_cast<redisReply*>(reply);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
    auto* kind = r->element[0];
    auto* channel = r->element[1];
    auto* payload = r->element[2];
    if (kind->type != REDIS_REPLY_STRING || std::string_view(kind->str, kind->len) != "message") return;
    if (channel->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING) return;
    (*static_cast<Connection::MessageHandler*>(privdata))(std::string_view(channel->str, channel->len),
                                                        std::string_view(payload->str, payload->len));
}

std::shared_ptr<Pending> failed(const net::any_io_executor& ex) {
    auto p = std::make_shared<Pending>(ex);
    p->done = true;
    return p;
}

}  // namespace

net::awaitable<Reply> wait(std::shared_ptr<Pending> pending) {
    if (!pending->done) co_await pending->timer.async_wait(net::as_tuple(net::use_awaitable));
    if (!pending->done) {
        Reply r;
        r.kind = Reply::Kind::TimedOut;
        co_return r;
    }
    co_return std::move(pending->reply);
}

std::string Endpoint::name() const {
    if (!unix_path.empty()) return "unix:" + unix_path;
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Endpoint parse_endpoint(const std::string& address) {
    Endpoint ep;
    if (address.rfind("unix:", 0) == 0) {
        ep.unix_path = address.substr(5);
        return ep;
    }
    const auto colon = address.rfind(':');
    ep.host = address.substr(0, colon);
    if (ep.host.size() > 2 && ep.host.front() == '[' && ep.host.back() == ']') ep.host = ep.host.substr(1, ep.host.size() - 2);
    std::from_chars(address.data() + colon + 1, address.data() + address.size(), ep.port);
    return ep;
}

struct Connection::State {
    net::any_io_executor ex;
    Endpoint ep;
    std::chrono::milliseconds connect_timeout;
    net::steady_timer connect_timer;
    redisAsyncContext* ac = nullptr;
    EventsPtr events;
    bool connected = false;
    std::function<void()> on_not_primary;
    std::weak_ptr<State> weak_self;
    // With on_not_primary: commands wait here until ROLE has said "master".
    bool role_confirmed = false;
    std::vector<std::pair<std::vector<std::string>, std::shared_ptr<Pending>>> held;

    State(net::any_io_executor e, Endpoint p, std::chrono::milliseconds t, std::function<void()> not_primary)
        : ex(std::move(e)), ep(std::move(p)), connect_timeout(t), connect_timer(ex),
          on_not_primary(std::move(not_primary)) {}

    // ROLE's answer: ["master", offset, replicas] on a primary.
    static void on_role(redisAsyncContext* c, void* reply, void* privdata) {
        auto* r = static_cast<redisReply*>(reply);
        if (!r) return;  // the connection went away anyway
        const bool primary = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                             r->element[0]->type == REDIS_REPLY_STRING &&
                             std::string_view(r->element[0]->str, r->element[0]->len) == "master";
        auto* self = static_cast<State*>(privdata);
        if (!primary) spdlog::warn("redis: {} is not a primary (ROLE): dropping the connection", self->ep.name());
        // Not from inside hiredis' callback: once it has returned.
        net::post(self->ex, [weak = self->weak_self, raw = c, primary] {
            auto s = weak.lock();
            if (!s || s->ac != raw) return;
            if (primary) {
                s->role_confirmed = true;
                for (auto& [args, pending] : std::exchange(s->held, {})) s->issue(args, pending);
                return;
            }
            s->drop();
            if (s->on_not_primary) s->on_not_primary();
        });
    }

    // Hands a command to hiredis; its reply (or failure) completes `pending`.
    template <class Args>
    void issue(const Args& args, const std::shared_ptr<Pending>& pending) {
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        for (const auto& a : args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        auto* holder = new std::shared_ptr<Pending>(pending);
        if (!ac || redisAsyncCommandArgv(ac, on_reply, holder, static_cast<int>(argv.size()), argv.data(),
                                         lens.data()) != REDIS_OK) {
            delete holder;
            pending->done = true;
            pending->timer.cancel();
        }
    }

    void fail_held() {
        for (auto& [args, pending] : std::exchange(held, {})) {
            pending->done = true;  // a Failed reply
            pending->timer.cancel();
        }
    }

    static void on_connect(const redisAsyncContext* c, int status) {
        auto* self = static_cast<State*>(c->data);
        if (!self) return;
        if (status == REDIS_OK) {
            self->connected = true;
            self->connect_timer.cancel();
        } else {
            spdlog::debug("redis: cannot connect: {}", c->errstr ? c->errstr : "unknown error");
        }
    }

    bool start() {
        redisAsyncContext* c = ep.unix_path.empty() ? redisAsyncConnect(ep.host.c_str(), ep.port)
                                                    : redisAsyncConnectUnix(ep.unix_path.c_str());
        if (!c) return false;
        if (c->err) {
            spdlog::debug("redis: cannot connect: {}", c->errstr);
            redisAsyncFree(c);
            return false;
        }
        auto e = std::make_shared<Events>(ex, c);
        boost::system::error_code ec;
        e->sd.assign(c->c.fd, ec);
        if (ec) {
            redisAsyncFree(c);
            return false;
        }
        e->on_gone = [this, raw = e.get()] {
            if (events.get() != raw) return;
            fail_held();
            ac = nullptr;
            connected = false;
            events.reset();
            connect_timer.cancel();
        };
        c->data = this;
        c->ev.data = new EventsPtr(e);
        c->ev.addRead = add_read;
        c->ev.delRead = del_read;
        c->ev.addWrite = add_write;
        c->ev.delWrite = del_write;
        c->ev.cleanup = cleanup;
        redisAsyncSetConnectCallback(c, on_connect);
        ac = c;
        events = e;
        connected = false;
        role_confirmed = false;
        // Commands queue while connecting; these go first.
        if (!ep.password.empty()) {
            std::vector<const char*> argv{"AUTH"};
            std::vector<std::size_t> lens{4};
            if (!ep.username.empty()) {
                argv.push_back(ep.username.data());
                lens.push_back(ep.username.size());
            }
            argv.push_back(ep.password.data());
            lens.push_back(ep.password.size());
            redisAsyncCommandArgv(c, on_setup_reply, const_cast<char*>("AUTH"), static_cast<int>(argv.size()),
                                  argv.data(), lens.data());
        }
        if (ep.db != 0) {
            const auto db = std::to_string(ep.db);
            const char* argv[] = {"SELECT", db.c_str()};
            const std::size_t lens[] = {6, db.size()};
            redisAsyncCommandArgv(c, on_setup_reply, const_cast<char*>("SELECT"), 2, argv, lens);
        }
        if (on_not_primary) redisAsyncCommand(c, on_role, this, "ROLE");
        // Writability completes the non-blocking connect.
        add_write(c->ev.data);
        connect_timer.expires_after(connect_timeout);
        connect_timer.async_wait([this, raw = e.get()](const boost::system::error_code& ec) {
            if (ec || events.get() != raw || connected) return;
            spdlog::debug("redis: connect timed out");
            drop();
        });
        return true;
    }

    void drop() {
        fail_held();
        if (!ac) return;
        auto* c = ac;
        redisAsyncFree(c);  // fails what is in flight, then cleanup() clears our pointers
        ac = nullptr;
        events.reset();
        connected = false;
    }
};

Connection::Connection(net::any_io_executor executor, Endpoint endpoint, std::chrono::milliseconds connect_timeout,
                       std::function<void()> on_not_primary)
    : state_(std::make_shared<State>(std::move(executor), std::move(endpoint), connect_timeout,
                                     std::move(on_not_primary))) {
    state_->weak_self = state_;
}

Connection::~Connection() {
    state_->drop();
    state_->connect_timer.cancel();
}

bool Connection::open() const { return state_->ac != nullptr; }

bool Connection::subscribe(const std::vector<std::string>& channels, MessageHandler* handler) {
    auto& s = *state_;
    if (!s.ac && !s.start()) return false;
    std::vector<const char*> argv{"SUBSCRIBE"};
    std::vector<std::size_t> lens{9};
    for (const auto& c : channels) {
        argv.push_back(c.data());
        lens.push_back(c.size());
    }
    return redisAsyncCommandArgv(s.ac, on_message, handler, static_cast<int>(argv.size()), argv.data(), lens.data()) ==
           REDIS_OK;
}

void Connection::reset() { state_->drop(); }

std::shared_ptr<Pending> Connection::send(const std::vector<std::string_view>& args,
                                          std::chrono::milliseconds timeout) {
    auto& s = *state_;
    if (!s.ac && !s.start()) return failed(s.ex);
    auto pending = std::make_shared<Pending>(s.ex);
    pending->timer.expires_after(timeout);
    if (s.on_not_primary && !s.role_confirmed)
        s.held.emplace_back(std::vector<std::string>(args.begin(), args.end()), pending);
    else
        s.issue(args, pending);
    return pending;
}

}  // namespace cachalot::store::redis
