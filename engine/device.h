// Where a tensor's memory lives: the CPU or one CUDA device.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

namespace zae {

enum class DeviceType : uint8_t { cpu, cuda };

/// A device: Device::cpu() or Device::cuda(i). Parse with Device::parse("cuda:1").
struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  static constexpr Device cpu() { return Device{DeviceType::cpu, 0}; }
  static constexpr Device cuda(int i = 0) { return Device{DeviceType::cuda, i}; }
  /// "cpu", "cuda", "cuda:N"; anything else is a zae::Error naming the text.
  static Device parse(const std::string& text);

  bool is_cpu() const { return type == DeviceType::cpu; }
  bool is_cuda() const { return type == DeviceType::cuda; }
  std::string str() const;
  friend bool operator==(const Device&, const Device&) = default;
};

std::ostream& operator<<(std::ostream& os, const Device& d);

namespace cuda {
/// Whether this build has the CUDA backend compiled in.
bool compiled();
/// Number of visible CUDA devices (0 without a driver, a device or the backend).
int device_count();
/// compiled() && device_count() > 0.
bool is_available();
/// Compute capability of CUDA device `index` as 10 * major + minor (90 for an H100/H200);
/// a zae::Error when the device does not exist.
int compute_capability(int index);
/// Whether "auto" device choices may pick CUDA. Every op family has CUDA kernels in
/// CUDA builds (Device::cuda() works explicitly), but they have not yet run on a GPU
/// (no device was available to the sessions that wrote them): until scripts/gpu-check
/// has passed on one, this stays false so that "auto" keeps choosing the CPU.
bool ops_available();
/// Blocks until all work on the current device has finished.
void synchronize();
}  // namespace cuda

}  // namespace zae
