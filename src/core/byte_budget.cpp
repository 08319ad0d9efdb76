#include "cachalot/core/byte_budget.hpp"

namespace cachalot::core {

bool ByteBudget::Reservation::grow_to(std::size_t bytes) {
    if (!budget_ || bytes <= held_) return budget_ != nullptr || bytes == 0;
    const std::size_t more = bytes - held_;
    auto used = budget_->used_.load(std::memory_order_relaxed);
    const auto limit = budget_->limit();
    do {
        if (more > limit || used > limit - more) return false;
    } while (!budget_->used_.compare_exchange_weak(used, used + more, std::memory_order_relaxed));
    held_ = bytes;
    return true;
}

void ByteBudget::Reservation::release() {
    if (budget_ && held_ > 0) budget_->used_.fetch_sub(held_, std::memory_order_relaxed);
    held_ = 0;
}

}  // namespace cachalot::core
