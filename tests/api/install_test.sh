#!/usr/bin/env bash
# Installs hybrid into a temporary prefix, builds two applications outside the tree against it (C++
# with find_package(hybrid), shared and static; C with pkg-config) and checks that their answers on
# a model equal `hybrid run`'s.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR MODEL [COUNT]
set -euo pipefail
build=$1 src=$2 model=$3 count=${4:-200}
images=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" > "$tmp/install.log" || { cat "$tmp/install.log"; fail "install"; }
for f in include/hybrid/hybrid.h include/hybrid/hybrid.hpp include/hybrid/version.h bin/hybrid; do
  [[ -e $tmp/prefix/$f ]] || fail "the install lacks $f"
done
libdir=$(dirname "$(find "$tmp/prefix" -name 'libhybrid.so' | head -1)")
[[ -e $libdir/libhybrid.a && -e $libdir/pkgconfig/hybrid.pc && -e $libdir/cmake/hybrid/hybridConfig.cmake ]] ||
  fail "the install lacks a library, hybrid.pc or the CMake package"
# Only the C API is exported, and the library does not bring libtorch along.
if nm -D --defined-only "$libdir/libhybrid.so" | awk '{print $3}' | grep -v '^hybrid_'; then
  fail "libhybrid.so exports symbols outside the C API"
fi
# (library names only: load addresses in ldd's output may contain "c10")
if ldd "$libdir/libhybrid.so" | awk '{print $1}' | grep -E '^lib(torch|c10)'; then
  fail "libhybrid.so needs libtorch"
fi
zcat "$images" > "$tmp/images.idx"

# The reference: hybrid run, one sample per batch as the applications run them.
"$build/tools/hybrid" run "$model" --all --limit "$count" --batch 1 --predictions "$tmp/run.csv" \
  > /dev/null 2>&1 || fail "hybrid run"

# Prints the columns of run.csv named in the header line of $1, in that order.
columns() {
  awk -F, -v want="$(head -1 "$1")" '
    NR == 1 { n = split(want, w, ","); for (i = 1; i <= NF; ++i) col[$i] = i
              for (j = 1; j <= n; ++j) if (!(w[j] in col)) { print "no column " w[j]; exit 1 } }
    { line = ""; for (j = 1; j <= n; ++j) line = line (j > 1 ? "," : "") $(col[w[j]]); print line }
  ' "$tmp/run.csv"
}
check() {  # check NAME OUTPUT.csv
  [[ $(wc -l < "$2") -eq $((count + 1)) ]] || fail "$1 printed $(wc -l < "$2") lines"
  columns "$2" > "$tmp/expected.csv"
  if ! diff -q "$tmp/expected.csv" "$2" > /dev/null; then
    diff "$tmp/expected.csv" "$2" | head -20 >&2
    fail "$1 disagrees with hybrid run"
  fi
  echo "ok: $1 gives hybrid run's answers on $count images ($(head -1 "$2"))"
}

# C++ with find_package(hybrid).
cmake -S "$src/tests/api/outside_cpp" -B "$tmp/cpp" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_BUILD_TYPE=Release > "$tmp/cpp.log" 2>&1 || { cat "$tmp/cpp.log"; fail "configure (C++)"; }
cmake --build "$tmp/cpp" > "$tmp/cpp-build.log" 2>&1 || { cat "$tmp/cpp-build.log"; fail "build (C++)"; }
for kind in shared static; do
  "$tmp/cpp/classify_$kind" "$model" "$tmp/images.idx" "$count" > "$tmp/cpp_$kind.csv"
  check "C++ ($kind, find_package)" "$tmp/cpp_$kind.csv"
done
if ldd "$tmp/cpp/classify_static" | grep -q libhybrid; then fail "classify_static loads libhybrid.so"; fi

# C with pkg-config.
export PKG_CONFIG_PATH=$libdir/pkgconfig
[[ $(pkg-config --modversion hybrid) == $("$build/tools/hybrid" --version | awk '{print $NF}') ]] ||
  fail "hybrid.pc's version is not the program's"
cc -std=c11 -Wall -Wextra -Wpedantic -Werror "$src/tests/api/outside_c/classify.c" \
  $(pkg-config --cflags --libs hybrid) -Wl,-rpath,"$(pkg-config --variable=libdir hybrid)" -lm \
  -o "$tmp/classify_c"
"$tmp/classify_c" "$model" "$tmp/images.idx" "$count" > "$tmp/c.csv"
check "C (pkg-config)" "$tmp/c.csv"

# The complete examples of docs/embedding.md build against the install and run.
extract() {  # extract LANG: the first ```LANG block of the page
  awk -v lang="$1" '$0 == "```" lang { on = 1; next } on && $0 == "```" { exit } on { print }' \
    "$src/docs/embedding.md"
}
extract cpp > "$tmp/doc_example.cpp"
extract c > "$tmp/doc_example.c"
[[ -s $tmp/doc_example.cpp && -s $tmp/doc_example.c ]] || fail "docs/embedding.md lost its examples"
c++ -std=c++17 -Wall -Werror "$tmp/doc_example.cpp" $(pkg-config --cflags --libs hybrid) \
  -Wl,-rpath,"$libdir" -o "$tmp/doc_example_cpp"
cc -std=c11 -Wall -Werror "$tmp/doc_example.c" $(pkg-config --cflags --libs hybrid) \
  -Wl,-rpath,"$libdir" -o "$tmp/doc_example_c"
for lang in cpp c; do
  "$tmp/doc_example_$lang" "$model" "$tmp/images.idx" > "$tmp/doc_$lang.txt"
  [[ $(grep -cE ' from the (edge|cloud) \(score ' "$tmp/doc_$lang.txt") -eq 64 ]] ||
    fail "the $lang example of docs/embedding.md printed: $(head -3 "$tmp/doc_$lang.txt")"
done
# Both print the same classes from the same places (scores and times are formatted differently).
diff <(sed 's/ (score.*//' "$tmp/doc_cpp.txt") <(sed 's/ (score.*//' "$tmp/doc_c.txt") > /dev/null ||
  fail "the C++ and C examples of docs/embedding.md disagree"
echo "ok: the examples of docs/embedding.md build and run ($(cut -d'(' -f1 "$tmp/doc_c.txt" | sort | uniq -c | sort -rn | head -1 | xargs))"
