// Whole-file reads for small text files (certificates, keys, tokens, tables).
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "base/status.h"

namespace hybrid {

// The contents of the file at `path`; an error naming `what` and the path when it cannot be read.
inline Result<std::string> ReadTextFile(const std::string& path, std::string_view what) {
  std::ifstream in(path);
  if (!in) return Error("cannot read the {} '{}'", what, path);
  std::stringstream s;
  s << in.rdbuf();
  if (in.bad()) return Error("cannot read the {} '{}'", what, path);
  return s.str();
}

}  // namespace hybrid
