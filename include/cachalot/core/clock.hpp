#pragma once
// Wall-clock time as the cache uses it: milliseconds since the Unix epoch, from a clock that can
// be injected (tests move it by hand, so that freshness boundaries are exact).

#include <cstdint>
#include <functional>

namespace cachalot::core {

/// Milliseconds since the Unix epoch: expiries must mean the same in every process.
using WallMillis = std::int64_t;
using WallClock = std::function<WallMillis()>;

/// The system wall clock in milliseconds.
WallMillis wall_now();

}  // namespace cachalot::core
