#pragma once
// A value in Redis: magic, format version, absolute expiry (ms, little-endian), then the
// caller's bytes. The expiry travels with the value so that an L2 hit can back-fill L1 with the
// same expiry, and an entry Redis has not reaped yet is still never served late. Bytes read
// from Redis are untrusted: envelope_open checks before anything is used. No I/O.

#include "cachalot/store/store.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace cachalot::store::redis {

/// `value` wrapped with its expiry.
std::string envelope_wrap(std::string_view value, WallMillis expiry);

/// What an envelope holds: the caller's bytes and their expiry.
struct Opened {
    std::string_view value;
    WallMillis expiry;
};

/// The contents, or nothing when `bytes` is not an envelope of this format.
std::optional<Opened> envelope_open(std::string_view bytes);

}  // namespace cachalot::store::redis
