// 1-D convolution in bfloat16 with float32 accumulation on Intel AMX (the tile matrix unit of
// Xeon 4th gen and later): the codec's convolutions on CPUs that have it. XLA:CPU runs
// bfloat16 convolutions no faster than float32 ones, and a matmul over stacked taps spends its
// time building the stacked input; AMX tile loads take a row stride, so here each tap's input
// rows are read in place. Registered by audiojax/kernels/amx_conv.py as the XLA FFI target
//   audiojax_amx_conv(x, w; stride, dilation) -> y
// x: [B, T_in, C] bfloat16 (already padded), seen as frames of `stride` steps: [B, T_in /
// stride, stride * C] (a stride-s conv whose taps are a multiple of s is a stride-1 conv over
// such frames; the caller reshapes the kernel); below, C and T_in count frame channels and
// frames. w: [taps, C / 32, N / 16, 16, 16, 2] bfloat16 (for each tap, 32 input channels and
// 16 outputs, one AMX B tile: pairs of consecutive channels per output); y: [B, T_out, N]
// float32, T_out = T_in - (taps - 1) * dilation, a multiple of 32;
//   y[b, t, n] = sum_{j, c} x[b, t + j * dilation, c] * w_unpacked[j, c, n].
// Output blocks of 32 steps x 32 channels (4 accumulator tiles) are shared out over XLA's
// intra-op thread pool; the calling thread takes blocks too.

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kRows = 16;      // rows of every tile
constexpr int64_t kChannels = 32;  // bfloat16 input channels per A tile (64 bytes a row)
constexpr int64_t kOutputs = 16;   // float32 outputs per accumulator tile

struct TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

void ConfigureTiles() {  // tmm0-3 accumulators, tmm4-5 inputs, tmm6-7 weights: 16 x 64 bytes
  TileConfig config = {};
  config.palette_id = 1;
  for (int i = 0; i < 8; ++i) {
    config.colsb[i] = 64;
    config.rows[i] = kRows;
  }
  _tile_loadconfig(&config);
}

struct Work {
  const uint16_t* x;
  const uint16_t* w;
  float* y;
  int64_t batch, t_in, t_out, C, N, taps, dilation;
  int64_t blocks, blocks_per_chunk, num_chunks;
  std::atomic<int64_t> next{0}, done{0};

  // y[b, 32 steps from t, 32 outputs from n]: 4 accumulators over every tap and channel group.
  void Block(int64_t b, int64_t t, int64_t n) {
    const int64_t x_stride = C * 2, w_tile = kRows * 64 / 2, groups = C / kChannels;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t j = 0; j < taps; ++j) {
      const uint16_t* rows = x + (b * t_in + t + j * dilation) * C;
      for (int64_t g = 0; g < groups; ++g) {
        const uint16_t* weights = w + ((j * groups + g) * (N / kOutputs) + n / kOutputs) * w_tile;
        _tile_loadd(4, rows + g * kChannels, x_stride);
        _tile_loadd(5, rows + kRows * C + g * kChannels, x_stride);
        _tile_loadd(6, weights, 64);
        _tile_loadd(7, weights + w_tile, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
    }
    float* out = y + (b * t_out + t) * N + n;
    const int64_t y_stride = N * 4;
    _tile_stored(0, out, y_stride);
    _tile_stored(1, out + kOutputs, y_stride);
    _tile_stored(2, out + kRows * N, y_stride);
    _tile_stored(3, out + kRows * N + kOutputs, y_stride);
  }

  void Run() {
    bool configured = false;
    const int64_t row_blocks = t_out / (2 * kRows);
    for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < num_chunks;) {
      if (!configured) {
        ConfigureTiles();
        configured = true;
      }
      const int64_t first = c * blocks_per_chunk;
      // Steps fastest: a chunk sweeps the input with one group of outputs' weights.
      for (int64_t i = first; i < first + blocks_per_chunk && i < blocks; ++i) {
        const int64_t rows = i % row_blocks, rest = i / row_blocks;
        Block(rest % batch, rows * 2 * kRows, rest / batch * 2 * kOutputs);
      }
      done.fetch_add(1, std::memory_order_release);
    }
    if (configured) _tile_release();
  }
};

ffi::Error Conv(ffi::ThreadPool pool, ffi::Buffer<ffi::BF16> x, ffi::Buffer<ffi::BF16> w,
                ffi::ResultBuffer<ffi::F32> y, int64_t stride, int64_t dilation) {
  const auto xd = x.dimensions(), wd = w.dimensions(), yd = y->dimensions();
  if (xd.size() != 3 || wd.size() != 6 || yd.size() != 3 || wd[3] != kRows ||
      wd[4] != kOutputs || wd[5] != 2 || stride < 1 || xd[1] % stride)
    return ffi::Error::InvalidArgument(
        "audiojax_amx_conv: x must be [B, T, C] with T a multiple of the stride, w [taps, "
        "stride C / 32, N / 16, 16, 16, 2], y [B, T / stride - (taps - 1) dilation, N]");
  auto work = std::make_shared<Work>();
  work->x = reinterpret_cast<const uint16_t*>(x.typed_data());
  work->w = reinterpret_cast<const uint16_t*>(w.typed_data());
  work->y = y->typed_data();
  work->batch = xd[0];
  work->t_in = xd[1] / stride;
  work->C = xd[2] * stride;
  work->taps = wd[0];
  work->N = wd[2] * kOutputs;
  work->dilation = dilation;
  work->t_out = work->t_in - (work->taps - 1) * dilation;
  if (work->C != wd[1] * kChannels || work->N % (2 * kOutputs) || yd[0] != work->batch ||
      yd[1] != work->t_out || yd[2] != work->N || work->t_out % (2 * kRows) || work->t_out < 0)
    return ffi::Error::InvalidArgument(
        "audiojax_amx_conv: shapes disagree (C = 32 w[1], N = 16 w[2] a multiple of 32, "
        "T_out = T_in - (taps - 1) dilation a multiple of 32)");
  work->blocks = work->batch * (work->t_out / (2 * kRows)) * (work->N / (2 * kOutputs));
  const int64_t threads = pool.num_threads() > 1 ? pool.num_threads() : 1;
  const int64_t chunks = 4 * threads;  // a few per thread: blocks take unequal times
  work->blocks_per_chunk = work->blocks ? (work->blocks + chunks - 1) / chunks : 1;
  work->num_chunks = (work->blocks + work->blocks_per_chunk - 1) / work->blocks_per_chunk;
  for (int64_t i = 1; i < work->num_chunks && i < threads; ++i)
    pool.Schedule([work] { work->Run(); });
  work->Run();
  while (work->done.load(std::memory_order_acquire) < work->num_chunks) {
  }
  return ffi::Error::Success();
}

}  // namespace

// Asks Linux for this process's permission to use AMX tile data (needed once, before any
// thread loads a tile); 0 on success.
extern "C" int AudiojaxAmxInit() {
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return static_cast<int>(syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata));
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(AudiojaxAmxConv, Conv,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("stride")
                                  .Attr<int64_t>("dilation"));
