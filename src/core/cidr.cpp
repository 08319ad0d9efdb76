#include "cachalot/core/cidr.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <string>

namespace cachalot::core {
namespace {

struct Address {
    std::array<std::uint8_t, 16> bytes{};
    bool v4 = true;
};

std::optional<Address> parse_address(std::string_view text) {
    if (text.empty() || text.size() > 45) return std::nullopt;
    const std::string s(text);
    Address a;
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) return a;
    if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
    // ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket.
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(std::begin(kMapped), std::end(kMapped), a.bytes.begin())) {
        std::copy(a.bytes.begin() + 12, a.bytes.end(), a.bytes.begin());
        std::fill(a.bytes.begin() + 4, a.bytes.end(), 0);
        return a;
    }
    a.v4 = false;
    return a;
}

}  // namespace

std::optional<Network> parse_network(std::string_view text) {
    const auto slash = text.find('/');
    auto address = parse_address(text.substr(0, slash));
    if (!address) return std::nullopt;
    Network n;
    n.address = address->bytes;
    n.v4 = address->v4;
    const unsigned max = n.v4 ? 32 : 128;
    n.prefix = max;
    if (slash != std::string_view::npos) {
        const auto bits = text.substr(slash + 1);
        unsigned value = 0;
        const auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), value);
        if (bits.empty() || ec != std::errc() || end != bits.data() + bits.size() || value > max) return std::nullopt;
        n.prefix = value;
    }
    return n;
}

bool Network::contains(std::string_view ip) const {
    const auto a = parse_address(ip);
    if (!a || a->v4 != v4) return false;
    const unsigned whole = prefix / 8, rest = prefix % 8;
    for (unsigned i = 0; i < whole; ++i)
        if (a->bytes[i] != address[i]) return false;
    if (rest == 0) return true;
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (a->bytes[whole] & mask) == (address[whole] & mask);
}

}  // namespace cachalot::core
