// 1-D convolution in bfloat16 with float32 accumulation on Intel AMX (the tile matrix unit of
// Xeon 4th gen and later): the codec's convolutions on CPUs that have it. XLA:CPU runs
// bfloat16 convolutions no faster than float32 ones, and a matmul over stacked taps spends its
// time building the stacked input; AMX tile loads take a row stride, so here each tap's input
// rows are read in place. Registered by audiojax/kernels/amx_conv.py as the XLA FFI target
//   audiojax_amx_conv(x, x_lo, w, w_lo; stride, dilation) -> y
// x: [B, T_in, C] bfloat16 (already padded), seen as frames of `stride` steps: [B, T_in /
// stride, stride * C] (a stride-s conv whose taps are a multiple of s is a stride-1 conv over
// such frames; the caller reshapes the kernel); below, C and T_in count frame channels and
// frames. w: [taps, C / 32, N / 16, 16, 16, 2] bfloat16: AMX B tiles, each 16 pairs of
// consecutive input channels x 16 outputs, contiguous (1 KB read in order; a 512 -> 512
// channel layer ran 1.0-1.2 ms with them against 1.5 ms with rows strided through a
// [taps, C / 2, N, 2] array).
// y: [B, T_out, N] float32, T_out = T_in - (taps - 1) * dilation, a multiple of 32;
//   y[b, t, n] = sum_{j, c} x[b, t + j * dilation, c] * w[j, c / 32, n / 16, c % 32 / 2,
//                                                           n % 16, c % 2].
// x_lo and w_lo empty: one bfloat16 pass. Else float32 operands were split into bfloat16 high
// and low parts, x + x_lo and w + w_lo, and y = x w + x w_lo + x_lo w (three passes, as XLA's
// BF16_BF16_F32_X3: the dropped x_lo w_lo and the parts' rounding leave errors ~5e-6 of the
// output's scale, against float32's ~1e-7 and one pass's ~2.5e-3).
// Output blocks of 32 steps x 32 channels (4 accumulator tiles) are shared out over XLA's
// intra-op thread pool (parallel.h).

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

#include "parallel.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kRows = 16;      // rows of every tile
constexpr int64_t kChannels = 32;  // bfloat16 input channels per A tile (64 bytes a row)
constexpr int64_t kOutputs = 16;   // float32 outputs per accumulator tile
constexpr int64_t kTile = 512;     // bfloat16 weights per B tile: 16 channel pairs x 16 outputs

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

// Tiles 4-5: 16 rows of 32 input channels each, the block's two halves of steps.
inline void LoadInputs(const uint16_t* first, const uint16_t* second, int64_t stride) {
  _tile_loadd(4, first, stride);
  _tile_loadd(5, second, stride);
}

// Tiles 6-7: 16 channel pairs x 16 outputs each, the block's two halves of outputs.
inline void LoadWeights(const uint16_t* first, const uint16_t* second, int64_t stride) {
  _tile_loadd(6, first, stride);
  _tile_loadd(7, second, stride);
}

inline void Accumulate() {  // tiles 0-3 (steps x outputs halves) += inputs . weights
  _tile_dpbf16ps(0, 4, 6);
  _tile_dpbf16ps(1, 4, 7);
  _tile_dpbf16ps(2, 5, 6);
  _tile_dpbf16ps(3, 5, 7);
}

struct Conv1d {
  const uint16_t *x, *x_lo, *w, *w_lo;  // the _lo parts: nullptr for one bfloat16 pass
  float* y;
  int64_t batch, t_in, t_out, C, N, taps, dilation;

