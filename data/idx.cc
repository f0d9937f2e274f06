// IDX reader. The files are small enough to read whole, but sizes come from the file itself, so
// every size is checked against a bound before anything is allocated.
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "data/dataset.h"

namespace hybrid::data {
namespace {

// Fashion-MNIST's largest file holds 47 MB; anything beyond this is not a dataset we read.
constexpr int64_t kMaxDataBytes = int64_t{1} << 31;
// A gzip stream is read in chunks; the decompressed size is bounded by the header's claim.
constexpr size_t kChunk = size_t{1} << 16;

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

// Reads up to `n` bytes into `out`; returns how many were read, or an error for a corrupt stream.
Result<size_t> Read(gzFile f, const std::string& path, uint8_t* out, size_t n) {
  size_t done = 0;
  while (done < n) {
    unsigned want = static_cast<unsigned>(std::min(kChunk, n - done));
    int got = gzread(f, out + done, want);
    if (got < 0) {
      int code = 0;
      const char* msg = gzerror(f, &code);
      return Error("{}: cannot decompress: {}", path, msg != nullptr ? msg : "unknown error");
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  // zlib reports a truncated gzip stream only as an error state after the short read.
  int code = Z_OK;
  const char* msg = gzerror(f, &code);
  if (code != Z_OK && code != Z_STREAM_END) {
    return Error("{}: cannot decompress: {}", path, msg != nullptr ? msg : "unknown error");
  }
  return done;
}

}  // namespace

Result<IdxArray> LoadIdx(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Error("{}: file not found", path);
  if (std::filesystem::is_directory(path, ec)) return Error("{}: is a directory", path);
  // gzread reads uncompressed files transparently, so one path serves both.
  GzFile f(gzopen(path.c_str(), "rb"));
  if (!f) return Error("{}: cannot open: {}", path, std::strerror(errno));
  uint8_t header[4];
  HYBRID_ASSIGN_OR_RETURN(size_t got, Read(f.get(), path, header, 4));
  if (got < 4) return Error("{}: not an IDX file: only {} bytes", path, got);
  if (header[0] != 0 || header[1] != 0) {
    return Error("{}: not an IDX file: magic {:02x}{:02x}{:02x}{:02x}, expected 0000080N", path,
                 header[0], header[1], header[2], header[3]);
  }
  if (header[2] != 0x08) {
    return Error("{}: IDX data type 0x{:02x} is not supported (only 0x08, unsigned bytes)", path,
                 header[2]);
  }
  const int rank = header[3];
  if (rank < 1 || rank > 4) return Error("{}: IDX rank {} is not between 1 and 4", path, rank);
  IdxArray a;
  int64_t total = 1;
  for (int d = 0; d < rank; ++d) {
    uint8_t b[4];
    HYBRID_ASSIGN_OR_RETURN(size_t n, Read(f.get(), path, b, 4));
    if (n < 4) return Error("{}: truncated IDX header (dimension {} of {})", path, d + 1, rank);
    int64_t dim = (int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | b[3];
    if (dim <= 0) return Error("{}: IDX dimension {} is {}", path, d + 1, dim);
    total *= dim;
    if (total > kMaxDataBytes) {
      return Error("{}: IDX dimensions claim more than {} bytes of data", path, kMaxDataBytes);
    }
    a.dims.push_back(dim);
  }
  a.data.resize(static_cast<size_t>(total));
  HYBRID_ASSIGN_OR_RETURN(size_t n, Read(f.get(), path, a.data.data(), a.data.size()));
  if (static_cast<int64_t>(n) < total) {
    return Error("{} is truncated: expected {} bytes of data, got {}", path, total, n);
  }
  uint8_t extra;
  HYBRID_ASSIGN_OR_RETURN(size_t tail, Read(f.get(), path, &extra, 1));
  if (tail != 0) return Error("{}: unexpected bytes after the {} bytes of data", path, total);
  return a;
}

}  // namespace hybrid::data
