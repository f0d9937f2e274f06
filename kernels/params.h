// Shapes of the kernels' work, shared by the reference kernels and the SIMD ones. Activations are
// NHWC; convolution weights are [out_c][kernel_h][kernel_w][in_c / groups].
#pragma once

#include <cstdint>

namespace hybrid::kernels {

struct Conv2dParams {
  int batch = 1;
  int in_h = 1, in_w = 1, in_c = 1;
  int out_h = 1, out_w = 1, out_c = 1;
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  // Bottom and right padding follow from out_h and out_w.
  int pad_top = 0, pad_left = 0;
  int groups = 1;
  // The value read outside the input: 0 for ordinary convolutions, +1 for one-padded binary ones.
  float pad_value = 0.f;
};

// Uniform quantization of a layer's input activations, as its integer kernels store them:
// stored = clamp(round_half_even(x / scale) + zero_point, qmin, qmax) + offset, a u8.
struct ActivationQuant {
  float scale = 1.f;
  int zero_point = 0;
  int qmin = 0, qmax = 255;
  int offset = 0;  // 128 for signed activations, else 0
  // The stored value of 0.
  int input_zero() const { return zero_point + offset; }
};

struct Pool2dParams {
  int batch = 1;
  int in_h = 1, in_w = 1, channels = 1;
  int out_h = 1, out_w = 1;
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0;
  // Average pooling divides by the whole window (true) or by its part inside the input (false).
  bool count_include_pad = false;
};

// For each output pixel (out_h * out_w) and tap (kh * kw): the offset, in units of
// `pixel_stride`, of the input pixel the tap reads within one image, or -1 in the padding.
void ConvIndirection(const Conv2dParams& p, int64_t pixel_stride, int64_t* offsets);

}  // namespace hybrid::kernels
