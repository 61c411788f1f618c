// y = x @ w on the CPU with w stored in fewer bytes than float32, everything else float32: the
// vector-matrix products of batch-1 decoding, which stream the weights from memory once per
// token. XLA:CPU multiplies such weights only after converting them to float32 (or 10-20x
// slower), so reading fewer bytes per weight needs these kernels. Registered by
// audiojax/kernels/cpu_matmul.py as XLA FFI targets:
//   audiojax_bf16_matmul(x, w)         w bfloat16
//   audiojax_int8_matmul(x, w, scale)  w int8, y[:, n] scaled by scale[n] (per-column weights),
//                                      in 16-bit elements of 2 ([N / 64, K, 32], typed bf16)
//
// x: [M, K] float32; w: [N / 64, K, 64] (column tiles of 64, each contiguous, so a tile streams
// from memory in order); scale: [N] float32; y: [M, N] float32. The bfloat16 target also takes
// a batch of products: x [B, M, K], w [B, N / 64, K, 64] -> y [B, M, N] (a tiled KV cache).
// Tiles are shared out over XLA's intra-op thread pool (parallel.h). Written with GCC vector
// extensions: the compiler picks the widest registers the machine has.

#include <cstdint>
#include <cstring>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "parallel.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kTile = 64;  // columns per tile: 4 vectors of 16
constexpr int64_t kRows = 4;   // rows of x per pass over a tile (4 x 4 accumulators)
constexpr int64_t kAhead = 8;  // tile rows prefetched ahead

typedef float f32x16 __attribute__((vector_size(64)));
typedef uint32_t u32x16 __attribute__((vector_size(64)));
typedef uint16_t u16x16 __attribute__((vector_size(32)));
typedef int32_t i32x16 __attribute__((vector_size(64)));
typedef int8_t i8x16 __attribute__((vector_size(16)));

inline f32x16 Load(const uint16_t* p) {  // 16 bfloat16 -> float32: the high half of each
  u16x16 h;
  std::memcpy(&h, p, sizeof(h));
  u32x16 bits = __builtin_convertvector(h, u32x16) << 16;
  f32x16 out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

inline f32x16 Load(const int8_t* p) {  // 16 int8 -> float32
#ifdef __AVX512F__  // GCC 12 sign-extends an int8 vector element by element: say it directly
  const __m512 wide = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  f32x16 out;
  std::memcpy(&out, &wide, sizeof(out));
  return out;
#else
  i8x16 q;
  std::memcpy(&q, p, sizeof(q));
  return __builtin_convertvector(__builtin_convertvector(q, i32x16), f32x16);
#endif
}

// y[0:R, the tile's 64 columns] = x[0:R] . tile (times scale, if any), tile: [K, 64]; R a
// constant, so the accumulators stay in registers.
template <int R, typename W>
void TileRows(const float* x, const W* tile, const float* scale, float* y, int64_t K,
              int64_t N) {
  f32x16 acc[R][4] = {};
  for (int64_t k = 0; k < K; ++k) {
    const W* row = tile + k * kTile;
    for (int64_t b = 0; b < kTile * int64_t(sizeof(W)); b += 64)
      __builtin_prefetch(reinterpret_cast<const char*>(row + kAhead * kTile) + b);
    f32x16 w[4];
    for (int j = 0; j < 4; ++j) w[j] = Load(row + 16 * j);
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < 4; ++j) acc[r][j] += x[r * K + k] * w[j];
  }
  if (scale != nullptr) {
    for (int j = 0; j < 4; ++j) {
      f32x16 s;
      std::memcpy(&s, scale + 16 * j, sizeof(s));
      for (int r = 0; r < R; ++r) acc[r][j] *= s;
    }
  }
  for (int r = 0; r < R; ++r) std::memcpy(y + r * N, acc[r], sizeof(acc[r]));
}

// y[:, the tile's columns] for one column tile, the rows of x kRows at a time.
template <typename W>
void Tile(const float* x, const W* tile, const float* scale, float* y, int64_t M, int64_t K,
          int64_t N) {
  for (int64_t m = 0; m < M; m += kRows) {
    const float* xm = x + m * K;
    float* ym = y + m * N;
    switch (M - m < kRows ? M - m : kRows) {
      case 1: TileRows<1>(xm, tile, scale, ym, K, N); break;
      case 2: TileRows<2>(xm, tile, scale, ym, K, N); break;
      case 3: TileRows<3>(xm, tile, scale, ym, K, N); break;
      default: TileRows<4>(xm, tile, scale, ym, K, N); break;
    }
  }
}

// B independent products (the leading axis of x [B, M, K] and w [B, N / 64, K, 64]; B = 1
// for w [N / 64, K, 64] and x [M, K]), their column tiles shared out over the threads.
template <typename W>
ffi::Error Matmul(ffi::ThreadPool& pool, const float* x, int64_t x_size, const W* w,
                  ffi::Span<const int64_t> dims, const float* scale, float* y) {
  const size_t rank = dims.size();
  if ((rank != 3 && rank != 4) || dims[rank - 1] != kTile)
    return ffi::Error::InvalidArgument(
        "audiojax cpu_matmul: w must be [N / 64, K, 64] or [B, N / 64, K, 64]");
  const int64_t batch = rank == 4 ? dims[0] : 1, K = dims[rank - 2];
  const int64_t per_product = dims[rank - 3];  // column tiles per product
  const int64_t N = per_product * kTile, M = K && batch ? x_size / batch / K : 0;
  // One chunk of tiles per thread (tiles take equal times).
  audiojax::ParallelFor(pool, batch * per_product, 1, [&](int64_t i) {
    const int64_t b = i / per_product, t = i % per_product;
    Tile(x + b * M * K, w + i * K * kTile, scale ? scale + t * kTile : nullptr,
         y + b * M * N + t * kTile, M, K, N);
  });
  return ffi::Error::Success();
}

// w: bfloat16, or uint16 holding bfloat16 bits (a KV cache kept as bits: see transformer.py).
ffi::Error Bf16Matmul(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::AnyBuffer w,
                      ffi::ResultBuffer<ffi::F32> y) {
  if (w.element_type() != ffi::DataType::BF16 && w.element_type() != ffi::DataType::U16)
    return ffi::Error::InvalidArgument("audiojax_bf16_matmul: w must be bfloat16 or uint16");
  return Matmul(pool, x.typed_data(), x.element_count(),
                static_cast<const uint16_t*>(w.untyped_data()), w.dimensions(), nullptr,
                y->typed_data());
}

// w arrives as 16-bit elements of 2 int8 weights, [N / 64, K, 32] (cpu_matmul.py: why).
ffi::Error Int8Matmul(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::BF16> w,
                      ffi::Buffer<ffi::F32> scale, ffi::ResultBuffer<ffi::F32> y) {
  const auto pairs = w.dimensions();
  if (pairs.size() != 3 || pairs[2] * 2 != kTile ||
      scale.element_count() != pairs[0] * kTile)
    return ffi::Error::InvalidArgument(
        "audiojax_int8_matmul: w must be [N / 64, K, 32] pairs, scale [N]");
  const int64_t dims[3] = {pairs[0], pairs[1], kTile};
  return Matmul(pool, x.typed_data(), x.element_count(),
                reinterpret_cast<const int8_t*>(w.typed_data()), ffi::Span<const int64_t>(dims, 3),
                scale.typed_data(), y->typed_data());
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(AudiojaxBf16Matmul, Bf16Matmul,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(AudiojaxInt8Matmul, Int8Matmul,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
