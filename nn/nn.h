// Umbrella header of the nn layer: Module, every layer, containers, losses,
// initialisers and gradient clipping.
#pragma once

#include "nn/activation.h"
#include "nn/attention.h"
#include "nn/clip_grad.h"
#include "nn/container.h"
#include "nn/conv.h"
#include "nn/dropout.h"
#include "nn/embedding.h"
#include "nn/init.h"
#include "nn/linear.h"
#include "nn/loss.h"
#include "nn/gpt2.h"
#include "nn/module.h"
#include "nn/normalization.h"
#include "nn/pooling.h"
// Written alongside: convolution, pooling, normalisation and losses.
