// Random output transforms (kernels/output.h) for the kernel tests: every step and activation,
// with the arrays they point at kept alive by the object.
#pragma once

#include <random>
#include <vector>

#include "kernels/output.h"

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

}  // namespace hybrid::kernels
