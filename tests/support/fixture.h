// Reads the PyTorch reference fixtures (tests/fixtures/*.safetensors, written by
// tests/fixtures/gen_*.py) into CPU tensors. Test-only: a small reader that trusts
// the committed files (the hardened reader is io/safetensors).
#pragma once

#include <map>
#include <string>

#include "engine/tensor.h"

namespace zae::test {

struct Fixture {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
  /// The tensor stored under `key`; a missing key fails with the fixture's name.
  const Tensor& at(const std::string& key) const;
  bool has(const std::string& key) const { return tensors.count(key) > 0; }
  std::string name;
};

/// Loads tests/fixtures/<name>.safetensors.
Fixture load_fixture(const std::string& name);

}  // namespace zae::test
