// Highway settings shared by every kernel source; include it before any Highway header so that
// all of them compile for, and dispatch among, the same targets.
#pragma once

// AVX3_DL (AVX-512 with VPOPCNTDQ, VNNI) is a dispatch candidate only when asked for.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif

// The tiles keep vectors in arrays, which sizeless SVE vectors cannot be: on ARM the kernels run
// NEON (or scalar code). On x86 the engine asks for AVX2 (docs: any x86-64 with AVX2), so SSE4 and
// SSSE3, two of the six x86 targets it built, would only lengthen every kernel's compile: a CPU
// without AVX2 runs the scalar code. Evaluated where Highway tests it, after it has defined these
// names.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS \
  (HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128 | HWY_SSE4 | HWY_SSSE3)
#endif
