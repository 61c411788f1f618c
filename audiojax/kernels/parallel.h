// Sharing a kernel's work out over XLA's intra-op thread pool (the FFI's ThreadPool context):
// the items [0, num_items) are cut into contiguous chunks, a few per thread, which the pool's
// helpers and the calling thread claim from one atomic counter until none is left. The caller
// takes chunks too, so nothing waits on a busy pool, and returns when every chunk has run.
// Included by the kernels in this directory (build.py hashes it into their cache key).

#ifndef AUDIOJAX_KERNELS_PARALLEL_H_
#define AUDIOJAX_KERNELS_PARALLEL_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "xla/ffi/api/ffi.h"

namespace audiojax {

struct NoHook {
  void operator()() const {}
};

// Runs item(i) for every i in [0, num_items), in chunks of consecutive items,
// `chunks_per_thread` chunks per thread of the pool (more than one evens out items of unequal
// cost). A thread runs enter() before its first chunk and leave() after its last (per-thread
// state such as AMX's tile configuration); one that claims no chunk runs neither. Every call
// of item happens before this returns, so it may refer to the caller's stack; a helper's
// leave() may run just after the return, so the hooks are copied and must not. The counters
// are shared with the helpers, which may even start after the return (and find no chunk).
template <typename Item, typename Enter = NoHook, typename Leave = NoHook>
void ParallelFor(xla::ffi::ThreadPool& pool, int64_t num_items, int64_t chunks_per_thread,
                 const Item& item, const Enter& enter = {}, const Leave& leave = {}) {
  if (num_items <= 0) return;
  const int64_t threads = pool.num_threads() > 1 ? pool.num_threads() : 1;
  const int64_t wanted = threads * chunks_per_thread;
  const int64_t per_chunk = (num_items + wanted - 1) / wanted;
  const int64_t num_chunks = (num_items + per_chunk - 1) / per_chunk;
  struct Counters {
    std::atomic<int64_t> next{0}, done{0};
  };
  auto counters = std::make_shared<Counters>();
  auto run = [counters, num_items, per_chunk, num_chunks, &item, enter, leave] {
    bool entered = false;
    for (int64_t c; (c = counters->next.fetch_add(1, std::memory_order_relaxed)) < num_chunks;) {
      if (!entered) {
        enter();
        entered = true;
      }
      for (int64_t i = c * per_chunk; i < (c + 1) * per_chunk && i < num_items; ++i) item(i);
      counters->done.fetch_add(1, std::memory_order_release);
    }
    if (entered) leave();
  };
  for (int64_t i = 1; i < num_chunks && i < threads; ++i) pool.Schedule([run] { run(); });
  run();
  while (counters->done.load(std::memory_order_acquire) < num_chunks) {
  }
}

}  // namespace audiojax

#endif  // AUDIOJAX_KERNELS_PARALLEL_H_
