#pragma once
// IP networks in CIDR notation ("10.0.0.0/8", "2001:db8::/32", or a bare address for one host),
// for allow lists. IPv4-mapped IPv6 client addresses ("::ffff:10.1.2.3") match IPv4 networks.

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace cachalot::core {

struct Network {
    std::array<std::uint8_t, 16> address{};  // IPv4 in the first four bytes
    unsigned prefix = 0;                      // bits that must match
    bool v4 = true;

    /// Whether `ip` (a textual IPv4 or IPv6 address) is inside this network.
    bool contains(std::string_view ip) const;
};

/// The network `text` names, or nothing when it is not a valid one (host bits may be set:
/// "10.1.2.3/8" is 10.0.0.0/8).
std::optional<Network> parse_network(std::string_view text);

}  // namespace cachalot::core
