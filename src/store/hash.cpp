#include "cachalot/store/store.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace cachalot::store {

Hash hash_key(std::string_view key) { return XXH3_64bits(key.data(), key.size()); }

}  // namespace cachalot::store
