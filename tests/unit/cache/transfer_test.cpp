// A body in transit on its own: readers get bytes before the end, each at its own pace; what is
// kept for the store and what is not; back-pressure from the slowest reader; failure; readers
// on another thread's event loop. Event loops are run by hand (poll), so nothing here waits on
// time.

#include "cachalot/cache/transfer.hpp"

#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include <future>
#include <thread>

using namespace cachalot;
using namespace cachalot::cache;
namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {

// Reads everything a reader gets into `out`, then records how the body ended.
net::awaitable<void> drain(std::unique_ptr<Transfer::Reader> reader, std::string& out, bool& ended) {
    for (;;) {
        auto piece = co_await reader->next();
        if (piece.bytes.empty()) break;
        out.append(piece.bytes);
    }
    ended = true;
}

// Takes one piece into `out` (for staging readers step by step).
net::awaitable<void> take_one(Transfer::Reader& reader, std::string& out) {
    auto piece = co_await reader.next();
    out.append(piece.bytes);
}

net::awaitable<void> append_all(Transfer& t, std::vector<std::string> parts, int& appended, bool& refused) {
    for (auto& part : parts) {
        if (!co_await t.append(std::move(part))) {
            refused = true;
            co_return;
        }
        ++appended;
    }
}

core::ByteBudget budget(1 << 30);

// Runs what is ready (an event loop that ran out of work must be restarted first).
void settle(net::io_context& ioc) {
    ioc.restart();
    ioc.poll();
}

}  // namespace

TEST_CASE("a reader gets each piece as it is appended, before the body is complete") {
    net::io_context ioc;
    auto t = Transfer::make(std::nullopt, 1 << 20, 1024, budget.reserve());
    std::string got;
    bool ended = false;
    net::co_spawn(ioc, drain(t->read(), got, ended), net::detached);
    int appended = 0;
    bool refused = false;
    net::co_spawn(ioc, append_all(*t, {"hello "}, appended, refused), net::detached);
    settle(ioc);
    CHECK(got == "hello ");
    CHECK_FALSE(ended);
    net::co_spawn(ioc, append_all(*t, {"world"}, appended, refused), net::detached);
    settle(ioc);
    CHECK(got == "hello world");
    t->end(Transfer::State::Complete);
    settle(ioc);
    CHECK(ended);
    CHECK(t->state() == Transfer::State::Complete);
    CHECK(t->whole() == "hello world");
}

TEST_CASE("a body that is not kept waits for its slowest reader, a window ahead") {
    net::io_context ioc;
    auto t = Transfer::make(std::nullopt, 0, 8, budget.reserve());
    auto reader = t->read();
    int appended = 0;
    bool refused = false;
    net::co_spawn(ioc, append_all(*t, {"aaaa", "bbbb", "cccc", "dddd"}, appended, refused), net::detached);
    settle(ioc);
    CHECK(appended == 2);  // 8 bytes ahead of the reader: the third waits
    std::string got;
    net::co_spawn(ioc, take_one(*reader, got), net::detached);
    settle(ioc);
    CHECK(got == "aaaa");
    CHECK(appended == 3);
    CHECK_FALSE(t->kept());
    // Taken bytes are forgotten: a new reader cannot start from the first byte.
    CHECK(t->read() == nullptr);
}

TEST_CASE("with no reader left and nothing kept, append says nobody wants more") {
    net::io_context ioc;
    auto t = Transfer::make(std::nullopt, 0, 4, budget.reserve());
    auto reader = t->read();
    int appended = 0;
    bool refused = false;
    net::co_spawn(ioc, append_all(*t, {"aaaa", "bbbb"}, appended, refused), net::detached);
    settle(ioc);
    CHECK(appended == 1);
    CHECK_FALSE(refused);
    reader.reset();  // the client went away
    settle(ioc);
    CHECK(refused);
}

TEST_CASE("a kept body lets a late reader start from the first byte, and a slow reader does not hold back a fast one") {
    net::io_context ioc;
    auto t = Transfer::make(std::nullopt, 1 << 20, 4, budget.reserve());
    auto slow = t->read();
    int appended = 0;
    bool refused = false;
    net::co_spawn(ioc, append_all(*t, {"aaaa", "bbbb", "cccc"}, appended, refused), net::detached);
    settle(ioc);
    CHECK(appended == 3);  // kept: no window applies
    std::string fast_got;
    bool fast_ended = false;
    net::co_spawn(ioc, drain(t->read(), fast_got, fast_ended), net::detached);
    settle(ioc);
    CHECK(fast_got == "aaaabbbbcccc");
    std::string slow_got;
    net::co_spawn(ioc, take_one(*slow, slow_got), net::detached);
    settle(ioc);
    CHECK(slow_got == "aaaa");
}

TEST_CASE("a body that grows past what is kept is no longer kept, and its readers still get all of it") {
    net::io_context ioc;
    const auto length = GENERATE(std::optional<std::uint64_t>{}, std::optional<std::uint64_t>{12});
    auto t = Transfer::make(length, 10, 64, budget.reserve());
    // Announced longer than the limit: never kept. Unannounced: kept until it passes it.
    CHECK(t->kept() == !length);
    std::string got;
    bool ended = false;
    net::co_spawn(ioc, drain(t->read(), got, ended), net::detached);
    int appended = 0;
    bool refused = false;
    net::co_spawn(ioc, append_all(*t, {"aaaa", "bbbb", "cccc"}, appended, refused), net::detached);
    settle(ioc);
    CHECK_FALSE(t->kept());
    t->end(Transfer::State::Complete);
    settle(ioc);
    CHECK(got == "aaaabbbbcccc");
    CHECK(ended);
    CHECK_FALSE(t->whole());
}

