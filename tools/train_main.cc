// hybrid-train: the program behind `hybrid train`.
#include <c10/util/Exception.h>
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "tools/commands.h"

int main(int argc, char** argv) {
  // libtorch frees and allocates activation-sized blocks on every step; glibc would hand blocks
  // above 128 KB back to the kernel each time and fault them in again (a third of the run time on
  // this machine). Keep them in the heap.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  try {
    CLI::App app{hybrid::tools::kTrainDescription, "hybrid train"};
    int exit_code = 0;
    hybrid::tools::AddTrainCommand(&app, exit_code);
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e);
    }
    return exit_code;
  } catch (const c10::Error& e) {
    std::cerr << "error: " << e.what_without_backtrace() << "\n";
  } catch (const std::exception& e) {
    // Errors are values; this catches what a library throws (libtorch's c10::Error, bad_alloc).
    std::cerr << "error: " << e.what() << "\n";
  }
  return 1;
}
