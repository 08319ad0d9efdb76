// l1_bench: the L1 store's benchmark program (not a test: nothing here passes or fails).
//   l1_bench throughput [--runs N]     ops/s for get-hit, get-miss, put-with-eviction; 1 and 2 threads
//   l1_bench hit-ratio  [--requests N] S3-FIFO L1 vs exact LRU on Zipf traces at equal byte budgets
//   l1_bench cold-start                reopen time of a full 1 GiB segment, clean and unclean
// Results are medians over runs, printed as Markdown tables.

#include "cachalot/store/memory_store.hpp"
#include "cachalot/store/shm_store.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace cachalot::store;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kPath = "/dev/shm/cachalot-l1-bench";
const WallMillis kFarFuture = wall_now() + 24 * 3'600'000LL;

struct Key {
    std::string text;
    Hash hash;
};

std::vector<Key> make_keys(std::size_t n, const char* prefix) {
    std::vector<Key> keys(n);
    for (std::size_t i = 0; i < n; ++i) {
        keys[i].text = std::string(prefix) + "/api/v1/items/" + std::to_string(i) + "?fields=all";
        keys[i].hash = hash_key(keys[i].text);
    }
    return keys;
}

// Builds a key in a reusable buffer, as a request path would: the key is in cache, not in a
// large array that would add its own cache misses to the measurement.
struct KeyMaker {
    char buf[96];
    std::size_t prefix_len;
    explicit KeyMaker(const char* prefix) {
        prefix_len = static_cast<std::size_t>(std::snprintf(buf, sizeof buf, "%s/api/v1/items/", prefix));
    }
    std::string_view operator()(std::size_t id) {
        auto* end = std::to_chars(buf + prefix_len, buf + sizeof buf - 12, id).ptr;
        std::memcpy(end, "?fields=all", 11);
        return {buf, static_cast<std::size_t>(end + 11 - buf)};
    }
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// ---------------------------------------------------------------------------------------------

void throughput(int runs) {
    std::printf("| value | operation | threads | ops/s (median of %d) |\n|---|---|---|---|\n", runs);
    const std::size_t size = 1ull << 30;
    for (std::size_t value_size : {1024ul, 16384ul}) {
        std::filesystem::remove(kPath);
        ShmStore store({kPath, size, 1 << 20, wall_now});
        const std::string value(value_size, 'v');
        // Resident set: half the capacity, so every get of it is a hit.
        const std::size_t resident = (size / 2) / (value_size + 200);
        {
            KeyMaker key("hit");
            for (std::size_t id = 0; id < resident; ++id) {
                auto k = key(id);
                store.put(hash_key(k), k, value, kFarFuture);
            }
        }
        auto gets = [&](const char* prefix, int threads, std::size_t key_range) {
            std::vector<double> rates;
            for (int r = 0; r < runs; ++r) {
                const std::size_t per_thread = 2'000'000;
                std::atomic<std::size_t> found{0};
                std::vector<std::thread> pool;
                auto start = Clock::now();
                for (int t = 0; t < threads; ++t)
                    pool.emplace_back([&, t] {
                        std::mt19937_64 rng(r * 100 + t);
                        KeyMaker key(prefix);
                        std::size_t f = 0;
                        for (std::size_t n = 0; n < per_thread; ++n) {
                            auto k = key(rng() % key_range);
                            f += store.find(hash_key(k), k).has_value();
                        }
                        found += f;
                    });
                for (auto& th : pool) th.join();
                rates.push_back(per_thread * threads / seconds_since(start));
            }
            return median(rates);
        };
        double hit1 = gets("hit", 1, resident), hit2 = gets("hit", 2, resident);
        double miss1 = gets("miss", 1, resident), miss2 = gets("miss", 2, resident);
        // Popular keys: 16 Ki of them, so their lines stay in the CPU caches as a hot set does.
        const std::size_t hot = 16 * 1024;
        double hot1 = gets("hit", 1, hot), hot2 = gets("hit", 2, hot);
        std::printf("| %zu B | get-hit, hot set (16 Ki keys) | 1 | %.2f M |\n", value_size, hot1 / 1e6);
        std::printf("| %zu B | get-hit, hot set (16 Ki keys) | 2 | %.2f M (%.2fx) |\n", value_size, hot2 / 1e6,
                    hot2 / hot1);
        std::printf("| %zu B | get-hit | 1 | %.2f M |\n", value_size, hit1 / 1e6);
        std::printf("| %zu B | get-hit | 2 | %.2f M (%.2fx) |\n", value_size, hit2 / 1e6, hit2 / hit1);
        std::printf("| %zu B | get-miss | 1 | %.2f M |\n", value_size, miss1 / 1e6);
        std::printf("| %zu B | get-miss | 2 | %.2f M (%.2fx) |\n", value_size, miss2 / 1e6, miss2 / miss1);

        // Puts of new keys into a full store: every put evicts.
        std::vector<double> rates;
        KeyMaker key("put");
        std::size_t next = 0;
        for (; next < size / value_size; ++next) {
            auto k = key(next);
            store.put(hash_key(k), k, value, kFarFuture);
        }
        for (int r = 0; r < runs; ++r) {
            const std::size_t n = 500'000;
            auto start = Clock::now();
            for (std::size_t i = 0; i < n; ++i, ++next) {
                auto k = key(next);
                store.put(hash_key(k), k, value, kFarFuture);
            }
            rates.push_back(n / seconds_since(start));
        }
        auto st = store.stats();
        std::printf("| %zu B | put (evicting) | 1 | %.2f M (evictions so far: %llu) |\n", value_size,
                    median(rates) / 1e6, static_cast<unsigned long long>(st.evictions));
        std::fflush(stdout);
    }
    std::filesystem::remove(kPath);
}

// ---------------------------------------------------------------------------------------------

// Zipf(alpha) over n ranks, sampled by inverse CDF.
std::vector<std::uint32_t> zipf_trace(std::size_t n, double alpha, std::size_t length, std::uint64_t seed) {
    std::vector<double> cdf(n);
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) cdf[i] = (sum += 1.0 / std::pow(static_cast<double>(i + 1), alpha));
    for (auto& c : cdf) c /= sum;
    // Ranks are shuffled over key ids so that popularity has nothing to do with insertion order.
    std::vector<std::uint32_t> id(n);
    for (std::size_t i = 0; i < n; ++i) id[i] = static_cast<std::uint32_t>(i);
    std::mt19937_64 rng(seed);
    std::shuffle(id.begin(), id.end(), rng);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<std::uint32_t> trace(length);
    for (auto& t : trace) t = id[std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin()];
    return trace;
}

