#include "kernels/ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace hybrid::kernels {

void Conv2dF32Ref(const Conv2dParams& p, const float* in, const float* weights, const float* bias,
                  float* out, int row_begin, int row_end) {
  const int in_cg = p.in_c / p.groups;
  const int out_cg = p.out_c / p.groups;
  for (int row = row_begin; row < row_end; ++row) {
    const int b = row / p.out_h;
    const int oy = row % p.out_h;
    for (int ox = 0; ox < p.out_w; ++ox) {
      float* y = out + ((static_cast<int64_t>(b) * p.out_h + oy) * p.out_w + ox) * p.out_c;
      for (int oc = 0; oc < p.out_c; ++oc) {
        const int g = oc / out_cg;
        float acc = bias != nullptr ? bias[oc] : 0.f;
        for (int ky = 0; ky < p.kernel_h; ++ky) {
          const int iy = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
          for (int kx = 0; kx < p.kernel_w; ++kx) {
            const int ix = ox * p.stride_w - p.pad_left + kx * p.dilation_w;
            const float* w =
                weights + ((static_cast<int64_t>(oc) * p.kernel_h + ky) * p.kernel_w + kx) * in_cg;
            if (iy < 0 || iy >= p.in_h || ix < 0 || ix >= p.in_w) {
              if (p.pad_value != 0.f) {
                for (int ic = 0; ic < in_cg; ++ic) acc += p.pad_value * w[ic];
              }
              continue;
            }
            const float* x =
                in + ((static_cast<int64_t>(b) * p.in_h + iy) * p.in_w + ix) * p.in_c + g * in_cg;
            for (int ic = 0; ic < in_cg; ++ic) acc += x[ic] * w[ic];
          }
        }
        y[oc] = acc;
      }
    }
  }
}

void ConvIndirection(const Conv2dParams& p, int64_t pixel_stride, int64_t* offsets) {
  for (int oy = 0; oy < p.out_h; ++oy) {
    for (int ox = 0; ox < p.out_w; ++ox) {
      for (int ky = 0; ky < p.kernel_h; ++ky) {
        for (int kx = 0; kx < p.kernel_w; ++kx) {
          const int iy = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
          const int ix = ox * p.stride_w - p.pad_left + kx * p.dilation_w;
          const bool inside = iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w;
          *offsets++ = inside ? (static_cast<int64_t>(iy) * p.in_w + ix) * pixel_stride : -1;
        }
      }
    }
  }
}

void DenseF32Ref(int /*batch*/, int in_f, int out_f, const float* in, const float* weights,
                 const float* bias, float* out, int row_begin, int row_end) {
  for (int b = row_begin; b < row_end; ++b) {
    const float* x = in + static_cast<int64_t>(b) * in_f;
    for (int o = 0; o < out_f; ++o) {
      const float* w = weights + static_cast<int64_t>(o) * in_f;
      float acc = bias != nullptr ? bias[o] : 0.f;
      for (int i = 0; i < in_f; ++i) acc += x[i] * w[i];
      out[static_cast<int64_t>(b) * out_f + o] = acc;
    }
  }
}

void ChannelAffineF32Ref(int64_t n, int channels, const float* in, const float* scale,
                         const float* shift, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i % channels);
    out[i] = in[i] * scale[c] + shift[c];
  }
}

void ReluF32Ref(int64_t n, const float* in, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] > 0.f ? in[i] : 0.f;
}

void PreluF32Ref(int64_t n, int channels, const float* in, const float* slope, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float s = slope[channels == 1 ? 0 : i % channels];
    out[i] = in[i] >= 0.f ? in[i] : in[i] * s;
  }
}

void HardtanhF32Ref(int64_t n, float min_val, float max_val, const float* in, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = std::min(std::max(in[i], min_val), max_val);
}

void SignF32Ref(int64_t n, const float* in, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] < 0.f ? -1.f : 1.f;
}

