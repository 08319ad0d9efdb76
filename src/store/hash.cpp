#include "cachalot/store/store.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace cachalot::store {

Hash hash_key(std::string_view key) { return XXH3_64bits(key.data(), key.size()); }

WallMillis wall_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace cachalot::store