// Cache-aside over the trace: a miss stores the object. The first half of the trace warms the
// cache; the miss ratio is that of the second half (so first-access misses, which no policy can
// avoid, do not drown the difference).
template <class Store>
double miss_ratio(Store& store, const std::vector<Key>& keys, const std::vector<std::uint32_t>& sizes,
                  const std::vector<std::uint32_t>& trace, const std::string& payload) {
    std::size_t misses = 0;
    const std::size_t warm = trace.size() / 2;
    for (std::size_t n = 0; n < trace.size(); ++n) {
        auto id = trace[n];
        auto& k = keys[id];
        if (!store.find(k.hash, k.text)) {
            misses += n >= warm;
            store.put(k.hash, k.text, std::string_view(payload).substr(0, sizes[id]), kFarFuture);
        }
    }
    return static_cast<double>(misses) / (trace.size() - warm);
}

void hit_ratio(std::size_t requests) {
    const std::size_t n = 1'000'000;
    auto keys = make_keys(n, "zipf");
    // Mixed sizes: log-uniform from 100 B to 16 KiB.
    std::vector<std::uint32_t> sizes(n);
    std::mt19937_64 rng(9);
    std::uniform_real_distribution<double> u(std::log(100.0), std::log(16384.0));
    std::size_t total = 0;
    for (auto& s : sizes) total += (s = static_cast<std::uint32_t>(std::exp(u(rng))));
    const std::string payload(16384, 'z');
    std::printf("key space: %zu keys, %.0f MiB of values; %zu requests per trace, the first half warms the "
                "cache, the second half is measured\n\n",
                n, total / 1048576.0, requests);
    std::printf("| alpha | cache (%% of key space) | L1 S3-FIFO miss ratio | exact LRU miss ratio | L1 vs LRU |\n"
                "|---|---|---|---|---|\n");
    for (double alpha : {0.8, 1.0, 1.2}) {
        auto trace = zipf_trace(n, alpha, requests, static_cast<std::uint64_t>(alpha * 100));
        for (double fraction : {0.01, 0.10}) {
            const auto budget = static_cast<std::size_t>(total * fraction);
            std::filesystem::remove(kPath);
            // The file holds index and headers too: size it so its data area is about the budget,
            // then give the LRU exactly the data area the L1 ended up with.
            ShmStore l1({kPath, budget + budget / 16 + (4 << 20), 64 << 10, wall_now});
            auto capacity = l1.stats().capacity_bytes;
            MemoryStore lru({capacity, 64 << 10, wall_now});
            double m_l1 = miss_ratio(l1, keys, sizes, trace, payload);
            double m_lru = miss_ratio(lru, keys, sizes, trace, payload);
            std::printf("| %.1f | %.0f %% (%.1f MiB) | %.4f | %.4f | %+.1f %% |\n", alpha, fraction * 100,
                        capacity / 1048576.0, m_l1, m_lru, (m_l1 / m_lru - 1) * 100);
            std::fflush(stdout);
        }
    }
    std::filesystem::remove(kPath);
}

