#include "cachalot/cache/transfer.hpp"

#include "core/net.hpp"

#include <algorithm>

namespace cachalot::cache {

// A waiting coroutine's wake-up call: its timer, touched only on its own executor (a worker
// thread). The timer also expires by itself now and then, so a lost wake-up costs a moment,
// never a hang.
struct Transfer::Wake {
    explicit Wake(const net::any_io_executor& ex) : executor(ex), timer(ex) {}
    net::any_io_executor executor;
    net::steady_timer timer;
};

namespace {

using Wake = Transfer::Wake;
constexpr auto kRecheck = std::chrono::seconds(1);

void ring(std::shared_ptr<Wake> wake) {
    auto& ex = wake->executor;
    net::post(ex, [wake = std::move(wake)] { wake->timer.cancel(); });
}

net::awaitable<void> sleep_on(Wake& wake) {
    wake.timer.expires_after(kRecheck);
    co_await wake.timer.async_wait(net::as_tuple(net::use_awaitable));
}

}  // namespace

std::shared_ptr<Transfer> Transfer::make(std::optional<std::uint64_t> length, std::size_t keep, std::size_t window,
                                         core::ByteBudget::Reservation kept) {
    return std::shared_ptr<Transfer>(new Transfer(length, keep, window, std::move(kept)));
}

Transfer::Transfer(std::optional<std::uint64_t> length, std::size_t keep, std::size_t window,
                   core::ByteBudget::Reservation kept)
    : length_(length),
      keep_limit_(keep),
      window_(std::max<std::size_t>(window, 1)),
      keeping_(keep > 0 && (!length || *length <= keep)),
      kept_(std::move(kept)) {}

Transfer::Reader::Reader(std::shared_ptr<Transfer> transfer) : transfer_(std::move(transfer)) {}

Transfer::Reader::~Reader() { transfer_->leave(this); }

std::unique_ptr<Transfer::Reader> Transfer::read() {
    std::lock_guard lock(mutex_);
    if (!chunks_.empty() ? chunks_.front().start > 0 : size_ > 0) return nullptr;
    std::unique_ptr<Reader> reader(new Reader(shared_from_this()));
    readers_.push_back(reader.get());
    return reader;
}

void Transfer::leave(Reader* reader) {
    std::shared_ptr<Wake> writer;
    {
        std::lock_guard lock(mutex_);
        readers_.erase(std::find(readers_.begin(), readers_.end(), reader));
        drop_taken();
        writer = writer_wake_.lock();
        writer_wake_.reset();
    }
    if (writer) ring(std::move(writer));
}

void Transfer::Reader::only(std::uint64_t first, std::uint64_t last) {
    first_ = first;
    end_ = last + 1;
}

std::optional<std::uint64_t> Transfer::Reader::length() const {
    if (end_) return *end_ - first_;
    return transfer_->length_;
}

bool Transfer::Reader::complete() const {
    std::lock_guard lock(transfer_->mutex_);
    if (end_) return position_ >= *end_;
    return transfer_->state_ == State::Complete && position_ == transfer_->size_;
}

net::awaitable<Transfer::Piece> Transfer::Reader::next() {
    auto& t = *transfer_;
    const auto executor = co_await net::this_coro::executor;
    for (;;) {
        std::optional<Piece> piece;
        std::shared_ptr<Wake> writer;
        {
            std::lock_guard lock(t.mutex_);
            waiting_ = false;
            if (end_ && position_ >= *end_) {
                piece = Piece{};
            } else if (position_ < t.size_) {
                // The chunk holding position_: the last one starting at or before it.
                auto it = std::upper_bound(t.chunks_.begin(), t.chunks_.end(), position_,
                                           [](std::uint64_t pos, const Chunk& c) { return pos < c.start; });
                const auto& chunk = *std::prev(it);
                const auto offset = static_cast<std::size_t>(position_ - chunk.start);
                piece = Piece{chunk.bytes, std::string_view(*chunk.bytes).substr(offset)};
                position_ += piece->bytes.size();
                t.drop_taken();
                writer = t.writer_wake_.lock();  // there may be room now
                t.writer_wake_.reset();
            } else if (t.state_ != State::Open) {
                piece = Piece{};
            } else {
                if (!wake_) wake_ = std::make_shared<Wake>(executor);
                waiting_ = true;
            }
        }
        if (writer) ring(std::move(writer));
        if (piece) {
            // Within its range: what lies before first_ is skipped, what lies past the end cut.
            if (!piece->bytes.empty()) {
                const auto start = position_ - piece->bytes.size();
                if (start < first_) {
                    if (position_ <= first_) continue;
                    piece->bytes.remove_prefix(static_cast<std::size_t>(first_ - start));
                }
                if (end_ && position_ > *end_) piece->bytes.remove_suffix(static_cast<std::size_t>(position_ - *end_));
            }
            co_return std::move(*piece);
        }
        co_await sleep_on(*wake_);
    }
}

net::awaitable<bool> Transfer::append(std::string bytes) {
    const auto executor = co_await net::this_coro::executor;
    std::shared_ptr<Wake> wake;
    for (;;) {
        std::vector<std::shared_ptr<Wake>> readers;
        bool appended = false;
        {
            std::lock_guard lock(mutex_);
            if (!keeping_ && readers_.empty()) co_return false;
            if (keeping_ || size_ - slowest() < window_) {
                const auto n = bytes.size();
                chunks_.push_back({size_, std::make_shared<const std::string>(std::move(bytes))});
                size_ += n;
                if (keeping_ && (size_ > keep_limit_ || !kept_.grow_to(size_))) {
                    keeping_ = false;
                    kept_.release();
                    drop_taken();
                }
                wake_readers(readers);
                appended = true;
            } else {
                if (!wake) wake = std::make_shared<Wake>(executor);
                writer_wake_ = wake;
            }
        }
        if (appended) {
            for (auto& r : readers) ring(std::move(r));
            co_return true;
        }
        co_await sleep_on(*wake);
    }
}

void Transfer::end(State state) {
    std::vector<std::shared_ptr<Wake>> readers;
    {
        std::lock_guard lock(mutex_);
        if (state_ != State::Open) return;
        state_ = state;
        if (state == State::Failed) {
            keeping_ = false;
            kept_.release();
        }
        wake_readers(readers);
    }
    for (auto& r : readers) ring(std::move(r));
}

Transfer::State Transfer::state() const {
    std::lock_guard lock(mutex_);
    return state_;
}

bool Transfer::kept() const {
    std::lock_guard lock(mutex_);
    return keeping_;
}

std::uint64_t Transfer::size() const {
    std::lock_guard lock(mutex_);
    return size_;
}

std::optional<std::string> Transfer::whole() const {
    std::lock_guard lock(mutex_);
    if (state_ != State::Complete || !keeping_) return std::nullopt;
    std::string body;
    body.reserve(size_);
    for (const auto& c : chunks_) body += *c.bytes;
    return body;
}

std::uint64_t Transfer::slowest() const {
    std::uint64_t least = size_;
    for (const auto* r : readers_) least = std::min(least, r->position_);
    return least;
}

void Transfer::drop_taken() {
    if (keeping_) return;
    const auto least = slowest();
    while (!chunks_.empty() && chunks_.front().start + chunks_.front().bytes->size() <= least) chunks_.pop_front();
}

void Transfer::wake_readers(std::vector<std::shared_ptr<Wake>>& out) {
    for (auto* r : readers_)
        if (r->waiting_) out.push_back(r->wake_);
}

}  // namespace cachalot::cache
