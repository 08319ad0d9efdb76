// The config loader on any text: errors, never a crash, and every error carries a message.
#include "cachalot/config/config.hpp"

#include <cstdlib>

using namespace cachalot::config;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto result = parse_config(std::string(reinterpret_cast<const char*>(data), size));
    for (const auto& e : result.errors)
        if (e.message.empty() || e.line < 0) std::abort();
    if (result.ok() && result.config->upstreams.empty()) std::abort();  // a valid config has somewhere to send requests
    return 0;
}