  // y[b, 32 steps from t, 32 outputs from n]: 4 accumulators over every tap and channel group,
  // of x . w, or of x . w + x . w_lo + x_lo . w with the low parts.
  void Block(int64_t b, int64_t t, int64_t n) const {
    const int64_t x_stride = C * 2, w_stride = 64, groups = C / kChannels;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t j = 0; j < taps; ++j) {
      const int64_t row = (b * t_in + t + j * dilation) * C;
      for (int64_t g = 0; g < groups; ++g) {
        // Weight tiles (contiguous, 16 channel pairs x 16 outputs): the first and the second
        // 16 outputs.
        const int64_t w_first = ((j * groups + g) * (N / kOutputs) + n / kOutputs) * kTile;
        const int64_t w_second = w_first + kTile;
        const int64_t x_first = row + g * kChannels, x_second = x_first + kRows * C;
        LoadInputs(x + x_first, x + x_second, x_stride);
        LoadWeights(w + w_first, w + w_second, w_stride);
        Accumulate();
        if (x_lo == nullptr) continue;
        LoadWeights(w_lo + w_first, w_lo + w_second, w_stride);
        Accumulate();
        LoadInputs(x_lo + x_first, x_lo + x_second, x_stride);
        LoadWeights(w + w_first, w + w_second, w_stride);
        Accumulate();
      }
    }
    float* out = y + (b * t_out + t) * N + n;
    const int64_t y_stride = N * 4;
    _tile_stored(0, out, y_stride);
    _tile_stored(1, out + kOutputs, y_stride);
    _tile_stored(2, out + kRows * N, y_stride);
    _tile_stored(3, out + kRows * N + kOutputs, y_stride);
  }

  // Block i of batch x (T_out / 32) x (N / 32), steps fastest: consecutive blocks sweep the
  // input with one group of outputs' weights.
  void Item(int64_t i) const {
    const int64_t row_blocks = t_out / (2 * kRows), rows = i % row_blocks, rest = i / row_blocks;
    Block(rest % batch, rows * 2 * kRows, rest / batch * 2 * kOutputs);
  }
};

ffi::Error Conv(ffi::ThreadPool pool, ffi::Buffer<ffi::BF16> x, ffi::Buffer<ffi::BF16> x_lo,
                ffi::Buffer<ffi::BF16> w, ffi::Buffer<ffi::BF16> w_lo,
                ffi::ResultBuffer<ffi::F32> y, int64_t stride, int64_t dilation) {
  const auto xd = x.dimensions(), wd = w.dimensions(), yd = y->dimensions();
  const bool split = x_lo.element_count() > 0;
  if (xd.size() != 3 || wd.size() != 6 || yd.size() != 3 || wd[3] != kRows ||
      wd[4] != kOutputs || wd[5] != 2 || stride < 1 ||
      xd[1] % stride || (split && (x_lo.element_count() != x.element_count() ||
                                   w_lo.element_count() != w.element_count())))
    return ffi::Error::InvalidArgument(
        "audiojax_amx_conv: x must be [B, T, C] with T a multiple of the stride, w [taps, "
        "stride C / 32, N / 16, 16, 16, 2], x_lo and w_lo empty or shaped as x and w, y [B, "
        "T / stride - (taps - 1) dilation, N]");
  Conv1d conv;
  conv.x = reinterpret_cast<const uint16_t*>(x.typed_data());
  conv.w = reinterpret_cast<const uint16_t*>(w.typed_data());
  conv.x_lo = split ? reinterpret_cast<const uint16_t*>(x_lo.typed_data()) : nullptr;
  conv.w_lo = split ? reinterpret_cast<const uint16_t*>(w_lo.typed_data()) : nullptr;
  conv.y = y->typed_data();
  conv.batch = xd[0];
  conv.t_in = xd[1] / stride;
  conv.C = xd[2] * stride;
  conv.taps = wd[0];
  conv.N = wd[2] * kOutputs;
  conv.dilation = dilation;
  conv.t_out = conv.t_in - (conv.taps - 1) * dilation;
  if (conv.C != wd[1] * kChannels || conv.N % (2 * kOutputs) || yd[0] != conv.batch ||
      yd[1] != conv.t_out || yd[2] != conv.N || conv.t_out % (2 * kRows) || conv.t_out < 0)
    return ffi::Error::InvalidArgument(
        "audiojax_amx_conv: shapes disagree (C = 32 w[1], N = 16 w[2] a multiple of 32, "
        "T_out = T_in - (taps - 1) dilation a multiple of 32)");
  const int64_t blocks = conv.batch * (conv.t_out / (2 * kRows)) * (conv.N / (2 * kOutputs));
  // A few chunks per thread (blocks take unequal times); each thread configures its tiles
  // before its first block and releases them after its last.
  audiojax::ParallelFor(
      pool, blocks, 4, [&conv](int64_t i) { conv.Item(i); },
      [] { ConfigureTiles(); }, [] { _tile_release(); });
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
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("stride")
                                  .Attr<int64_t>("dilation"));
