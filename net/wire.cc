#include "net/wire.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/layer_params.h"
#include "kernels/int8.h"

namespace hybrid::net {

std::string_view EncodingName(Form form) { return engine::ToString(form); }

Result<Form> ParseEncoding(std::string_view name) {
  for (Form f : {Form::kF32, Form::kPixels, Form::kInt8, Form::kInt4, Form::kInt2, Form::kBits}) {
    if (EncodingName(f) == name) return f;
  }
  return Error("unknown encoding '{}' (expected f32, pixels, int8, int4, int2 or bits)", name);
}

WireCodec::WireCodec(engine::WireTensor tensor, const graph::Graph& graph)
    : tensor_(std::move(tensor)), mean_(graph.input_mean), std_(graph.input_std) {
  channels_ =
      tensor_.shape.empty() ? 1 : static_cast<int>(std::max<int64_t>(tensor_.shape.back(), 1));
  switch (tensor_.form) {
    case Form::kInt8:
    case Form::kInt4:
    case Form::kInt2:
    case Form::kBits:
      bits_ = graph::Bits(tensor_.quant.activation_precision);
      quant_ = engine::ActivationQuantOf(tensor_.quant);
      break;
    case Form::kPixels:
      bits_ = 8;
      break;
    case Form::kF32:
      bits_ = 32;
      break;
  }
}

std::string WireCodec::Datatype(Form form) const {
  if (form == Form::kF32) return "FP32";
  if (form == Form::kInt8 && tensor_.quant.act_signed) return "INT8";
  return "UINT8";
}

std::vector<int64_t> WireCodec::SampleShape(Form form) const {
  if (form == Form::kInt4 || form == Form::kInt2 || form == Form::kBits) {
    return {SampleBytes(form)};
  }
  return tensor_.shape;
}

int64_t WireCodec::SampleBytes(Form form) const {
  if (form == Form::kF32) return tensor_.values * 4;
  return (tensor_.values * bits_ + 7) / 8;
}

float WireCodec::Mean(int64_t j) const {
  if (mean_.empty()) return 0.f;
  return mean_[mean_.size() == 1 ? 0 : static_cast<size_t>(j % channels_)];
}

float WireCodec::Std(int64_t j) const {
  if (std_.empty()) return 1.f;
  return std_[std_.size() == 1 ? 0 : static_cast<size_t>(j % channels_)];
}

void WireCodec::Encode(const float* values, int count, std::string* out) const {
  const int64_t n = tensor_.values;
  const int64_t per = SampleBytes(tensor_.form);
  const size_t start = out->size();
  out->resize(start + static_cast<size_t>(per * count), '\0');
  auto* dst = reinterpret_cast<uint8_t*>(out->data() + start);
  for (int s = 0; s < count; ++s) {
    const float* x = values + s * n;
    uint8_t* d = dst + s * per;
    switch (tensor_.form) {
      case Form::kF32:
        std::memcpy(d, x, static_cast<size_t>(n) * 4);
        break;
      case Form::kPixels:
        // The inverse of the normalization, exact for values that came from pixels.
        for (int64_t j = 0; j < n; ++j) {
          const float p = std::nearbyint((x[j] * Std(j) + Mean(j)) * 255.f);
          d[j] = static_cast<uint8_t>(std::clamp(p, 0.f, 255.f));
        }
        break;
      case Form::kInt8:
        // The quantized value itself (offset removed): a signed byte or an unsigned one.
        for (int64_t j = 0; j < n; ++j) {
          d[j] = static_cast<uint8_t>(kernels::QuantizeOneU8(quant_, x[j]) - quant_.offset);
        }
        break;
      case Form::kInt4:
      case Form::kInt2:
        for (int64_t j = 0; j < n; ++j) {
          const int v = kernels::QuantizeOneU8(quant_, x[j]) - quant_.offset - quant_.qmin;
          d[(j * bits_) / 8] |= static_cast<uint8_t>(v << ((j * bits_) % 8));
        }
        break;
      case Form::kBits:
        for (int64_t j = 0; j < n; ++j) {  // bit 1 for a negative value, as the kernels pack
          if (x[j] < 0.f) d[j / 8] |= static_cast<uint8_t>(1u << (j % 8));
        }
        break;
    }
  }
}

Status WireCodec::Decode(Form form, std::string_view bytes, int count, float* out) const {
  if (form != Form::kF32 && form != tensor_.form) {
    return Error("tensor '{}' travels as {} (or f32), not {}", tensor_.name,
                 EncodingName(tensor_.form), EncodingName(form));
  }
  const int64_t per = SampleBytes(form);
  if (count < 0 || static_cast<int64_t>(bytes.size()) != per * count) {
    return Error("tensor '{}': {} bytes of {} for {} samples, expected {}", tensor_.name,
                 bytes.size(), EncodingName(form), count, per * count);
  }
  const int64_t n = tensor_.values;
  const auto* src = reinterpret_cast<const uint8_t*>(bytes.data());
  for (int s = 0; s < count; ++s) {
    const uint8_t* b = src + s * per;
    float* y = out + s * n;
    switch (form) {
      case Form::kF32:
        std::memcpy(y, b, static_cast<size_t>(n) * 4);
        break;
      case Form::kPixels:
        // As the edge normalizes (data::NormalizeImage, engine::HybridSession).
        for (int64_t j = 0; j < n; ++j) {
          y[j] = (static_cast<float>(b[j]) / 255.f - Mean(j)) / Std(j);
        }
        break;
      case Form::kInt8:
      case Form::kInt4:
      case Form::kInt2: {
        const int mask = (1 << bits_) - 1;
        for (int64_t j = 0; j < n; ++j) {
          int v;
          if (form == Form::kInt8) {
            v = quant_.qmin < 0 ? static_cast<int>(static_cast<int8_t>(b[j])) : b[j];
          } else {
            v = ((b[(j * bits_) / 8] >> ((j * bits_) % 8)) & mask) + quant_.qmin;
          }
          // A value the cloud's layers quantize back to v: (v - zero point) * scale.
          y[j] = static_cast<float>(std::clamp(v, quant_.qmin, quant_.qmax) - quant_.zero_point) *
                 quant_.scale;
        }
        break;
      }
      case Form::kBits:
        for (int64_t j = 0; j < n; ++j) y[j] = (b[j / 8] >> (j % 8)) & 1 ? -1.f : 1.f;
        break;
    }
  }
  return Status::Ok();
}

}  // namespace hybrid::net
