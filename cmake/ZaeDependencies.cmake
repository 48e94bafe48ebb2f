# System dependencies, all from Debian's packages (scripts/setup.sh installs them).
# CPU GEMM backend: ZAE_CPU_GEMM = OPENBLAS (default when found) or EIGEN.
# benchmarks/bench_cpu_matmul measures both; RESULTS.md says why the default is what it is.
find_package(Eigen3 3.3 REQUIRED NO_MODULE)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(Threads REQUIRED)

set(ZAE_CPU_GEMM AUTO CACHE STRING "CPU GEMM backend: AUTO, OPENBLAS, EIGEN")
set_property(CACHE ZAE_CPU_GEMM PROPERTY STRINGS AUTO OPENBLAS EIGEN)
find_package(OpenBLAS QUIET)
set(ZAE_GEMM_DEFS "")
set(ZAE_GEMM_INCLUDES "")
set(ZAE_GEMM_LIBS "")
if(OpenBLAS_FOUND AND NOT ZAE_CPU_GEMM STREQUAL "EIGEN")
  set(ZAE_GEMM_BACKEND OPENBLAS)
  set(ZAE_GEMM_DEFS ZAE_WITH_OPENBLAS=1)
  set(ZAE_GEMM_INCLUDES ${OpenBLAS_INCLUDE_DIRS})
  set(ZAE_GEMM_LIBS ${OpenBLAS_LIBRARIES})
elseif(ZAE_CPU_GEMM STREQUAL "OPENBLAS")
  message(FATAL_ERROR "ZAE_CPU_GEMM=OPENBLAS but OpenBLAS was not found (apt-get install libopenblas-dev)")
else()
  set(ZAE_GEMM_BACKEND EIGEN)
endif()
message(STATUS "zae: CPU GEMM backend ${ZAE_GEMM_BACKEND}")
