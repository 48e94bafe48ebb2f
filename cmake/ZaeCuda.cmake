# Decides whether the CUDA backend is built (ZAE_CUDA = AUTO | ON | OFF) and
# sets the default architectures: sm_80 and sm_90 machine code plus compute_90 PTX.
include(CheckLanguage)
set(ZAE_WITH_CUDA OFF)
if(NOT ZAE_CUDA STREQUAL "OFF")
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES "80-real;90" CACHE STRING "CUDA architectures (90 = sm_90 + PTX)")
    endif()
    enable_language(CUDA)
    if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION AND CMAKE_CUDA_COMPILER_ID STREQUAL "NVIDIA"
       AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0)
      # CMake < 3.26 does not know nvcc's C++20 flag, and targets with .cu sources
      # would fail to generate: teach it.
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_COMPILE_FEATURES cuda_std_20)
      list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
    endif()
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    set(ZAE_WITH_CUDA ON)
  elseif(ZAE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "ZAE_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER or put nvcc on PATH)")
  endif()
endif()
message(STATUS "zae: CUDA backend ${ZAE_WITH_CUDA} (architectures: ${CMAKE_CUDA_ARCHITECTURES})")
