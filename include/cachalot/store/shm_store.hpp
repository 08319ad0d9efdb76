#pragma once
// L1: a cache store in one shared-memory file, mapped by every thread and process that opens
// it, and kept across daemon restarts (not reboots).
//
// Layout and policy (details in src/store/shm/layout.hpp):
//  - the file is split into shards, each guarded by a robust, process-shared mutex;
//  - each shard's memory is a set of fixed-size segments holding items back to back (a log);
//  - eviction is S3-FIFO at segment granularity: new items go to a small FIFO (10 %), items
//    hit while there are promoted to the main FIFO, the rest are evicted and remembered in a
//    ghost table (a put of a remembered key goes straight to main); main segments are merged
//    two into one, keeping the items hit since their last pass. A hit only bumps a counter in
//    the item: no list moves;
//  - every offset is bounds-checked and every item carries a checksum: a crashed writer or
//    garbage in the file costs entries, never a crash or a wrong value.

#include "cachalot/config/config.hpp"
#include "cachalot/store/purge_table.hpp"
#include "cachalot/store/store.hpp"

#include <memory>
#include <optional>
#include <string>

namespace cachalot::store {

class ShmStore final : public Tier {
public:
    /// The configuration's cache.l1 (path, size, max_object_size), and the clock.
    struct Options : config::L1Cache {
        WallClock now = wall_now;
    };

    /// How open() found the file.
    enum class OpenState {
        Created,      // no usable file: built new
        Rebuilt,      // a file of another schema, ABI or geometry, or garbage: built new
        ReusedClean,  // last user closed it cleanly: entries reused as they are
        Recovered,    // last user did not close it: every entry validated, failures dropped
        Attached,     // other processes have it open: joined them
    };

    /// Opens or creates the file. Throws std::runtime_error naming the path on I/O errors or
    /// when the geometry cannot hold a single object of max_object_size.
    explicit ShmStore(Options options);
    /// Detaches; the last process to detach marks the file clean.
    ~ShmStore();
    ShmStore(const ShmStore&) = delete;
    ShmStore& operator=(const ShmStore&) = delete;

    /// A copy of the value stored for `key`, if present and not expired.
    std::optional<std::string> find(Hash hash, std::string_view key) override;
    /// Stores `value` under `key` until `expiry` (replacing any previous value). False when the
    /// value is larger than max_object_size, or when the expiry has already passed.
    bool put(Hash hash, std::string_view key, std::string_view value, WallMillis expiry) override;
    /// Removes `key`; true if it was there.
    bool erase(Hash hash, std::string_view key) override;
    StoreStats stats() const;

    /// The purge table in this file: every process that opens it sees the same purges.
    PurgeTable purges() const;

    OpenState open_state() const;
    /// Bytes an item costs beyond its key and value, at most (header, index slot, alignment).
    static std::size_t item_overhead();
    /// The geometry chosen for these options, for logs and docs.
    std::string describe() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

const char* to_string(ShmStore::OpenState state);

}  // namespace cachalot::store
