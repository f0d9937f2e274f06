// Reading and writing model files (schema: graph/schema/model.fbs).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "graph/ir.h"

namespace hybrid::graph {

inline constexpr uint32_t kModelFormatVersion = 1;
inline constexpr size_t kWeightAlignment = 64;

// Memory-maps a model file, verifies it (FlatBuffers verifier, then meaning) and returns its
// graph; constants point into the mapping, which the graph keeps alive.
Result<Graph> LoadModelFile(const std::string& path);

// Same as LoadModelFile over bytes the caller owns and keeps alive as long as the graph; constants
// are used in place when `data` is 64-byte aligned and copied otherwise.
Result<Graph> LoadModelFromMemory(const void* data, size_t size);

// Serializes a graph (validated or not) into the bytes of a model file.
Result<std::vector<uint8_t>> SerializeModel(const Graph& graph);

// A content fingerprint of the graph: 16 hex digits of a 64-bit FNV-1a hash of its serialized
// bytes. The edge and the cloud agree on it when they load the same model, whatever file holds it.
Result<std::string> ModelFingerprint(const Graph& graph);

// Writes a model file atomically (a temporary file renamed over `path`).
Status WriteModelFile(const Graph& graph, const std::string& path);

}  // namespace hybrid::graph
