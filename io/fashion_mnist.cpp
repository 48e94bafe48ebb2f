// FashionMNIST loading and sample conversion. Pixels go through a 256-entry table
// (x / 255, optionally normalised, computed in float32 as torchvision's ToTensor
// and Normalize do), so a sample costs one lookup per pixel.
#include "io/fashion_mnist.h"

#include <array>
#include <filesystem>

#include "engine/error.h"
#include "io/idx.h"

namespace zae {

namespace {

// <root>/<stem>.gz, or <root>/<stem> when only the uncompressed file is there.
std::string locate(const std::string& root, const std::string& stem, bool train) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path gz = fs::path(root) / (stem + ".gz");
  if (fs::exists(gz, ec)) return gz.string();
  const fs::path raw = fs::path(root) / stem;
  if (fs::exists(raw, ec)) return raw.string();
  ZAE_FAIL("FashionMNIST: the ", train ? "training" : "test", " file ", gz.string(), " was not found. Install ",
           "Debian's Fashion-MNIST package (sudo apt-get install dataset-fashion-mnist, which puts the files in ",
           FashionMNIST::kDefaultRoot, ") or pass the folder holding {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz",
           " as root");
}

std::array<float, 256> pixel_table(const FashionMNISTOptions& o) {
  std::array<float, 256> table{};
  for (int v = 0; v < 256; ++v) {
    float x = static_cast<float>(v) / 255.0f;
    if (o.normalize) x = (x - static_cast<float>(o.mean)) / static_cast<float>(o.std);
    table[static_cast<size_t>(v)] = x;
  }
  return table;
}

}  // namespace

const std::array<std::string_view, 10>& FashionMNIST::classes() {
  static const std::array<std::string_view, 10> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                         "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

FashionMNIST::FashionMNIST(const std::string& root, bool train)
    : FashionMNIST(FashionMNISTOptions{.root = root, .train = train}) {}

FashionMNIST::FashionMNIST(FashionMNISTOptions options) : options_(std::move(options)) {
  ZAE_CHECK(!options_.normalize || options_.std > 0, "FashionMNIST: std must be > 0 to normalize, got ",
            options_.std);
  pixel_table_ = pixel_table(options_);
  const std::string split = options_.train ? "train" : "t10k";
  const std::string image_path = locate(options_.root, split + "-images-idx3-ubyte", options_.train);
  const std::string label_path = locate(options_.root, split + "-labels-idx1-ubyte", options_.train);

  raw_images_ = read_idx(image_path);
  ZAE_CHECK(raw_images_.dtype() == DType::uint8 && raw_images_.dim() == 3 && raw_images_.size(1) == kImageSize &&
                raw_images_.size(2) == kImageSize,
            "FashionMNIST: ", image_path, " holds ", raw_images_.dtype(), " ", shape_str(raw_images_.shape()),
            ", expected uint8 images (N, 28, 28)");
  Tensor raw_labels = read_idx(label_path);
  ZAE_CHECK(raw_labels.dtype() == DType::uint8 && raw_labels.dim() == 1, "FashionMNIST: ", label_path, " holds ",
            raw_labels.dtype(), " ", shape_str(raw_labels.shape()), ", expected uint8 labels (N)");
  ZAE_CHECK(raw_labels.size(0) == raw_images_.size(0), "FashionMNIST: ", image_path, " holds ", raw_images_.size(0),
            " images but ", label_path, " holds ", raw_labels.size(0), " labels");

  const int64_t n = raw_labels.size(0);
  labels_ = Tensor::empty({n}, {.dtype = DType::int64});
  const uint8_t* src = raw_labels.data<uint8_t>();
  int64_t* dst = labels_.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    ZAE_CHECK(src[i] < kNumClasses, "FashionMNIST: ", label_path, ": label ", static_cast<int>(src[i]), " at index ",
              i, " is outside [0, 9]");
    dst[i] = src[i];
  }
}

Batch FashionMNIST::get(int64_t index) const {
  ZAE_CHECK(index >= 0 && index < size(), "FashionMNIST: index ", index, " is out of range for the ",
            options_.train ? "training" : "test", " split of ", size(), " images");
  const std::array<float, 256>& lut = pixel_table_;
  constexpr int64_t kPixels = kImageSize * kImageSize;
  Tensor image = Tensor::empty({1, kImageSize, kImageSize});
  float* out = image.data<float>();
  const uint8_t* px = raw_images_.data<uint8_t>() + index * kPixels;
  for (int64_t i = 0; i < kPixels; ++i) out[i] = lut[px[i]];
  Tensor label = Tensor::empty({}, {.dtype = DType::int64});
  *label.data<int64_t>() = labels_.data<int64_t>()[index];
  return Batch{{"image", std::move(image)}, {"label", std::move(label)}};
}

Tensor FashionMNIST::images() const {
  const std::array<float, 256>& lut = pixel_table_;
  const int64_t n = size();
  Tensor out = Tensor::empty({n, 1, kImageSize, kImageSize});
  float* dst = out.data<float>();
  const uint8_t* src = raw_images_.data<uint8_t>();
  const int64_t total = n * kImageSize * kImageSize;
  for (int64_t i = 0; i < total; ++i) dst[i] = lut[src[i]];
  return out;
}

}  // namespace zae
