# Warnings for the project's own targets only; third-party headers are included as SYSTEM.
function(hybrid_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                           -Wno-missing-field-initializers)
  if(HYBRID_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# hybrid_library(name SOURCES ... DEPS ...): one static library per folder of the layout.
function(hybrid_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(hybrid_${name} STATIC ${ARG_SOURCES})
  add_library(hybrid::${name} ALIAS hybrid_${name})
  target_include_directories(hybrid_${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(hybrid_${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  hybrid_warnings(hybrid_${name})
endfunction()

# hybrid_test(name SOURCES ... DEPS ... [LABELS ...]): one GoogleTest executable registered with ctest.
function(hybrid_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  hybrid_warnings(${name})
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "${ARG_LABELS}")
endfunction()
