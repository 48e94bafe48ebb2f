// Umbrella header of the engine layer: Tensor, dtypes, devices, autograd and all ops.
#pragma once

#include "engine/autograd/engine.h"
#include "engine/autograd/grad_mode.h"
#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/error.h"
#include "engine/generator.h"
#include "engine/ops/binary.h"
#include "engine/ops/factory.h"
#include "engine/ops/index.h"
#include "engine/ops/linalg.h"
#include "engine/ops/nn.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/ops/unary.h"
#include "engine/tensor.h"
