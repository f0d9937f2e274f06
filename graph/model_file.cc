#include "graph/model_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>

#include "graph/validate.h"
#include "schema/model_generated.h"

namespace hybrid::graph {
namespace {

constexpr uint64_t kMaxFileSize = uint64_t{4} << 30;

size_t AlignUp(size_t v, size_t a) { return (v + a - 1) / a * a; }

// FlatBuffers does not check that enum values are in range; an unchecked one would index tables.
template <typename E>
bool InRange(E v, E max) {
  return static_cast<int>(v) >= 0 && static_cast<int>(v) <= static_cast<int>(max);
}

Quantization FromFb(const fb::Quantization* q) {
  Quantization out;
  if (q == nullptr) return out;
  out.weight_precision = static_cast<Precision>(q->weight_precision());
  out.activation_precision = static_cast<Precision>(q->activation_precision());
  out.act_scale = q->act_scale();
  out.act_zero_point = q->act_zero_point();
  out.act_signed = q->act_signed();
  return out;
}

Status CheckQuantEnums(const fb::Quantization* q) {
  if (q == nullptr) return Status::Ok();
  if (!InRange(q->weight_precision(), fb::Precision_MAX) ||
      !InRange(q->activation_precision(), fb::Precision_MAX)) {
    return Error("unknown precision");
  }
  return Status::Ok();
}

Result<Attrs> AttrsFromFb(const fb::Node* n) {
  switch (n->attrs_type()) {
    case fb::OpAttrs_NONE:
      return Attrs{};
    case fb::OpAttrs_Conv2dAttrs: {
      const auto* a = n->attrs_as_Conv2dAttrs();
      HYBRID_RETURN_IF_ERROR(CheckQuantEnums(a->quant()));
      Conv2dAttrs c;
      c.kernel_h = a->kernel_h();
      c.kernel_w = a->kernel_w();
      c.stride_h = a->stride_h();
      c.stride_w = a->stride_w();
      c.pad_top = a->pad_top();
      c.pad_bottom = a->pad_bottom();
      c.pad_left = a->pad_left();
      c.pad_right = a->pad_right();
      c.dilation_h = a->dilation_h();
      c.dilation_w = a->dilation_w();
      c.groups = a->groups();
      c.pad_value = a->pad_value();
      c.quant = FromFb(a->quant());
      return Attrs{c};
    }
    case fb::OpAttrs_DenseAttrs: {
      const auto* a = n->attrs_as_DenseAttrs();
      HYBRID_RETURN_IF_ERROR(CheckQuantEnums(a->quant()));
      return Attrs{DenseAttrs{FromFb(a->quant())}};
    }
    case fb::OpAttrs_BatchNormAttrs:
      return Attrs{BatchNormAttrs{n->attrs_as_BatchNormAttrs()->epsilon()}};
    case fb::OpAttrs_HardtanhAttrs: {
      const auto* a = n->attrs_as_HardtanhAttrs();
      return Attrs{HardtanhAttrs{a->min_val(), a->max_val()}};
    }
    case fb::OpAttrs_Pool2dAttrs: {
      const auto* a = n->attrs_as_Pool2dAttrs();
      Pool2dAttrs p;
      p.kernel_h = a->kernel_h();
      p.kernel_w = a->kernel_w();
      p.stride_h = a->stride_h();
      p.stride_w = a->stride_w();
      p.pad_top = a->pad_top();
      p.pad_bottom = a->pad_bottom();
      p.pad_left = a->pad_left();
      p.pad_right = a->pad_right();
      p.count_include_pad = a->count_include_pad();
      return Attrs{p};
    }
    case fb::OpAttrs_ConcatAttrs:
      return Attrs{ConcatAttrs{n->attrs_as_ConcatAttrs()->axis()}};
  }
  return Error("unknown attribute type {}", static_cast<int>(n->attrs_type()));
}

// The verifier checks a vector's 4-byte length field, not that its 8-byte elements are 8-byte
// aligned; a crafted file can misalign them, so they are copied out bytewise.
template <typename T>
std::vector<T> ReadUnaligned(const flatbuffers::Vector<T>* v) {
  std::vector<T> out(v->size());
  if (!out.empty()) std::memcpy(out.data(), v->Data(), out.size() * sizeof(T));
  return out;
}
template <typename T>
T ReadUnaligned(const flatbuffers::Vector<const T*>* v, size_t i) {
  T out;
  std::memcpy(&out, v->Data() + i * sizeof(T), sizeof(T));
  return out;
}

// Parses and checks a whole file image; `keep_alive` owns the bytes `data` points into.
Result<Graph> Parse(const uint8_t* data, size_t size, std::shared_ptr<const void> keep_alive) {
  if (size == 0) return Error("the file is empty");
  if (size < 8) return Error("the file is {} bytes long, too short for a model", size);
  if (size > kMaxFileSize) return Error("the file is {} bytes long, larger than supported", size);
  if (!fb::SizePrefixedModelBufferHasIdentifier(data)) {
    return Error("not a hybrid model file (identifier '{}' missing)", fb::ModelIdentifier());
  }
  uint32_t fb_size = flatbuffers::ReadScalar<uint32_t>(data);
  if (uint64_t{fb_size} + 4 > size) {
    return Error("truncated: the model header says {} bytes, the file has {}",
                 uint64_t{fb_size} + 4, size);
  }
  flatbuffers::Verifier::Options options;
  options.max_depth = 64;
  options.max_tables = 1 << 22;
  flatbuffers::Verifier verifier(data, fb_size + 4, options);
  if (!fb::VerifySizePrefixedModelBuffer(verifier)) {
    return Error("corrupt model: the FlatBuffers verifier rejected the model header");
  }
  const fb::Model* m = fb::GetSizePrefixedModel(data);
  if (m->version() != kModelFormatVersion) {
    return Error("model format version {} is not supported (this build reads version {})",
                 m->version(), kModelFormatVersion);
  }
  size_t section = AlignUp(size_t{fb_size} + 4, kWeightAlignment);
  size_t section_size = section <= size ? size - section : 0;

  Graph g;
  g.storage.push_back(std::move(keep_alive));
  if (m->name()) g.name = m->name()->str();
  if (m->dataset()) g.dataset = m->dataset()->str();
  if (m->input_mean()) g.input_mean.assign(m->input_mean()->begin(), m->input_mean()->end());
  if (m->input_std()) g.input_std.assign(m->input_std()->begin(), m->input_std()->end());
  if (m->class_names()) {
    for (const auto* s : *m->class_names()) g.class_names.push_back(s ? s->str() : "");
  }
  if (m->metadata()) {
    for (const auto* kv : *m->metadata())
      g.metadata[kv->key()->str()] = kv->value() ? kv->value()->str() : "";
  }
  if (m->tensors()->size() > Limits::kMaxTensors || m->nodes()->size() > Limits::kMaxNodes) {
    return Error("model has {} tensors and {} nodes, more than supported", m->tensors()->size(),
                 m->nodes()->size());
  }
  size_t num_buffers = m->buffers() ? m->buffers()->size() : 0;
  // The writer pads every buffer to the alignment, so the file ends where the last buffer's padding
  // does: any other length is a truncated copy (even one cut inside the padding) or appended bytes.
  uint64_t weights_end = 0;
  for (size_t i = 0; i < num_buffers; ++i) {
    const fb::Buffer b = ReadUnaligned(m->buffers(), i);
    if (b.offset() > size || b.size() > size) {  // also keeps the sum below from wrapping
      return Error("truncated: buffer {} claims bytes {}..{} of a {}-byte file", i + 1, b.offset(),
                   b.offset() + b.size(), size);
    }
    weights_end = std::max<uint64_t>(weights_end, b.offset() + b.size());
  }
  const uint64_t expected = section + AlignUp(weights_end, kWeightAlignment);
  if (expected != size) {
    return Error("the model is {} bytes long but its layout ends at byte {}: {}", size, expected,
                 size < expected ? "truncated" : "bytes follow the weights");
  }
  g.tensors.reserve(m->tensors()->size());
  for (const fb::Tensor* ft : *m->tensors()) {
    Tensor t;
    t.name = ft->name()->str();
    if (ft->shape()->size() > static_cast<size_t>(Limits::kMaxRank)) {
      return Error("tensor '{}' has rank {} (at most {} supported)", t.name, ft->shape()->size(),
                   Limits::kMaxRank);
    }
    t.shape = ReadUnaligned(ft->shape());
    if (!InRange(ft->dtype(), fb::DataType_MAX)) {
      return Error("tensor '{}' has unknown data type {}", t.name, static_cast<int>(ft->dtype()));
    }
    t.dtype = static_cast<DataType>(ft->dtype());
    if (ft->buffer() != 0) {
      if (ft->buffer() > num_buffers) {
        return Error("tensor '{}' refers to buffer {}, but the model has {}", t.name, ft->buffer(),
                     num_buffers);
      }
      const fb::Buffer b_copy = ReadUnaligned(m->buffers(), ft->buffer() - 1);
      const fb::Buffer* b = &b_copy;
      if (b->offset() % kWeightAlignment != 0) {
        return Error("tensor '{}': weight offset {} is not {}-byte aligned", t.name, b->offset(),
                     kWeightAlignment);
      }
      if (b->offset() > section_size || b->size() > section_size - b->offset()) {
        return Error(
            "truncated: tensor '{}' needs bytes {}..{} of the weight section, which has {}", t.name,
            b->offset(), b->offset() + b->size(), section_size);
      }
      t.bytes = b->size();
      // A zero-sized constant still needs a non-null pointer to count as a constant.
      t.data = data + section + b->offset();
    }
    g.tensors.push_back(std::move(t));
  }
  for (uint32_t id : *m->inputs()) g.inputs.push_back(static_cast<TensorId>(id));
  g.nodes.reserve(m->nodes()->size());
  for (const fb::Node* fn : *m->nodes()) {
    Node n;
    n.name = fn->name()->str();
    if (!InRange(fn->op(), fb::OpType_MAX)) {
      return Error("node '{}' has unknown op type {}", n.name, static_cast<int>(fn->op()));
    }
    n.op = static_cast<OpType>(fn->op());
    if (!InRange(fn->partition(), fb::Partition_MAX)) {
      return Error("node '{}' has unknown partition {}", n.name, static_cast<int>(fn->partition()));
    }
    n.partition = static_cast<Partition>(fn->partition());
    // Indices beyond int range become -1 here and are refused by Validate.
    auto index = [](uint32_t v) { return v > 0x7fffffffu ? -1 : static_cast<TensorId>(v); };
    for (uint32_t v : *fn->inputs()) n.inputs.push_back(index(v));
    for (uint32_t v : *fn->outputs()) n.outputs.push_back(index(v));
    Result<Attrs> attrs = AttrsFromFb(fn);
    if (!attrs.ok()) return attrs.status().WithContext(fmt::format("node '{}'", n.name));
    n.attrs = *attrs;
    g.nodes.push_back(std::move(n));
  }
  for (const fb::Output* fo : *m->outputs()) {
    if (!InRange(fo->kind(), fb::OutputKind_MAX)) {
      return Error("output '{}' has unknown kind {}", fo->name()->str(),
                   static_cast<int>(fo->kind()));
    }
    g.outputs.push_back({fo->name()->str(),
                         fo->tensor() > 0x7fffffffu ? -1 : static_cast<TensorId>(fo->tensor()),
                         static_cast<OutputKind>(fo->kind())});
  }
  HYBRID_RETURN_IF_ERROR(Validate(g));
  return g;
}

flatbuffers::Offset<fb::Quantization> ToFb(flatbuffers::FlatBufferBuilder& b,
                                           const Quantization& q) {
  return fb::CreateQuantization(b, static_cast<fb::Precision>(q.weight_precision),
                                static_cast<fb::Precision>(q.activation_precision), q.act_scale,
                                q.act_zero_point, q.act_signed);
}

std::pair<fb::OpAttrs, flatbuffers::Offset<void>> AttrsToFb(flatbuffers::FlatBufferBuilder& b,
                                                            const Attrs& attrs) {
  if (const auto* c = std::get_if<Conv2dAttrs>(&attrs)) {
    auto q = ToFb(b, c->quant);
    return {fb::OpAttrs_Conv2dAttrs,
            fb::CreateConv2dAttrs(b, c->kernel_h, c->kernel_w, c->stride_h, c->stride_w, c->pad_top,
                                  c->pad_bottom, c->pad_left, c->pad_right, c->dilation_h,
                                  c->dilation_w, c->groups, c->pad_value, q)
                .Union()};
  }
  if (const auto* d = std::get_if<DenseAttrs>(&attrs)) {
    auto q = ToFb(b, d->quant);
    return {fb::OpAttrs_DenseAttrs, fb::CreateDenseAttrs(b, q).Union()};
  }
  if (const auto* bn = std::get_if<BatchNormAttrs>(&attrs)) {
    return {fb::OpAttrs_BatchNormAttrs, fb::CreateBatchNormAttrs(b, bn->epsilon).Union()};
  }
  if (const auto* h = std::get_if<HardtanhAttrs>(&attrs)) {
    return {fb::OpAttrs_HardtanhAttrs, fb::CreateHardtanhAttrs(b, h->min_val, h->max_val).Union()};
  }
  if (const auto* p = std::get_if<Pool2dAttrs>(&attrs)) {
    return {fb::OpAttrs_Pool2dAttrs,
            fb::CreatePool2dAttrs(b, p->kernel_h, p->kernel_w, p->stride_h, p->stride_w, p->pad_top,
                                  p->pad_bottom, p->pad_left, p->pad_right, p->count_include_pad)
                .Union()};
  }
  if (const auto* c = std::get_if<ConcatAttrs>(&attrs)) {
    return {fb::OpAttrs_ConcatAttrs, fb::CreateConcatAttrs(b, c->axis).Union()};
  }
  return {fb::OpAttrs_NONE, 0};
}

}  // namespace

Result<Graph> LoadModelFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error("cannot open model file '{}': {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error("model file '{}' is not a regular file", path);
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return Error("model file '{}': the file is empty", path);
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return Error("cannot map model file '{}': {}", path, std::strerror(errno));
  std::shared_ptr<const void> keep(map,
                                   [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
  Result<Graph> g = Parse(static_cast<const uint8_t*>(map), size, std::move(keep));
  if (!g.ok()) return g.status().WithContext(fmt::format("model file '{}'", path));
  return g;
}

Result<Graph> LoadModelFromMemory(const void* data, size_t size) {
  if (data == nullptr) return Error("model bytes are null");
  if (reinterpret_cast<uintptr_t>(data) % kWeightAlignment == 0) {
    return Parse(static_cast<const uint8_t*>(data), size, nullptr);
  }
  if (size > kMaxFileSize) return Error("the model is {} bytes long, larger than supported", size);
  void* copy =
      std::aligned_alloc(kWeightAlignment, AlignUp(std::max<size_t>(size, 1), kWeightAlignment));
  if (copy == nullptr) return Error("out of memory copying a {}-byte model", size);
  std::memcpy(copy, data, size);
  std::shared_ptr<const void> keep(copy, [](const void* p) { std::free(const_cast<void*>(p)); });
  return Parse(static_cast<const uint8_t*>(copy), size, std::move(keep));
}

Result<std::vector<uint8_t>> SerializeModel(const Graph& g) {
  flatbuffers::FlatBufferBuilder b(1 << 16);
  std::vector<fb::Buffer> buffers;
  std::vector<const Tensor*> constants;
  size_t section_size = 0;
  std::vector<flatbuffers::Offset<fb::Tensor>> tensors;
  for (const Tensor& t : g.tensors) {
    uint32_t buffer = 0;
    if (t.is_constant()) {
      buffers.emplace_back(section_size, t.bytes);
      constants.push_back(&t);
      section_size = AlignUp(section_size + t.bytes, kWeightAlignment);
      buffer = static_cast<uint32_t>(buffers.size());
    }
    tensors.push_back(fb::CreateTensor(b, b.CreateString(t.name), b.CreateVector(t.shape),
                                       static_cast<fb::DataType>(t.dtype), buffer));
  }
  std::vector<flatbuffers::Offset<fb::Node>> nodes;
  for (const Node& n : g.nodes) {
    std::vector<uint32_t> in(n.inputs.begin(), n.inputs.end());
    std::vector<uint32_t> out(n.outputs.begin(), n.outputs.end());
    auto name = b.CreateString(n.name);
    auto vin = b.CreateVector(in);
    auto vout = b.CreateVector(out);
    auto [type, attrs] = AttrsToFb(b, n.attrs);
    nodes.push_back(fb::CreateNode(b, name, static_cast<fb::OpType>(n.op), vin, vout, type, attrs,
                                   static_cast<fb::Partition>(n.partition)));
  }
  std::vector<flatbuffers::Offset<fb::Output>> outputs;
  for (const NamedOutput& o : g.outputs) {
    outputs.push_back(fb::CreateOutput(b, b.CreateString(o.name), static_cast<uint32_t>(o.tensor),
                                       static_cast<fb::OutputKind>(o.kind)));
  }
  std::vector<flatbuffers::Offset<fb::KeyValue>> metadata;
  for (const auto& [k, v] : g.metadata) {
    metadata.push_back(fb::CreateKeyValue(b, b.CreateString(k), b.CreateString(v)));
  }
  std::vector<uint32_t> inputs(g.inputs.begin(), g.inputs.end());
  auto model =
      fb::CreateModel(b, kModelFormatVersion, b.CreateString(g.name), b.CreateVector(tensors),
                      b.CreateVector(nodes), b.CreateVector(inputs), b.CreateVector(outputs),
                      b.CreateVectorOfStructs(buffers), b.CreateString(g.dataset),
                      b.CreateVector(g.input_mean), b.CreateVector(g.input_std),
                      b.CreateVectorOfStrings(g.class_names), b.CreateVector(metadata));
  fb::FinishSizePrefixedModelBuffer(b, model);

  size_t header = AlignUp(b.GetSize(), kWeightAlignment);
  std::vector<uint8_t> bytes(header + section_size, 0);
  std::memcpy(bytes.data(), b.GetBufferPointer(), b.GetSize());
  for (size_t i = 0; i < constants.size(); ++i) {
    if (constants[i]->bytes) {
      std::memcpy(bytes.data() + header + buffers[i].offset(), constants[i]->data,
                  constants[i]->bytes);
    }
  }
  return bytes;
}

Result<std::string> ModelFingerprint(const Graph& graph) {
  HYBRID_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, SerializeModel(graph));
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : bytes) {
    h ^= b;
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

Status WriteModelFile(const Graph& g, const std::string& path) {
  HYBRID_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, SerializeModel(g));
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Error("cannot write '{}': {}", tmp, std::strerror(errno));
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    if (!out) return Error("writing '{}' failed: {}", tmp, std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return Error("cannot rename '{}' to '{}': {}", tmp, path, std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace hybrid::graph
