// Which tiles of a convolution's output pixels read every tap inside the input at one pointer per
// tap plus a fixed step per pixel: the drivers' fast path, shared by the binary, 2-bit and integer
// kernels.
#pragma once

#include "kernels/params.h"

namespace hybrid::kernels {

class InteriorTiles {
 public:
  explicit InteriorTiles(const Conv2dParams& p)
      : out_w_(p.out_w),
        in_h_(p.in_h),
        stride_h_(p.stride_h),
        pad_top_(p.pad_top),
        span_h_((p.kernel_h - 1) * p.dilation_h) {
    const int span_w = (p.kernel_w - 1) * p.dilation_w;
    ox_lo_ = (p.pad_left + p.stride_w - 1) / p.stride_w;
    ox_hi_ = p.in_w - 1 + p.pad_left - span_w < 0
                 ? 0
                 : (p.in_w - 1 + p.pad_left - span_w) / p.stride_w + 1;
    // Every column inside, and one output row's step across the input equal to the step from a
    // row's end to the next row's start: a tile may then run on past the end of a row (1x1 layers
    // at stride 1 without padding, whose rows are shorter than a tile).
    rows_join_ =
        ox_lo_ == 0 && ox_hi_ >= p.out_w &&
        static_cast<int64_t>(p.stride_h) * p.in_w == static_cast<int64_t>(p.out_w) * p.stride_w;
  }

  // Whether the `mr` pixels from output row `oy`, column `ox` on, within one image, read every
  // tap inside the input at base + m * step.
  bool Interior(int oy, int ox, int mr) const {
    if (ox + mr <= out_w_) return ox >= ox_lo_ && ox + mr <= ox_hi_ && RowInside(oy);
    if (!rows_join_) return false;
    // No row past the last output row is inside, so a tile running off the image is not interior.
    return RowInside(oy) && RowInside(oy + (ox + mr - 1) / out_w_);
  }

 private:
  bool RowInside(int oy) const {
    const int iy0 = oy * stride_h_ - pad_top_;
    return iy0 >= 0 && iy0 + span_h_ < in_h_;
  }

  int out_w_, in_h_, stride_h_, pad_top_, span_h_;
  int ox_lo_ = 0, ox_hi_ = 0;
  bool rows_join_ = false;
};

}  // namespace hybrid::kernels