TEST_CASE("the byte budget bounds what is kept") {
    net::io_context ioc;
    core::ByteBudget small(6);
    auto t = Transfer::make(std::nullopt, 1 << 20, 64, small.reserve());
    auto reader = t->read();
    int appended = 0;
    bool refused = false;
    net::co_spawn(ioc, append_all(*t, {"aaaa", "bbbb"}, appended, refused), net::detached);
    settle(ioc);
    CHECK(appended == 2);
    CHECK_FALSE(t->kept());
    CHECK(small.used() == 0);  // given back when keeping stopped
}

TEST_CASE("a failed body ends its readers and is never whole") {
    net::io_context ioc;
    auto t = Transfer::make(std::uint64_t{100}, 1 << 20, 64, budget.reserve());
    std::string got;
    bool ended = false;
    net::co_spawn(ioc, drain(t->read(), got, ended), net::detached);
    int appended = 0;
    bool refused = false;
    net::co_spawn(ioc, append_all(*t, {"partial"}, appended, refused), net::detached);
    settle(ioc);
    t->end(Transfer::State::Failed);
    settle(ioc);
    CHECK(ended);
    CHECK(got == "partial");
    CHECK(t->state() == Transfer::State::Failed);
    CHECK_FALSE(t->whole());
}

TEST_CASE("a reader on another thread's event loop is woken as bytes arrive") {
    net::io_context writer_ioc, reader_ioc;
    auto t = Transfer::make(std::nullopt, 0, 1 << 20, budget.reserve());
    std::string got;
    bool ended = false;
    net::co_spawn(reader_ioc, drain(t->read(), got, ended), net::detached);
    std::thread reader_thread([&] { reader_ioc.run(); });  // returns when drain has finished
    std::vector<std::string> parts;
    std::string expected;
    for (int i = 0; i < 200; ++i) {
        parts.push_back(std::string(1000, static_cast<char>('a' + i % 26)));
        expected += parts.back();
    }
    int appended = 0;
    bool refused = false;
    net::co_spawn(writer_ioc, append_all(*t, parts, appended, refused), net::detached);
    writer_ioc.run();
    t->end(Transfer::State::Complete);
    reader_thread.join();
    CHECK(ended);
    CHECK(got == expected);
}

TEST_CASE("a fetch waiting for room whose event loop is destroyed first leaves nothing behind for its readers") {
    // At shutdown the workers' loops are destroyed one by one: the waiting append's wake-up must
    // go with its loop, not outlive it inside the transfer (its timer would then touch a dead loop).
    auto reader_ioc = std::make_unique<net::io_context>();
    auto t = Transfer::make(std::nullopt, 0, 4, budget.reserve());
    auto reader = t->read();
    {
        net::io_context writer_ioc;
        int appended = 0;
        bool refused = false;
        net::co_spawn(writer_ioc, append_all(*t, {"aaaa", "bbbb"}, appended, refused), net::detached);
        settle(writer_ioc);
        CHECK(appended == 1);  // the second waits for room
    }  // the writer's loop goes, with the waiting append
    std::string got;
    net::co_spawn(*reader_ioc, take_one(*reader, got), net::detached);
    settle(*reader_ioc);
    CHECK(got == "aaaa");  // takes what is there; the room it makes wakes nobody
    reader.reset();
    t.reset();
    reader_ioc.reset();
}

TEST_CASE("a reader limited to a range gets only those bytes, across pieces, and is complete at its end") {
    net::io_context ioc;
    auto t = Transfer::make(20, 1 << 20, 1024, budget.reserve());
    auto reader = t->read();
    reader->only(3, 11);
    CHECK(reader->length() == 9);
    auto whole = t->read();
    CHECK(whole->length() == 20);  // the announced length
    std::string got, all;
    bool ended = false, all_ended = false;
    net::co_spawn(ioc, drain(std::move(reader), got, ended), net::detached);
    net::co_spawn(ioc, drain(std::move(whole), all, all_ended), net::detached);
    int appended = 0;
    bool refused = false;
    // "012" is skipped whole, "3456" whole, "789ab" cut after 'b', then nothing more.
    net::co_spawn(ioc, append_all(*t, {"012", "3456", "789abcd"}, appended, refused), net::detached);
    settle(ioc);
    CHECK(got == "3456789ab");
    CHECK(ended);  // its range done before the body is
    net::co_spawn(ioc, append_all(*t, {"efghijk"}, appended, refused), net::detached);
    t->end(Transfer::State::Complete);
    settle(ioc);
    CHECK(all == "0123456789abcdefghijk");
}

TEST_CASE("a ranged reader of a body cut short before its range ends is not complete") {
    net::io_context ioc;
    auto t = Transfer::make(20, 1 << 20, 1024, budget.reserve());
    auto reader = t->read();
    reader->only(2, 15);
    auto done = t->read();
    done->only(0, 1);
    std::string got;
    net::co_spawn(ioc, take_one(*reader, got), net::detached);
    int appended = 0;
    bool refused = false;
    net::co_spawn(ioc, append_all(*t, {"0123456"}, appended, refused), net::detached);
    settle(ioc);
    CHECK(got == "23456");
    t->end(Transfer::State::Failed);
    std::string rest;
    net::co_spawn(ioc, take_one(*reader, rest), net::detached);
    settle(ioc);
    CHECK(rest.empty());
    CHECK_FALSE(reader->complete());
    std::string first;
    net::co_spawn(ioc, take_one(*done, first), net::detached);
    settle(ioc);
    CHECK(first == "01");
    CHECK(done->complete());  // its range came whole before the failure
}
