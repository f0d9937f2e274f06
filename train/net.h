// The networks the trainer builds from a recipe: ResNet-style stages of residual blocks (f32
// basic blocks; binary or k-bit blocks of two Bi-Real units, batchnorm -> quantized conv ->
// batchnorm plus a full-precision shortcut), early-exit heads, and the router of shape B.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "graph/ir.h"
#include "train/layers.h"
#include "train/recipe.h"

namespace hybrid::train {

// A residual block: f32 (conv-bn-relu-conv-bn plus shortcut, relu), or quantized (two units of
// x + bn(qconv(bn(x))), the first with a 1x1 f32 shortcut, after 2x2 average pooling when it
// strides, where the shape changes). `int8_input`: the convolutions that read the block's input
// are int8 layers sharing one quantizer (an f32 block after an int8 split).
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int in, int out, int stride, graph::Precision precision, bool int8_input);
  torch::Tensor forward(const torch::Tensor& x);
  graph::TensorId Export(Exporter& e, const std::string& name, graph::TensorId x);

 private:
  struct Unit {
    BatchNorm pre{nullptr}, post{nullptr};
    QConv2d conv{nullptr};
    QConv2d shortcut{nullptr};  // null: identity
    BatchNorm shortcut_bn{nullptr};
    bool pool = false;
  };
  torch::Tensor UnitForward(Unit& u, const torch::Tensor& x);
  graph::TensorId UnitExport(Unit& u, Exporter& e, const std::string& name, graph::TensorId x);

  bool quantized_;
  // f32 block.
  QConv2d conv1_{nullptr}, conv2_{nullptr}, shortcut_{nullptr};
  BatchNorm bn1_{nullptr}, bn2_{nullptr}, shortcut_bn_{nullptr};
  // Quantized block.
  Unit units_[2];
};
TORCH_MODULE(Block);

// A classifier head: global average pooling or k x k average pooling and flattening, then a
// dense layer to the class logits.
class HeadImpl : public torch::nn::Module {
 public:
  HeadImpl(const HeadSpec& spec, int channels, int size, int classes);
  torch::Tensor forward(const torch::Tensor& x);
  graph::TensorId Export(Exporter& e, const std::string& name, graph::TensorId x);

 private:
  HeadSpec spec_;
  int channels_, pooled_size_;
  Dense dense_{nullptr};
};
TORCH_MODULE(Head);

struct NetOutputs {
  std::vector<torch::Tensor> exits;  // logits of each early exit
  torch::Tensor logits;              // logits of the final head
  torch::Tensor pooled;              // the last stage's output averaged over space [N, C]
};

// What Export wrote: logits of the exits and of the final head, and the pooled last stage.
struct ExportedNet {
  std::vector<graph::TensorId> exits;
  graph::TensorId logits = -1, pooled = -1;
};

// A ResNet-style network for images of `in_channels` x `size` x `size`: a f32 stem (3x3 conv,
// batchnorm, relu), the stages, the head; exits after the stages they name. `int8_stage` >= 0
// makes stage int8_stage's first block read its input through an int8 quantizer.
class NetImpl : public torch::nn::Module {
 public:
  NetImpl(const NetSpec& spec, int in_channels, int size, int classes,
          const std::vector<ExitSpec>& exits = {}, int int8_stage = -1);
  NetOutputs forward(const torch::Tensor& x);
  // Stages 0..split_after (with the stem and their exits) in the edge partition, the others in
  // the cloud; split_after < 0 keeps the builder's partition for everything. `pooled`: also the
  // global average of the last stage.
  ExportedNet Export(Exporter& e, const std::string& prefix, graph::TensorId image, int split_after,
                     bool pooled);
  int stages() const { return static_cast<int>(stages_.size()); }

 private:
  QConv2d stem_{nullptr};
  BatchNorm stem_bn_{nullptr};
  std::vector<std::vector<Block>> stages_;
  std::vector<ExitSpec> exit_specs_;
  std::vector<Head> exits_;
  Head head_{nullptr};
};
TORCH_MODULE(Net);

// The router's input, from the edge's class probabilities p (and pooled features): the entropy
// -sum p log p, then p(i) - p(j) for i < j of the top min(10, classes) probabilities sorted in
// decreasing order, then the pooled features if any. docs/train.md states it; router/ computes
// the same.
torch::Tensor RouterFeatures(const torch::Tensor& probs, const torch::Tensor& pooled);
int RouterFeatureCount(int classes, int pooled);

// The router's training target per sample from whether the edge and the cloud were right (0 or 1
// each, f32): label "proxy" gives [edge wrong and cloud right]; "gain" gives
// (1 + cloud_right - edge_right) / 2, which ranks "edge right, cloud wrong" below the ties, so the
// optimum of its binary cross-entropy orders inputs as sending them changes the hybrid's accuracy.
// "soft-proxy" and "soft-gain" read the edge's and the cloud's probabilities of the right class
// (edge_p, cloud_p; needed only by them) instead: (1 - edge_p) * cloud_p and
// (1 + cloud_p - edge_p) / 2.
torch::Tensor RouterTarget(const std::string& label, const torch::Tensor& edge_right,
                           const torch::Tensor& cloud_right, const torch::Tensor& edge_p = {},
                           const torch::Tensor& cloud_p = {});

// A small MLP from the router's features to one logit: the score of sending the input to the
// cloud (higher: send).
class RouterImpl : public torch::nn::Module {
 public:
  RouterImpl(int features, const std::vector<int>& hidden);
  // Standardizes the inputs by these features' mean and deviation from now on (folded into the
  // first layer's weights, which is what Export writes).
  void Standardize(const torch::Tensor& features);
  torch::Tensor forward(const torch::Tensor& features);  // [N] logits
  graph::TensorId Export(Exporter& e, const std::string& name, graph::TensorId features);

 private:
  // The first layer's weights and bias with the standardization folded in.
  std::pair<torch::Tensor, torch::Tensor> FirstLayer() const;
  std::vector<Dense> layers_;
  torch::Tensor in_mean_, in_inv_std_;
};
TORCH_MODULE(Router);

}  // namespace hybrid::train
