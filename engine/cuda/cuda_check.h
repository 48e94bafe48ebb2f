// CUDA_CHECK for engine code: the macro itself lives with the kernels (kernels/cuda/cuda_check.h).
#pragma once

#include "kernels/cuda/cuda_check.h"
