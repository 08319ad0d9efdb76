#pragma once
// A node-wide cap on the body bytes held in memory at once (request bodies being read,
// responses being fetched, sent or waiting for a slow client), so that hostile or merely slow
// clients cannot grow the process without bound. Lock-free: one atomic, shared by every worker.

#include <atomic>
#include <cstddef>

namespace cachalot::core {

class ByteBudget {
public:
    /// A claim on part of the budget, given back when it is destroyed (or released). Move-only;
    /// an empty reservation (default-constructed) belongs to no budget and never grows.
    class Reservation {
    public:
        Reservation() = default;
        Reservation(Reservation&& other) noexcept : budget_(other.budget_), held_(other.held_) {
            other.budget_ = nullptr;
            other.held_ = 0;
        }
        Reservation& operator=(Reservation&& other) noexcept {
            if (this != &other) {
                release();
                budget_ = other.budget_;
                held_ = other.held_;
                other.budget_ = nullptr;
                other.held_ = 0;
            }
            return *this;
        }
        ~Reservation() { release(); }

        /// Holds `bytes` in total (never less than already held). False, holding what it held,
        /// when the budget cannot give the difference.
        bool grow_to(std::size_t bytes);
        void release();
        std::size_t held() const { return held_; }

    private:
        friend class ByteBudget;
        explicit Reservation(ByteBudget* budget) : budget_(budget) {}
        ByteBudget* budget_ = nullptr;
        std::size_t held_ = 0;
    };

    explicit ByteBudget(std::size_t limit) : limit_(limit) {}
    ByteBudget(const ByteBudget&) = delete;
    ByteBudget& operator=(const ByteBudget&) = delete;

    /// An empty claim on this budget, to grow as bytes arrive.
    Reservation reserve() { return Reservation(this); }
    std::size_t used() const { return used_.load(std::memory_order_relaxed); }
    std::size_t limit() const { return limit_.load(std::memory_order_relaxed); }
    /// A new limit (a reload): what is held stays held; new claims see the new limit.
    void set_limit(std::size_t limit) { limit_.store(limit, std::memory_order_relaxed); }

private:
    std::atomic<std::size_t> used_{0};
    std::atomic<std::size_t> limit_;
};

}  // namespace cachalot::core
