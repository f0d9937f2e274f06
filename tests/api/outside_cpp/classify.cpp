// Classifies the first N images of an IDX file twice, everything at the edge and everything in
// the cloud, and prints one CSV line per image: index, edge class, cloud class.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <hybrid/hybrid.hpp>
#include <iostream>
#include <string>
#include <vector>

namespace {

hybrid::Expected<std::vector<hybrid::Answer>> Run(const hybrid::Model& model, float threshold,
                                                  const std::vector<uint8_t>& pixels, int count) {
  hybrid::SessionOptions options;
  options.threshold = threshold;
  options.batch = 16;
  auto session = hybrid::Session::Create(model, options);
  if (!session) return session.error();
  return session->Classify(pixels.data(), pixels.size(), count);
}

int Fail(const hybrid::Error& e) {
  std::cerr << "error: " << hybrid_status_name(e.code) << ": " << e.message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: classify MODEL IMAGES.idx COUNT\n";
    return 2;
  }
  std::cerr << "hybrid " << hybrid::Version() << " (headers " << HYBRID_VERSION_STRING
            << "), model format " << hybrid::ModelFormatVersion() << "\n";
  auto model = hybrid::Model::Load(argv[1]);
  if (!model) return Fail(model.error());
  const int count = std::stoi(argv[3]);
  std::ifstream in(argv[2], std::ios::binary);
  std::vector<uint8_t> pixels(model->pixels() * count);
  in.seekg(16);  // the IDX header of an images file
  in.read(reinterpret_cast<char*>(pixels.data()), static_cast<std::streamsize>(pixels.size()));
  if (!in) {
    std::cerr << "error: cannot read " << count << " images from " << argv[2] << "\n";
    return 1;
  }
  auto edge = Run(*model, INFINITY, pixels, count);
  if (!edge) return Fail(edge.error());
  auto cloud = Run(*model, -INFINITY, pixels, count);
  if (!cloud) return Fail(cloud.error());
  hybrid::SessionOptions defaults;
  auto session = hybrid::Session::Create(*model, defaults);
  if (!session) return Fail(session.error());
  std::cout << "index," << session->exit() << ",final\n";
  for (int i = 0; i < count; ++i) {
    if ((*edge)[i].where != hybrid::Where::kEdge || (*cloud)[i].where != hybrid::Where::kCloud) {
      std::cerr << "error: image " << i << " was not answered where its threshold says\n";
      return 1;
    }
    std::cout << i << "," << (*edge)[i].label << "," << (*cloud)[i].label << "\n";
  }
  return 0;
}