// ---------------------------------------------------------------------------------------------

void cold_start() {
    const std::size_t size = 1ull << 30;
    std::filesystem::remove(kPath);
    const std::string value(1024, 'c');
    auto keys = make_keys(size / 1100, "cold");
    auto fill = [&] {
        ShmStore s({kPath, size, 1 << 20, wall_now});
        for (auto& k : keys) s.put(k.hash, k.text, value, kFarFuture);
        return s.stats().items;
    };
    std::vector<double> clean, unclean;
    std::uint64_t items_clean = 0, items_unclean = 0;
    fill();
    for (int r = 0; r < 3; ++r) {
        auto start = Clock::now();
        ShmStore s({kPath, size, 1 << 20, wall_now});
        clean.push_back(seconds_since(start));
        items_clean = s.stats().items;
        if (s.open_state() != ShmStore::OpenState::ReusedClean) std::printf("unexpected state %s\n", to_string(s.open_state()));
    }
    for (int r = 0; r < 3; ++r) {
        pid_t pid = fork();
        if (pid == 0) {
            ShmStore s({kPath, size, 1 << 20, wall_now});
            for (auto& k : keys) s.put(k.hash, k.text, value, kFarFuture);
            raise(SIGKILL);
        }
        waitpid(pid, nullptr, 0);
        auto start = Clock::now();
        ShmStore s({kPath, size, 1 << 20, wall_now});
        unclean.push_back(seconds_since(start));
        items_unclean = s.stats().items;
        if (s.open_state() != ShmStore::OpenState::Recovered) std::printf("unexpected state %s\n", to_string(s.open_state()));
    }
    std::printf("| 1 GiB segment, 1 KiB values | reopen time (median of 3) | entries kept |\n|---|---|---|\n");
    std::printf("| after a clean shutdown | %.3f ms | %llu |\n", median(clean) * 1e3,
                static_cast<unsigned long long>(items_clean));
    std::printf("| after SIGKILL (validates every entry) | %.1f ms | %llu |\n", median(unclean) * 1e3,
                static_cast<unsigned long long>(items_unclean));
    std::filesystem::remove(kPath);
}

}  // namespace

int main(int argc, char** argv) {
    std::string what = argc > 1 ? argv[1] : "";
    long number = argc > 3 ? std::atol(argv[3]) : 0;
    if (what == "throughput") throughput(number > 0 ? static_cast<int>(number) : 5);
    else if (what == "hit-ratio") hit_ratio(number > 0 ? static_cast<std::size_t>(number) : 10'000'000);
    else if (what == "cold-start") cold_start();
    else {
        std::fprintf(stderr, "usage: l1_bench throughput [--runs N] | hit-ratio [--requests N] | cold-start\n");
        return 2;
    }
}
