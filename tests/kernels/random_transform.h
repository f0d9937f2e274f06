// Random output transforms (kernels/output.h) for the kernel tests: every step and activation,
// with the arrays they point at kept alive by the object; and a twist of random shapes.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/output.h"
#include "kernels/params.h"

namespace hybrid::kernels {

struct RandomTransform {
  std::vector<float> mul, bias, bn_mul, bn_add, slope;
  OutputTransform o;

  RandomTransform(int channels, std::mt19937& rng) {
    auto values = [&](float lo, float hi) {
      std::uniform_real_distribution<float> d(lo, hi);
      std::vector<float> v(channels);
      for (float& x : v) x = d(rng);
      return v;
    };
    auto coin = [&] { return rng() % 2 == 0; };
    mul = values(-0.2f, 0.2f);
    bias = values(-1.f, 1.f);
    bn_mul = values(-2.f, 2.f);
    bn_add = values(-1.f, 1.f);
    slope = values(-0.5f, 0.5f);
    o.mul = mul.data();
    o.bias = coin() ? bias.data() : nullptr;
    if (coin()) {
      o.bn_mul = bn_mul.data();
      o.bn_add = bn_add.data();
    }
    o.act = static_cast<Activation>(rng() % 4);
    o.act_min = std::uniform_real_distribution<float>(-1.f, 0.f)(rng);
    o.act_max = std::uniform_real_distribution<float>(0.f, 1.f)(rng);
    o.slope = slope.data();
  }
};

// Makes a quarter of random layers (u(0, 3) == 0) 1 wide at stride 1 without left or right
// padding: their tiles run on past a row's end (kernels/interior.h).
template <class Draw>
void SometimesOneWide(Draw& u, Conv2dParams* p, int* pad_right) {
  if (u(0, 3) != 0) return;
  p->kernel_w = 1;
  p->stride_h = p->stride_w = 1;
  p->pad_left = *pad_right = 0;
}

// A random ConvOutput of `kind` for a layer of out_c channels in `groups` groups: the consumer's
// groups among those whose layout the kernels support, a random consumer quantization, and
// thresholds around the sums in [-k, k]; 2-bit planes through the float transform or, half the
// time where Planes2Thresholds gives them, through its thresholds.
struct RandomOutput {
  RandomTransform t;
  std::vector<int32_t> threshold;
  ConvOutput o;
  bool plane_thresholds = false;

  RandomOutput(OutputKind kind, int out_c, int groups, int32_t k, std::mt19937& rng)
      : t(out_c, rng) {
    o.kind = kind;
    o.transform = t.o;
    threshold.resize(out_c);
    for (int32_t& v : threshold) v = std::uniform_int_distribution<int32_t>(-k - 1, k + 1)(rng);
    o.threshold = threshold.data();
    if (kind == OutputKind::kPlanes2 || rng() % 2 == 0) {
      // 2 bits: four levels, unsigned or signed.
      o.quant.scale = 0.05f;
      o.quant.qmax = 3;
      o.quant.zero_point = static_cast<int>(rng() % 4);
      if (kind == OutputKind::kPlanes2 && rng() % 2 == 0) {
        o.quant = ActivationQuant{0.05f, 0, -2, 1, 128};
      }
    } else {
      o.quant = ActivationQuant{0.01f, 0, -128, 127, 128};
    }
    std::vector<int> layouts;
    for (int g = 1; g <= 4; ++g) {
      o.groups = g;
      if (OutputLayoutSupported(o, out_c, groups)) layouts.push_back(g);
    }
    o.groups = layouts.empty() ? 0 : layouts[rng() % layouts.size()];
    if (kind == OutputKind::kPlanes2) {
      threshold.assign(4 * static_cast<size_t>(out_c), 0);
      plane_thresholds =
          rng() % 2 == 0 && Planes2Thresholds(o.transform, o.quant, out_c, k, threshold.data());
      o.threshold = plane_thresholds ? threshold.data() : nullptr;
    }
  }
  bool ok() const { return o.groups > 0; }
};

}  // namespace hybrid::kernels
