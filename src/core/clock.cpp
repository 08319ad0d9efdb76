#include "cachalot/core/clock.hpp"

#include <chrono>

namespace cachalot::core {

WallMillis wall_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace cachalot::core
