// DNS responses from the network, on any bytes: no crash, no read outside them, and every
// address given back is a well-formed IPv4 address.
#include "upstream/dns.hpp"

#include <arpa/inet.h>

#include <cstdlib>

using namespace cachalot::upstream;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    const std::uint16_t id = size >= 2 ? static_cast<std::uint16_t>(data[0] << 8 | data[1]) : 0;
    if (auto answer = dns::parse(bytes, id, "api.test", dns::Type::A)) {
        for (const auto& address : answer->addresses) {
            unsigned char out[4];
            if (inet_pton(AF_INET, address.c_str(), out) != 1) std::abort();
        }
    }
    dns::parse(bytes, id, "api.test", dns::Type::AAAA);
    return 0;
}
