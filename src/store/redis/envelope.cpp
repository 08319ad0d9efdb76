#include "store/redis/envelope.hpp"

namespace cachalot::store::redis {
namespace {

constexpr std::string_view kMagic{"CL2\x01", 4};
constexpr std::size_t kHeader = kMagic.size() + 8;

}  // namespace

std::string envelope_wrap(std::string_view value, WallMillis expiry) {
    std::string out;
    out.reserve(kHeader + value.size());
    out += kMagic;
    for (int i = 0; i < 8; ++i) out += static_cast<char>((static_cast<std::uint64_t>(expiry) >> (8 * i)) & 0xff);
    out += value;
    return out;
}

std::optional<Opened> envelope_open(std::string_view bytes) {
    if (bytes.size() < kHeader || bytes.substr(0, kMagic.size()) != kMagic) return std::nullopt;
    std::uint64_t e = 0;
    for (int i = 0; i < 8; ++i) e |= std::uint64_t(static_cast<unsigned char>(bytes[kMagic.size() + i])) << (8 * i);
    return Opened{bytes.substr(kHeader), static_cast<WallMillis>(e)};
}

}  // namespace cachalot::store::redis