void AddF32Ref(int64_t n, const float* a, const float* b, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

namespace {

// Calls f(iy, ix) for every input position of the window of output (oy, ox) inside the input,
// and returns how many window positions (inside or not) the window has.
template <typename F>
int ForWindow(const Pool2dParams& p, int oy, int ox, F f) {
  for (int ky = 0; ky < p.kernel_h; ++ky) {
    const int iy = oy * p.stride_h - p.pad_top + ky;
    if (iy < 0 || iy >= p.in_h) continue;
    for (int kx = 0; kx < p.kernel_w; ++kx) {
      const int ix = ox * p.stride_w - p.pad_left + kx;
      if (ix < 0 || ix >= p.in_w) continue;
      f(iy, ix);
    }
  }
  return p.kernel_h * p.kernel_w;
}

}  // namespace

void MaxPool2dF32Ref(const Pool2dParams& p, const float* in, float* out) {
  for (int b = 0; b < p.batch; ++b) {
    for (int oy = 0; oy < p.out_h; ++oy) {
      for (int ox = 0; ox < p.out_w; ++ox) {
        float* y = out + ((static_cast<int64_t>(b) * p.out_h + oy) * p.out_w + ox) * p.channels;
        for (int c = 0; c < p.channels; ++c) {
          float m = -std::numeric_limits<float>::infinity();
          ForWindow(p, oy, ox, [&](int iy, int ix) {
            const float v =
                in[((static_cast<int64_t>(b) * p.in_h + iy) * p.in_w + ix) * p.channels + c];
            m = std::max(m, v);
          });
          y[c] = m;
        }
      }
    }
  }
}

void AvgPool2dF32Ref(const Pool2dParams& p, const float* in, float* out) {
  for (int b = 0; b < p.batch; ++b) {
    for (int oy = 0; oy < p.out_h; ++oy) {
      for (int ox = 0; ox < p.out_w; ++ox) {
        float* y = out + ((static_cast<int64_t>(b) * p.out_h + oy) * p.out_w + ox) * p.channels;
        for (int c = 0; c < p.channels; ++c) {
          float sum = 0.f;
          int inside = 0;
          const int window = ForWindow(p, oy, ox, [&](int iy, int ix) {
            sum += in[((static_cast<int64_t>(b) * p.in_h + iy) * p.in_w + ix) * p.channels + c];
            ++inside;
          });
          const int count = p.count_include_pad ? window : inside;
          y[c] = count > 0 ? sum / static_cast<float>(count) : 0.f;
        }
      }
    }
  }
}

void GlobalAvgPoolF32Ref(int batch, int hw, int channels, const float* in, float* out) {
  for (int b = 0; b < batch; ++b) {
    for (int c = 0; c < channels; ++c) {
      float sum = 0.f;
      for (int i = 0; i < hw; ++i) sum += in[(static_cast<int64_t>(b) * hw + i) * channels + c];
      out[static_cast<int64_t>(b) * channels + c] = sum / static_cast<float>(hw);
    }
  }
}

void SoftmaxF32Ref(int64_t outer, int n, const float* in, float* out) {
  for (int64_t r = 0; r < outer; ++r) {
    const float* x = in + r * n;
    float* y = out + r * n;
    const float m = *std::max_element(x, x + n);
    float sum = 0.f;
    for (int i = 0; i < n; ++i) {
      y[i] = std::exp(x[i] - m);
      sum += y[i];
    }
    for (int i = 0; i < n; ++i) y[i] /= sum;
  }
}

void ConcatF32Ref(int64_t outer, int num_inputs, const float* const* inputs,
                  const int64_t* inner_sizes, float* out) {
  for (int64_t r = 0; r < outer; ++r) {
    for (int i = 0; i < num_inputs; ++i) {
      const float* src = inputs[i] + r * inner_sizes[i];
      out = std::copy(src, src + inner_sizes[i], out);
    }
  }
}

void BinaryWeightScalesRef(int out_c, int64_t per_channel, const float* w, float* scales) {
  for (int o = 0; o < out_c; ++o) {
    const float* src = w + o * per_channel;
    double sum = 0;
    for (int64_t i = 0; i < per_channel; ++i) sum += std::fabs(src[i]);
    scales[o] = static_cast<float>(sum / static_cast<double>(per_channel));
  }
}

void BinarizeWeightsXnorRef(int out_c, int64_t per_channel, const float* w, float* out) {
  for (int o = 0; o < out_c; ++o) {
    const float* src = w + o * per_channel;
    float alpha = 0.f;
    BinaryWeightScalesRef(1, per_channel, src, &alpha);
    for (int64_t i = 0; i < per_channel; ++i) {
      out[o * per_channel + i] = src[i] < 0.f ? -alpha : alpha;
    }
  }
}

void QuantizeWeightsToIntRef(int bits, int out_c, int64_t per_channel, const float* w, int8_t* q,
                             float* scales) {
  const int levels = (1 << (bits - 1)) - 1;
  for (int o = 0; o < out_c; ++o) {
    const float* src = w + o * per_channel;
    float max_abs = 0.f;
    for (int64_t i = 0; i < per_channel; ++i) max_abs = std::max(max_abs, std::fabs(src[i]));
    const float scale = max_abs / static_cast<float>(levels);
    scales[o] = scale;
    for (int64_t i = 0; i < per_channel; ++i) {
      float v = 0.f;
      if (scale > 0.f) {
        v = std::nearbyint(src[i] / scale);
        v = std::min(std::max(v, static_cast<float>(-levels)), static_cast<float>(levels));
      }
      q[o * per_channel + i] = static_cast<int8_t>(v);
    }
  }
}

void QuantizeWeightsSymmetricRef(int bits, int out_c, int64_t per_channel, const float* w,
                                 float* out, float* scales) {
  std::vector<int8_t> q(static_cast<size_t>(out_c * per_channel));
  QuantizeWeightsToIntRef(bits, out_c, per_channel, w, q.data(), scales);
  for (int o = 0; o < out_c; ++o) {
    for (int64_t i = 0; i < per_channel; ++i) {
      out[o * per_channel + i] = static_cast<float>(q[o * per_channel + i]) * scales[o];
    }
  }
}

void FakeQuantizeActivationsRef(int64_t n, float scale, int zero_point, int qmin, int qmax,
                                const float* in, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    float q = std::nearbyint(in[i] / scale) + static_cast<float>(zero_point);
    q = std::min(std::max(q, static_cast<float>(qmin)), static_cast<float>(qmax));
    out[i] = (q - static_cast<float>(zero_point)) * scale;
  }
}

}  // namespace hybrid::kernels
