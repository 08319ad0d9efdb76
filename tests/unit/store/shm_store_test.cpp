// What only the shared-memory store must do: share across processes, survive crashes and
// restarts, and never trust what it finds in its file.

#include "cachalot/store/shm_store.hpp"
#include "store/shm/layout.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

using namespace cachalot::store;
using namespace std::chrono_literals;

namespace {

struct ShmFile {
    std::string path;
    ShmFile() {
        static std::atomic<int> n{0};
        path = "/dev/shm/cachalot-test-" + std::to_string(getpid()) + "-" + std::to_string(n++);
    }
    ~ShmFile() { std::filesystem::remove(path); }
    ShmStore::Options options(std::size_t size = 16 << 20, std::size_t max_object = 64 << 10) const {
        return {path, size, max_object, wall_now};
    }
};

const WallMillis kFarFuture = wall_now() + 3'600'000;

// A value that proves its own integrity: 8 bytes of seed, then bytes derived from key and seed.
std::string self_checking_value(const std::string& key, std::uint64_t seed, std::size_t size) {
    std::string v(std::max<std::size_t>(size, 8), '\0');
    std::memcpy(v.data(), &seed, 8);
    auto h = hash_key(key) ^ seed;
    for (std::size_t i = 8; i < v.size(); ++i) {
        h = h * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = static_cast<char>(h >> 56);
    }
    return v;
}
bool intact(const std::string& key, const std::string& v) {
    if (v.size() < 8) return false;
    std::uint64_t seed;
    std::memcpy(&seed, v.data(), 8);
    return v == self_checking_value(key, seed, v.size());
}

std::string key_of(int n) { return "key-" + std::to_string(n); }

// Runs f in a forked child; returns the child's exit code (or 128+signal).
template <class F>
int in_child(F&& f) {
    pid_t pid = fork();
    if (pid == 0) {
        int rc = 1;
        try {
            rc = f();
        } catch (...) {
        }
        _exit(rc);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("shm: the file has exactly the configured size and never grows") {
    ShmFile f;
    {
        ShmStore s(f.options(16 << 20, 1 << 20));
        CHECK(s.open_state() == ShmStore::OpenState::Created);
        std::mt19937 rng(7);
        for (int n = 0; n < 2000; ++n) {  // ~10x capacity, 64 B … 1 MiB
            auto size = std::size_t{64} << (rng() % 15);
            s.put(hash_key(key_of(n)), key_of(n), self_checking_value(key_of(n), n, size), kFarFuture);
        }
        auto st = s.stats();
        CHECK(st.bytes_used <= st.capacity_bytes);
        CHECK(st.evictions > 0);
    }
    CHECK(std::filesystem::file_size(f.path) == (16u << 20));
}

TEST_CASE("shm: overwriting and erasing leak nothing") {
    ShmFile f;
    ShmStore s(f.options());
    for (int round = 0; round < 400; ++round)
        for (int k = 0; k < 100; ++k)
            REQUIRE(s.put(hash_key(key_of(k)), key_of(k), self_checking_value(key_of(k), round, 1000), kFarFuture));
    auto st = s.stats();
    CHECK(st.items == 100);  // 40 MB written through a 16 MB file: the dead versions were reclaimed
    CHECK(st.evictions == 0);
    for (int k = 0; k < 100; ++k) {
        auto v = s.find(hash_key(key_of(k)), key_of(k));
        REQUIRE(v);
        CHECK(intact(key_of(k), *v));
    }
    for (int k = 0; k < 100; ++k) s.erase(hash_key(key_of(k)), key_of(k));
    CHECK(s.stats().items == 0);
    CHECK(s.stats().bytes_used == 0);
}

TEST_CASE("shm: expired items are reclaimed and their memory reused") {
    ShmFile f;
    std::atomic<WallMillis> now{1'000'000};
    auto opts = f.options();
    opts.now = [&] { return now.load(); };
    ShmStore s(opts);
    for (int k = 0; k < 5000; ++k) s.put(hash_key(key_of(k)), key_of(k), std::string(2000, 'a'), now + 1000);
    now += 2000;
    for (int k = 5000; k < 12000; ++k) s.put(hash_key(key_of(k)), key_of(k), std::string(2000, 'b'), now + 1000);
    auto st = s.stats();
    CHECK(st.expirations > 0);
    CHECK(st.bytes_used <= st.capacity_bytes);
    for (int k = 0; k < 5000; ++k) CHECK_FALSE(s.find(hash_key(key_of(k)), key_of(k)));
}

TEST_CASE("shm: S3-FIFO keeps items that are hit while one-time items stream through") {
    ShmFile f;
    ShmStore s(f.options(16 << 20));
    for (int k = 0; k < 200; ++k) s.put(hash_key(key_of(k)), key_of(k), std::string(1000, 'h'), kFarFuture);
    for (int n = 0; n < 200'000; ++n) {  // 200 MB of one-hit wonders, with the hot set read along
        auto key = "scan-" + std::to_string(n);
        s.put(hash_key(key), key, std::string(1000, 's'), kFarFuture);
        auto hot = key_of(n % 200);
        s.find(hash_key(hot), hot);
    }
    int kept = 0;
    for (int k = 0; k < 200; ++k) kept += s.find(hash_key(key_of(k)), key_of(k)).has_value();
    CHECK(kept == 200);
}

TEST_CASE("shm: a child process's writes are read by the parent") {
    ShmFile f;
    ShmStore parent(f.options());
    int rc = in_child([&] {
        ShmStore child(f.options());
        if (child.open_state() != ShmStore::OpenState::Attached) return 2;
        for (int k = 0; k < 1000; ++k)
            if (!child.put(hash_key(key_of(k)), key_of(k), self_checking_value(key_of(k), 1, 300), kFarFuture))
                return 3;
        return 0;
    });
    REQUIRE(rc == 0);
    for (int k = 0; k < 1000; ++k) {
        auto v = parent.find(hash_key(key_of(k)), key_of(k));
        REQUIRE(v);
        CHECK(intact(key_of(k), *v));
    }
}

TEST_CASE("shm: two processes hammering the same keys never read a torn value") {
    ShmFile f;
    ShmStore parent(f.options());
    auto hammer = [&](ShmStore& s, std::uint64_t seed) {
        std::mt19937_64 rng(seed);
        int torn = 0;
        auto until = std::chrono::steady_clock::now() + 1500ms;
        while (std::chrono::steady_clock::now() < until) {
            auto key = key_of(static_cast<int>(rng() % 64));
            if (rng() % 2) {
                s.put(hash_key(key), key, self_checking_value(key, rng(), 100 + rng() % 4000), kFarFuture);
            } else if (auto v = s.find(hash_key(key), key); v && !intact(key, *v)) {
                ++torn;
            }
        }
        return torn;
    };
    pid_t pid = fork();
    if (pid == 0) {
        ShmStore child(f.options());
        _exit(hammer(child, 2) == 0 ? 0 : 1);
    }
    int parent_torn = hammer(parent, 1);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(parent_torn == 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("shm: a process that died holding a shard lock does not block the others") {
    ShmFile f;
    ShmStore s(f.options());
    REQUIRE(s.put(hash_key("k"), "k", "v", kFarFuture));
    // A child takes every shard lock through the raw mapping and dies without unlocking.
    int rc = in_child([&] {
        int fd = ::open(f.path.c_str(), O_RDWR);
        auto* base = static_cast<std::uint8_t*>(mmap(nullptr, 16 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
        auto* sb = reinterpret_cast<shm::Superblock*>(base);
        auto* shards = reinterpret_cast<shm::ShardHeader*>(base + shm::kShardHeadersAt);
        for (std::uint32_t i = 0; i < sb->shard_count; ++i) pthread_mutex_lock(&shards[i].mutex);
        return 0;
    });
    REQUIRE(rc == 0);
    CHECK(s.find(hash_key("k"), "k") == std::optional<std::string>("v"));  // not dirty: kept
    CHECK(s.put(hash_key("k2"), "k2", "v2", kFarFuture));
    CHECK(s.stats().lock_recoveries >= 1);
}

TEST_CASE("shm: processes SIGKILLed in the middle of puts never corrupt what the others read") {
    ShmFile f;
    ShmStore parent(f.options(8 << 20));
    std::mt19937 rng(42);
    for (int iteration = 0; iteration < 40; ++iteration) {
        pid_t pid = fork();
        if (pid == 0) {
            ShmStore child(f.options(8 << 20));
            std::mt19937_64 r(iteration);
            for (;;) {
                auto key = key_of(static_cast<int>(r() % 500));
                child.put(hash_key(key), key, self_checking_value(key, r(), 50 + r() % 20000), kFarFuture);
            }
        }
        std::this_thread::sleep_for(std::chrono::microseconds(500 + rng() % 20000));
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        for (int k = 0; k < 500; ++k) {
            auto key = key_of(k);
            if (auto v = parent.find(hash_key(key), key)) REQUIRE(intact(key, *v));
        }
        REQUIRE(parent.put(hash_key("parent"), "parent", self_checking_value("parent", iteration, 999), kFarFuture));
    }
    // A new process still works with the segment.
    int rc = in_child([&] {
        ShmStore child(f.options(8 << 20));
        for (int k = 0; k < 500; ++k) {
            auto key = key_of(k);
            if (auto v = child.find(hash_key(key), key); v && !intact(key, *v)) return 4;
        }
        return child.put(hash_key("new"), "new", "child", kFarFuture) ? 0 : 5;
    });
    CHECK(rc == 0);
    CHECK(parent.find(hash_key("new"), "new") == std::optional<std::string>("child"));
    INFO("lock recoveries: " << parent.stats().lock_recoveries);
}

TEST_CASE("shm: after a clean close every entry is reused") {
    ShmFile f;
    {
        ShmStore s(f.options());
        for (int k = 0; k < 3000; ++k)
            REQUIRE(s.put(hash_key(key_of(k)), key_of(k), self_checking_value(key_of(k), k, 1000), kFarFuture));
    }
    ShmStore s(f.options());
    CHECK(s.open_state() == ShmStore::OpenState::ReusedClean);
    CHECK(s.stats().items == 3000);
    for (int k = 0; k < 3000; ++k) {
        auto v = s.find(hash_key(key_of(k)), key_of(k));
        REQUIRE(v);
        CHECK(intact(key_of(k), *v));
    }
}

TEST_CASE("shm: after an unclean shutdown entries are validated and the valid ones kept") {
    ShmFile f;
    int rc = in_child([&] {
        ShmStore s(f.options());
        for (int k = 0; k < 3000; ++k)
            s.put(hash_key(key_of(k)), key_of(k), self_checking_value(key_of(k), k, 1000), kFarFuture);
        raise(SIGKILL);  // no destructor: the file is not marked clean
        return 0;
    });
    REQUIRE(rc == 128 + SIGKILL);
    ShmStore s(f.options());
    CHECK(s.open_state() == ShmStore::OpenState::Recovered);
    CHECK(s.stats().items == 3000);
    for (int k = 0; k < 3000; ++k) {
        auto v = s.find(hash_key(key_of(k)), key_of(k));
        REQUIRE(v);
        CHECK(intact(key_of(k), *v));
    }
}

TEST_CASE("shm: random garbage written into the file never crashes and is never served") {
    ShmFile f;
    auto seed = GENERATE(1, 2, 3, 4, 5, 6);
    {
        ShmStore s(f.options());
        for (int k = 0; k < 3000; ++k)
            s.put(hash_key(key_of(k)), key_of(k), self_checking_value(key_of(k), k, 100 + (k % 50) * 40), kFarFuture);
    }
    {
        std::mt19937_64 rng(seed);
        int fd = ::open(f.path.c_str(), O_RDWR);
        auto size = std::filesystem::file_size(f.path);
        // Corrupt 2000 random bytes, skipping the superblock in half of the runs so that the
        // damage reaches shard headers, index and items instead of forcing a rebuild.
        for (int n = 0; n < 2000; ++n) {
            off_t at = static_cast<off_t>(rng() % size);
            if (seed % 2 == 0 && at < 4096) continue;
            char byte = static_cast<char>(rng());
            REQUIRE(pwrite(fd, &byte, 1, at) == 1);
        }
        ::close(fd);
    }
    ShmStore s(f.options());
    INFO("opened as " << to_string(s.open_state()));
    for (int k = 0; k < 3000; ++k)
        if (auto v = s.find(hash_key(key_of(k)), key_of(k))) REQUIRE(intact(key_of(k), *v));
    // And it keeps working: eviction walks over whatever garbage is left.
    for (int k = 0; k < 40000; ++k)
        s.put(hash_key(key_of(k)), key_of(k), self_checking_value(key_of(k), k + 1, 100 + (k % 50) * 40), kFarFuture);
    for (int k = 0; k < 40000; ++k)
        if (auto v = s.find(hash_key(key_of(k)), key_of(k))) REQUIRE(intact(key_of(k), *v));
}

TEST_CASE("shm: a file of another schema, size or plain garbage is rebuilt") {
    ShmFile f;
    {
        ShmStore s(f.options());
        s.put(hash_key("k"), "k", "v", kFarFuture);
    }
    SECTION("another schema version") {
        int fd = ::open(f.path.c_str(), O_RDWR);
        std::uint32_t other = shm::kSchemaVersion + 1;
        REQUIRE(pwrite(fd, &other, sizeof other, offsetof(shm::Superblock, schema_version)) == sizeof other);
        ::close(fd);
        ShmStore s(f.options());
        CHECK(s.open_state() == ShmStore::OpenState::Rebuilt);
        CHECK_FALSE(s.find(hash_key("k"), "k"));
    }
    SECTION("another size") {
        ShmStore s(f.options(32 << 20));
        CHECK(s.open_state() == ShmStore::OpenState::Rebuilt);
        CHECK_FALSE(s.find(hash_key("k"), "k"));
        CHECK(std::filesystem::file_size(f.path) == (32u << 20));
    }
    SECTION("another max object size (another layout)") {
        ShmStore s(f.options(16 << 20, 512 << 10));
        CHECK(s.open_state() == ShmStore::OpenState::Rebuilt);
    }
    SECTION("garbage after the magic") {
        std::string junk((16 << 20) - sizeof shm::kMagic, 'J');
        int fd = ::open(f.path.c_str(), O_RDWR);
        REQUIRE(pwrite(fd, junk.data(), junk.size(), sizeof shm::kMagic) == static_cast<ssize_t>(junk.size()));
        ::close(fd);
        ShmStore s(f.options());
        CHECK(s.open_state() == ShmStore::OpenState::Rebuilt);
        CHECK(s.put(hash_key("k"), "k", "fresh", kFarFuture));
        CHECK(s.find(hash_key("k"), "k") == std::optional<std::string>("fresh"));
    }
}

// What opening a file in a world-writable directory must refuse, with the path in the message.
void check_refused(const ShmFile& f, const std::string& why) {
    try {
        ShmStore s(f.options());
        FAIL("opened: " << f.path);
    } catch (const std::runtime_error& e) {
        CHECK_THAT(e.what(), Catch::StartsWith(f.path + ": ") && Catch::Contains(why));
    }
}

TEST_CASE("shm: a file that is not a Cachalot file is refused, never overwritten") {
    ShmFile f;
    const std::string precious = "somebody's data, not a cache";
    {
        int fd = ::open(f.path.c_str(), O_RDWR | O_CREAT, 0600);
        REQUIRE(write(fd, precious.data(), precious.size()) == static_cast<ssize_t>(precious.size()));
        ::close(fd);
    }
    check_refused(f, "is not a Cachalot L1 file");
    CHECK(std::filesystem::file_size(f.path) == precious.size());
}

TEST_CASE("shm: a symbolic link is not followed") {
    ShmFile target, link;
    { std::ofstream(target.path) << "x"; }
    REQUIRE(symlink(target.path.c_str(), link.path.c_str()) == 0);
    check_refused(link, "symbolic link");
    CHECK(std::filesystem::file_size(target.path) == 1);
}

TEST_CASE("shm: a file writable by other users, or owned by another user, is refused") {
    ShmFile f;
    { ShmStore s(f.options()); }
    CHECK(std::filesystem::status(f.path).permissions() == std::filesystem::perms(0600));
    REQUIRE(chmod(f.path.c_str(), 0666) == 0);
    check_refused(f, "writable by other users (mode 0666)");
    REQUIRE(chmod(f.path.c_str(), 0620) == 0);
    check_refused(f, "writable by other users");
    REQUIRE(chmod(f.path.c_str(), 0600) == 0);
    { ShmStore s(f.options()); }
    if (geteuid() == 0) {  // only root can give a file away
        REQUIRE(chown(f.path.c_str(), 4242, static_cast<gid_t>(-1)) == 0);
        check_refused(f, "owned by uid 4242, not by this user");
    }
}

TEST_CASE("shm: a new file is created readable and writable by its owner only") {
    ShmFile f;
    const auto old = umask(0);
    { ShmStore s(f.options()); }
    umask(old);
    CHECK(std::filesystem::status(f.path).permissions() == std::filesystem::perms(0600));
}

TEST_CASE("shm: joining a file in use with another layout is refused with the path") {
    ShmFile f;
    ShmStore first(f.options());
    CHECK_THROWS_WITH(ShmStore(f.options(32 << 20)), Catch::Contains(f.path));
}

TEST_CASE("shm: a size too small for max_object_size is a clear error") {
    ShmFile f;
    CHECK_THROWS_WITH(ShmStore(f.options(1 << 20, 1 << 20)), Catch::Contains("cannot hold objects"));
}

TEST_CASE("shm: threads of one process share the store") {
    ShmFile f;
    ShmStore s(f.options());
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            std::mt19937_64 rng(t);
            for (int n = 0; n < 20000; ++n) {
                auto key = key_of(static_cast<int>(rng() % 300));
                if (rng() % 3 == 0) s.put(hash_key(key), key, self_checking_value(key, rng(), 100 + rng() % 3000), kFarFuture);
                else if (auto v = s.find(hash_key(key), key); v && !intact(key, *v)) ++bad;
            }
        });
    for (auto& th : threads) th.join();
    CHECK(bad == 0);
}

TEST_CASE("shm: the purge table is shared by every store on the file and kept across reopening") {
    ShmFile f;
    const WallMillis t = wall_now();
    {
        ShmStore a(f.options());
        ShmStore b(f.options());
        a.purges().merge(42, {t, 0, 0});
        CHECK(b.purges().read(42).hard == t);  // at once, no message
        CHECK(b.purges().latest() == t);
    }
    ShmStore again(f.options());
    CHECK(again.open_state() == ShmStore::OpenState::ReusedClean);
    CHECK(again.purges().read(42).hard == t);
    CHECK(again.purges().latest() == t);
}

TEST_CASE("shm: purge times from the future found in the file are brought back to now, never dropped") {
    ShmFile f;
    const WallMillis now = wall_now();
    {
        ShmStore a(f.options());
        a.purges().merge(9, {now + 10 * 86'400'000LL, now + 10 * 86'400'000LL, 0});  // garbage: ten days ahead
        a.purges().merge(10, {now - 5'000, 0, 0});                                    // a real purge
    }
    ShmStore again(f.options());
    const auto garbage = again.purges().read(9);
    CHECK(garbage.hard >= now);
    CHECK(garbage.hard <= wall_now());
    CHECK(garbage.soft >= now);
    CHECK(garbage.soft <= wall_now());
    CHECK(again.purges().read(10).hard == now - 5'000);
    CHECK(again.purges().latest() <= wall_now());
}
