// The compact forms in which the edge sends the tensors the cloud partition reads: each in its
// smallest exact form (engine::CloudWire decides which), so that the cloud computes from the
// decoded values exactly what it would compute from the edge's floats.
//   f32     FP32 values                                      shape [H, W, C]
//   pixels  the image's u8 pixels; the cloud normalizes them  UINT8 [H, W, C]
//   int8    the integers the cloud's layers quantize to       INT8 or UINT8 [H, W, C]
//   int4, int2, bits  the same integers (or signs) packed      UINT8 [bytes], LSB first
// Every sample starts on a byte. FP32 is accepted for any tensor.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/session.h"
#include "graph/ir.h"
#include "kernels/params.h"

namespace hybrid::net {

using Form = engine::WireTensor::Form;

// "f32", "pixels", "int8", "int4", "int2" or "bits"; and back.
std::string_view EncodingName(Form form);
Result<Form> ParseEncoding(std::string_view name);

// Encodes and decodes one cloud input of one model.
class WireCodec {
 public:
  // `graph` supplies the normalization of the pixels form.
  WireCodec(engine::WireTensor tensor, const graph::Graph& graph);

  const engine::WireTensor& tensor() const { return tensor_; }
  Form form() const { return tensor_.form; }
  // The KServe datatype, per-sample shape and bytes per sample of `form` (the tensor's own or
  // kF32).
  std::string Datatype(Form form) const;
  std::vector<int64_t> SampleShape(Form form) const;
  int64_t SampleBytes(Form form) const;

  // Appends `count` samples of floats (tensor().values each) in the tensor's own form to `out`.
  void Encode(const float* values, int count, std::string* out) const;
  // Writes `count` samples of floats from `bytes` in `form`; expects `bytes` to hold exactly
  // count * SampleBytes(form) bytes (checked: an error names the mismatch).
  Status Decode(Form form, std::string_view bytes, int count, float* out) const;

 private:
  float Mean(int64_t j) const;
  float Std(int64_t j) const;

  engine::WireTensor tensor_;
  int bits_ = 32;
  kernels::ActivationQuant quant_;
  std::vector<float> mean_, std_;
  int channels_ = 1;
};

}  // namespace hybrid::net
