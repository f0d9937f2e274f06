// Reference kernels: plain C++, written for clarity, the ground truth that every SIMD kernel and
// every backend is tested against. All buffers are dense float arrays in the layouts of params.h.
#pragma once

#include <cstdint>

#include "kernels/params.h"

namespace hybrid::kernels {

// Direct convolution of output rows [row_begin, row_end) of the batch*out_h rows; bias may be null.
void Conv2dF32Ref(const Conv2dParams& p, const float* in, const float* weights, const float* bias,
                  float* out, int row_begin, int row_end);

// out[b][o] = bias[o] + sum_i in[b][i] * weights[o][i] for batch rows [row_begin, row_end).
void DenseF32Ref(int batch, int in_f, int out_f, const float* in, const float* weights,
                 const float* bias, float* out, int row_begin, int row_end);

// out = in * scale[c] + shift[c] over n elements whose innermost dimension has `channels` entries.
void ChannelAffineF32Ref(int64_t n, int channels, const float* in, const float* scale,
                         const float* shift, float* out);

// out = max(in, 0).
void ReluF32Ref(int64_t n, const float* in, float* out);

// out = in >= 0 ? in : in * slope[c]; channels == 1 shares one slope.
void PreluF32Ref(int64_t n, int channels, const float* in, const float* slope, float* out);

// out = clamp(in, min_val, max_val).
void HardtanhF32Ref(int64_t n, float min_val, float max_val, const float* in, float* out);

// out = in < 0 ? -1 : +1 (sign(0) = +1, matching bitpacking where bit 1 means negative).
void SignF32Ref(int64_t n, const float* in, float* out);

// out = a + b.
void AddF32Ref(int64_t n, const float* a, const float* b, float* out);

// Max over each window; padding never wins.
void MaxPool2dF32Ref(const Pool2dParams& p, const float* in, float* out);

// Mean over each window, divided as p.count_include_pad says.
void AvgPool2dF32Ref(const Pool2dParams& p, const float* in, float* out);

// out[b][c] = mean over the hw positions of in[b][.][c].
void GlobalAvgPoolF32Ref(int batch, int hw, int channels, const float* in, float* out);

// Softmax over the innermost n values of each of `outer` rows, stable against overflow.
void SoftmaxF32Ref(int64_t outer, int n, const float* in, float* out);

// Concatenates, for each of `outer` rows, inner_sizes[i] values of each input i in order.
void ConcatF32Ref(int64_t outer, int num_inputs, const float* const* inputs,
                  const int64_t* inner_sizes, float* out);

// XNOR-Net binary weights: out = sign(w) * mean|w| over each output channel's per_channel values.
void BinarizeWeightsXnorRef(int out_c, int64_t per_channel, const float* w, float* out);

// XNOR-Net scales: scales[o] = mean |w| over output channel o's per_channel values (summed in
// double), so that sign(w) * scales[o] are the binary weights.
void BinaryWeightScalesRef(int out_c, int64_t per_channel, const float* w, float* scales);

// Symmetric per-channel k-bit weights as integers: q = clamp(round(w / scale)) in
// [-(2^(k-1) - 1), 2^(k-1) - 1] with scale = max|w| / (2^(k-1) - 1) per output channel.
void QuantizeWeightsToIntRef(int bits, int out_c, int64_t per_channel, const float* w, int8_t* q,
                             float* scales);

// Symmetric per-channel k-bit weights: scale = max|w| / (2^(k-1) - 1) per output channel,
// out = clamp(round(w / scale)) * scale; scales receives each channel's scale (0 for all-zero).
void QuantizeWeightsSymmetricRef(int bits, int out_c, int64_t per_channel, const float* w,
                                 float* out, float* scales);

// Uniform activation fake quantization: q = clamp(round(in / scale) + zero_point, qmin, qmax)
// with ties to even, out = (q - zero_point) * scale.
void FakeQuantizeActivationsRef(int64_t n, float scale, int zero_point, int qmin, int qmax,
                                const float* in, float* out);

}  // namespace hybrid::kernels
