// CUDA runtime probing (compiled only when CMake finds nvcc). No N-API here.
#pragma once
#include <string>
#include <vector>

namespace medgym::cuda {

struct DeviceInfo {
  std::string name;
  int major = 0, minor = 0;  // compute capability
  size_t total_memory = 0;   // bytes
  int multiprocessors = 0;
};

// Devices visible to the CUDA runtime. Never throws: with no driver or no GPU it returns an empty
// list and puts the runtime's reason in *why (when given).
std::vector<DeviceInfo> list_devices(std::string* why);

// CUDA runtime version the addon was built against, e.g. 13000.
int runtime_version();

}  // namespace medgym::cuda
