// y = x @ w on the CPU with w stored as bfloat16 and everything else float32: the vector-matrix
// products of batch-1 decoding, which stream the weights from memory once per token. XLA:CPU
// multiplies bfloat16 weights only after converting them to float32 (or 10-20x slower), so
// half the bytes per token needs this kernel. Registered by audiojax/kernels/cpu_matmul.py
// as the XLA FFI target "audiojax_bf16_matmul".
//
// x: [M, K] float32; w: [N / 64, K, 64] bfloat16 (column tiles of 64, each contiguous, so a
// tile streams from memory in order); y: [M, N] float32. Tiles are shared out over XLA's
// intra-op thread pool; the calling thread takes tiles too, so nothing waits on a busy pool.
// Written with GCC vector extensions: the compiler picks the widest registers the machine has.

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kTile = 64;  // columns per tile: 4 vectors of 16
constexpr int64_t kRows = 4;   // rows of x per pass over a tile (4 x 4 accumulators)
constexpr int64_t kAhead = 8;  // tile rows prefetched ahead

typedef float f32x16 __attribute__((vector_size(64)));
typedef uint32_t u32x16 __attribute__((vector_size(64)));
typedef uint16_t u16x16 __attribute__((vector_size(32)));

inline f32x16 LoadBf16(const uint16_t* p) {
  u16x16 h;
  std::memcpy(&h, p, sizeof(h));
  u32x16 bits = __builtin_convertvector(h, u32x16) << 16;
  f32x16 out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

// y[m0:m0 + R, the tile's 64 columns] for one column tile, tile: [K, 64] (R a constant, so
// the accumulators stay in registers).
template <int R>
void TileRows(const float* x, const uint16_t* tile, float* y, int64_t K, int64_t N) {
  f32x16 acc[R][4] = {};
  for (int64_t k = 0; k < K; ++k) {
    const uint16_t* row = tile + k * kTile;
    __builtin_prefetch(row + kAhead * kTile);
    __builtin_prefetch(row + kAhead * kTile + 32);
    f32x16 w[4];
    for (int j = 0; j < 4; ++j) w[j] = LoadBf16(row + 16 * j);
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < 4; ++j) acc[r][j] += x[r * K + k] * w[j];
  }
  for (int r = 0; r < R; ++r) std::memcpy(y + r * N, acc[r], sizeof(acc[r]));
}

// y[:, the tile's columns] for one column tile, the rows of x kRows at a time.
void Tile(const float* x, const uint16_t* tile, float* y, int64_t M, int64_t K, int64_t N) {
  for (int64_t m = 0; m < M; m += kRows) {
    const float* xm = x + m * K;
    float* ym = y + m * N;
    switch (M - m < kRows ? M - m : kRows) {
      case 1: TileRows<1>(xm, tile, ym, K, N); break;
      case 2: TileRows<2>(xm, tile, ym, K, N); break;
      case 3: TileRows<3>(xm, tile, ym, K, N); break;
      default: TileRows<4>(xm, tile, ym, K, N); break;
    }
  }
}

struct Work {
  const float* x;
  const uint16_t* w;
  float* y;
  int64_t M, K, N, tiles_per_chunk, num_chunks;
  std::atomic<int64_t> next{0}, done{0};

  void Run() {
    for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < num_chunks;) {
      const int64_t first = c * tiles_per_chunk, tiles = N / kTile;
      for (int64_t t = first; t < first + tiles_per_chunk && t < tiles; ++t)
        Tile(x, w + t * K * kTile, y + t * kTile, M, K, N);
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

ffi::Error Bf16Matmul(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::BF16> w,
                      ffi::ResultBuffer<ffi::F32> y) {
  const auto dims = w.dimensions();
  if (dims.size() != 3 || dims[2] != kTile)
    return ffi::Error::InvalidArgument("audiojax_bf16_matmul: w must be [N / 64, K, 64]");
  auto work = std::make_shared<Work>();
  work->K = dims[1];
  work->N = dims[0] * kTile;
  work->M = work->K ? x.element_count() / work->K : 0;
  work->x = x.typed_data();
  work->w = reinterpret_cast<const uint16_t*>(w.typed_data());
  work->y = y->typed_data();
  const int64_t tiles = dims[0], threads = pool.num_threads() > 1 ? pool.num_threads() : 1;
  work->tiles_per_chunk = (tiles + threads - 1) / threads;
  work->num_chunks = tiles ? (tiles + work->tiles_per_chunk - 1) / work->tiles_per_chunk : 0;
  // Helpers capture the shared state: one that starts after the call returned finds no chunk.
  for (int64_t i = 1; i < work->num_chunks; ++i) pool.Schedule([work] { work->Run(); });
  work->Run();
  while (work->done.load(std::memory_order_acquire) < work->num_chunks) {
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(AudiojaxBf16Matmul, Bf16Matmul,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
