// FashionMNIST: Zalando's 28x28 grey-scale clothing images (60000 train, 10000
// test, 10 classes), read from the files of Debian's `dataset-fashion-mnist`
// package: <root>/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (uncompressed
// files without .gz are accepted too).
// Invariants: the split is loaded once, in the constructor, and kept as uint8
// images (N, 28, 28) and int64 labels (N) in [0, 9]; a missing, corrupt or
// inconsistent file is a zae::Error naming the path; get is thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "io/dataset.h"

namespace zae {

struct FashionMNISTOptions {
  /// The folder holding the four files (the Debian package's location by default).
  std::string root = "/usr/share/datasets/fashion-mnist";
  /// The 60000-image training split, else the 10000-image test split.
  bool train = true;
  /// Images become (x / 255 - mean) / std instead of x / 255.
  bool normalize = false;
  /// Defaults: the training split's pixel mean and standard deviation (after / 255).
  double mean = 0.2860;
  double std = 0.3530;
};

/// A Dataset whose samples are {"image": float32 (1, 28, 28), "label": int64 scalar}.
class FashionMNIST : public Dataset {
 public:
  static constexpr const char* kDefaultRoot = "/usr/share/datasets/fashion-mnist";
  static constexpr int64_t kImageSize = 28;
  static constexpr int64_t kNumClasses = 10;
  /// Class names by label: "T-shirt/top", "Trouser", ..., "Ankle boot".
  static const std::array<std::string_view, 10>& classes();

  explicit FashionMNIST(FashionMNISTOptions options = {});
  explicit FashionMNIST(const std::string& root, bool train = true);

  int64_t size() const override { return labels_.size(0); }
  Batch get(int64_t index) const override;

  /// Every image at once, as get() returns them: float32 (N, 1, 28, 28), computed
  /// on each call (N * 3 KB), for TensorDataset({{"image", ds.images()}, {"label", ds.labels()}}).
  Tensor images() const;
  /// Every label: int64 (N) in [0, 9] (the stored tensor).
  const Tensor& labels() const { return labels_; }
  /// The stored pixels: uint8 (N, 28, 28).
  const Tensor& raw_images() const { return raw_images_; }
  const FashionMNISTOptions& options() const { return options_; }

 private:
  FashionMNISTOptions options_;
  Tensor raw_images_;  // uint8 (N, 28, 28)
  Tensor labels_;      // int64 (N)
  std::array<float, 256> pixel_table_{};  // pixel byte -> sample value
};

}  // namespace zae
