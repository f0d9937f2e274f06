#include "graph/validate.h"

#include <gtest/gtest.h>

#include "graph/partition.h"
#include "test_graphs.h"

namespace hybrid::graph {
namespace {

using testing::RandomValues;
using testing::TinyHybridGraph;

TEST(Validate, TinyGraphShapes) {
  Graph g = TinyHybridGraph();
  auto shapes = InferShapes(g, 3);
  ASSERT_TRUE(shapes.ok()) << shapes.message();
  EXPECT_EQ((*shapes)[g.FindTensor("conv1")], (Shape{3, 8, 8, 4}));
  EXPECT_EQ((*shapes)[g.FindTensor("flatten")], (Shape{3, 320}));
  EXPECT_EQ((*shapes)[g.FindTensor("softmax")], (Shape{3, 3}));
  EXPECT_EQ(g.tensors[g.FindTensor("conv2")].shape, (Shape{kBatchDim, 8, 8, 5}));
}

TEST(Validate, WindowOutputSize) {
  EXPECT_EQ(WindowOutputSize(7, 3, 2, 1, 1, 1), 4);
  EXPECT_EQ(WindowOutputSize(5, 3, 1, 2, 0, 0), 1);
  EXPECT_EQ(WindowOutputSize(2, 3, 1, 2, 0, 0), 0);
}

TEST(Validate, SortsNodesTopologically) {
  Graph g = TinyHybridGraph();
  std::reverse(g.nodes.begin(), g.nodes.end());
  ASSERT_TRUE(Validate(g).ok());
  EXPECT_EQ(g.nodes.front().name, "conv1");
}

Status ValidateCopy(Graph g) { return Validate(g); }

TEST(Validate, RefusesCycle) {
  Graph g = TinyHybridGraph();
  // relu1 now reads relu2's output, which depends on relu1.
  g.nodes[g.FindNode("relu1")].inputs[0] = g.FindTensor("relu2");
  g.nodes[g.FindNode("relu1")].partition = Partition::kCloud;
  g.nodes[g.FindNode("conv1")].partition = Partition::kCloud;
  for (Node& n : g.nodes) n.partition = Partition::kCloud;
  Status s = ValidateCopy(g);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cycle"), std::string::npos) << s.message();
}

TEST(Validate, RefusesUndefinedInput) {
  Graph g = TinyHybridGraph();
  g.nodes[g.FindNode("conv1")].inputs[0] = 1000;
  Status s = ValidateCopy(g);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("conv1"), std::string::npos) << s.message();
}

TEST(Validate, RefusesTensorNoNodeWrites) {
  Graph g = TinyHybridGraph();
  Tensor orphan;
  orphan.name = "orphan";
  orphan.shape = {kBatchDim, 8, 8, 1};
  g.tensors.push_back(orphan);
  g.nodes[g.FindNode("conv1")].inputs[0] = static_cast<TensorId>(g.tensors.size() - 1);
  Status s = ValidateCopy(g);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("orphan"), std::string::npos) << s.message();
}

TEST(Validate, RefusesWeightShapeMismatch) {
  GraphBuilder b("bad");
  TensorId x = b.Input("x", {5, 5, 3});
  Conv2dAttrs c;
  c.kernel_h = c.kernel_w = 3;
  TensorId w = b.Constant("w", {4, 3, 3, 2}, RandomValues(72, 1));
  b.Output("y", b.Conv2d("conv", x, w, -1, c), OutputKind::kFinal);
  auto g = std::move(b).Build();
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.message().find("node 'conv'"), std::string::npos) << g.message();
  EXPECT_NE(g.message().find("weights"), std::string::npos) << g.message();
}

TEST(Validate, RefusesConstantSizeMismatch) {
  Graph g = TinyHybridGraph();
  g.tensors[g.FindTensor("w1")].bytes -= 4;
  Status s = ValidateCopy(g);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'w1'"), std::string::npos) << s.message();
}

TEST(Validate, RefusesEdgeReadingCloud) {
  Graph g = TinyHybridGraph();
  g.nodes[g.FindNode("softmax")].partition = Partition::kEdge;
  Status s = ValidateCopy(g);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("edge to cloud"), std::string::npos) << s.message();
}

TEST(Validate, RefusesAbsurdDimensions) {
  Graph g = TinyHybridGraph();
  g.tensors[g.inputs[0]].shape = {kBatchDim, int64_t{1} << 40, 8, 1};
  Status s = ValidateCopy(g);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("dimension"), std::string::npos) << s.message();
  g = TinyHybridGraph();
  g.tensors[g.inputs[0]].shape = {kBatchDim, 1 << 15, 1 << 15, 1};
  s = ValidateCopy(g);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("elements"), std::string::npos) << s.message();
}

TEST(Validate, RefusesBadAttributes) {
  Graph g = TinyHybridGraph();
  std::get<Conv2dAttrs>(g.nodes[g.FindNode("conv1")].attrs).stride_h = 0;
  EXPECT_FALSE(ValidateCopy(g).ok());
  g = TinyHybridGraph();
  g.nodes[g.FindNode("relu1")].attrs = Pool2dAttrs{};
  Status s = ValidateCopy(g);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("attributes"), std::string::npos) << s.message();
}

TEST(Validate, RefusesDuplicateNames) {
  Graph g = TinyHybridGraph();
  g.nodes[g.FindNode("relu2")].name = "relu1";
  EXPECT_FALSE(ValidateCopy(g).ok());
}

TEST(Validate, RefusesBatchOutOfRange) {
  Graph g = TinyHybridGraph();
  EXPECT_FALSE(InferShapes(g, 0).ok());
  EXPECT_FALSE(InferShapes(g, Limits::kMaxBatch + 1).ok());
}

TEST(Partition, InputsAndCost) {
  Graph g = TinyHybridGraph();
  auto cloud_in = PartitionInputs(g, Partition::kCloud);
  ASSERT_EQ(cloud_in.size(), 1u);
  EXPECT_EQ(g.tensors[cloud_in[0]].name, "relu1");
  auto cost = AnalyzeCost(g);
  ASSERT_TRUE(cost.ok()) << cost.message();
  // conv1: 8*8*4 outputs * 9 MACs; exit_fc: 3*4.
  EXPECT_EQ(cost->edge.total_macs(), 8 * 8 * 4 * 9 + 12);
  // conv2: 8*8*5 * 36; fc: 3*320.
  EXPECT_EQ(cost->cloud.total_macs(), 8 * 8 * 5 * 36 + 960);
  EXPECT_EQ(cost->boundary_bytes, 8 * 8 * 4 * 4);
  EXPECT_EQ(cost->cloud.params, 180 + 5 + 960);
}

TEST(Partition, QuantizedBytes) {
  GraphBuilder b("q");
  TensorId x = b.Input("x", {4, 4, 64});
  Conv2dAttrs c;
  c.kernel_h = c.kernel_w = 1;
  c.quant.weight_precision = Precision::kBinary;
  c.quant.activation_precision = Precision::kBinary;
  TensorId w = b.Constant("w", {8, 1, 1, 64}, RandomValues(512, 1));
  b.Output("y", b.Conv2d("conv", x, w, -1, c), OutputKind::kFinal);
  auto g = std::move(b).Build();
  ASSERT_TRUE(g.ok()) << g.message();
  auto cost = AnalyzeCost(*g);
  ASSERT_TRUE(cost.ok());
  EXPECT_EQ(cost->edge.param_bytes, 512 / 8);
  EXPECT_EQ(cost->edge.macs[static_cast<int>(Precision::kBinary)], 16 * 8 * 64);
}

}  // namespace
}  // namespace hybrid::graph
