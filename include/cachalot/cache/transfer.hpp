#pragma once
// A response body on its way from the origin to the clients that asked for it. The fetch
// appends what arrives; each reader takes it at its own pace while it still arrives
// (read-while-write), so a client gets its first bytes before the origin has finished, and
// requests coalesced on the fetch read the same object. Readers may be on any worker thread.
//
// Memory: while the body is kept for the store (at most `keep` bytes: what a tier would take,
// charged to the node's byte budget), every byte stays and a reader that joins late starts
// from the first. Past that, or when nothing is kept, only what the slowest reader has not
// taken stays, at most `window` bytes ahead of it: then append() waits. A slow client slows
// the origin read; no buffer grows with the body.

#include "cachalot/core/byte_budget.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cachalot::cache {

class Transfer : public std::enable_shared_from_this<Transfer> {
public:
    enum class State { Open, Complete, Failed };
    struct Wake;  // a waiting coroutine's wake-up call (transfer.cpp)

    /// `length`: the body's length when the origin announced it. `kept`: the budget the kept
    /// bytes are charged to (keeping stops when it refuses more).
    static std::shared_ptr<Transfer> make(std::optional<std::uint64_t> length, std::size_t keep, std::size_t window,
                                          core::ByteBudget::Reservation kept);

    /// Bytes of the body, valid while `owner` is held.
    struct Piece {
        std::shared_ptr<const std::string> owner;
        std::string_view bytes;  // empty: the body ended (state() says how)
    };

    /// One client's place in the body. Dropping it tells the fetch this client is gone.
    class Reader {
    public:
        ~Reader();
        Reader(const Reader&) = delete;
        /// The bytes after those already taken, once there are some; empty at the end.
        boost::asio::awaitable<Piece> next();
        /// Only bytes `first` to `last` (both included) from now on, for a range request: those
        /// before are taken and skipped as they arrive, and the reader ends after `last`.
        void only(std::uint64_t first, std::uint64_t last);
        /// How many bytes it gives in all, when known: its range's, else the announced length.
        std::optional<std::uint64_t> length() const;
        /// It gave every byte it was to give: its range, or the whole body, which completed.
        /// (At the end of a body cut short: false.)
        bool complete() const;
        const Transfer& transfer() const { return *transfer_; }

    private:
        friend class Transfer;
        explicit Reader(std::shared_ptr<Transfer> transfer);
        std::shared_ptr<Transfer> transfer_;
        std::uint64_t position_ = 0;
        std::uint64_t first_ = 0;  // only(): what it gives is [first_, end_)
        std::optional<std::uint64_t> end_;
        std::shared_ptr<Wake> wake_;  // made when it first waits for bytes
        bool waiting_ = false;        // waits now (guarded by the transfer's mutex)
    };

    /// A reader from the first byte; null when those bytes are no longer kept.
    std::unique_ptr<Reader> read();

    // ---- the fetch's side ----

    /// Appends `bytes`, after waiting while the slowest reader is `window` bytes behind and
    /// nothing is kept. False, without appending, when nobody wants more: no reader, and not
    /// kept for the store (the fetch may stop).
    boost::asio::awaitable<bool> append(std::string bytes);
    /// The body is complete, or failed (the readers see it end; a failed one is never stored).
    void end(State state);

    // ---- what anyone may ask ----

    State state() const;
    std::optional<std::uint64_t> length() const { return length_; }
    /// Still keeping every byte (it fit the store's limit and the budget so far).
    bool kept() const;
    std::uint64_t size() const;
    /// The whole body, once complete and kept; else nothing.
    std::optional<std::string> whole() const;

private:
    struct Chunk {
        std::uint64_t start;
        std::shared_ptr<const std::string> bytes;
    };
    Transfer(std::optional<std::uint64_t> length, std::size_t keep, std::size_t window,
             core::ByteBudget::Reservation kept);
    std::uint64_t slowest() const;  // the least position of any reader (size_ when none)
    void drop_taken();              // not kept: forget what every reader has taken
    void wake_readers(std::vector<std::shared_ptr<Wake>>& out);
    void leave(Reader* reader);

    const std::optional<std::uint64_t> length_;
    const std::size_t keep_limit_, window_;
    mutable std::mutex mutex_;
    std::deque<Chunk> chunks_;
    std::uint64_t size_ = 0;
    State state_ = State::Open;
    bool keeping_;
    core::ByteBudget::Reservation kept_;
    std::vector<Reader*> readers_;
    /// Set while append() waits for room. Weak: append()'s frame owns it, so that its timer
    /// never outlives its worker's event loop (at shutdown, loops are destroyed one by one).
    std::weak_ptr<Wake> writer_wake_;
};

}  // namespace cachalot::cache
