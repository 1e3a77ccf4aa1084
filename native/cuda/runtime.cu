// Runtime helpers of kernels.h: errors, devices, memory, streams.
#include <cstring>
#include <string>

#include "cuda/common.cuh"

namespace medgym::cuda {

CudaError::CudaError(int code, const std::string& call, const std::string& message)
    : std::runtime_error(call + ": " + message + " (cudaError " + std::to_string(code) + ")"), code_(code), call_(call) {}

void throw_cuda_error(cudaError_t err, const char* call) {
  throw CudaError(static_cast<int>(err), call, cudaGetErrorString(err));
}

bool available(std::string* why) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    if (why) *why = cudaGetErrorString(err);
    cudaGetLastError();  // clear it so that later calls start clean
    return false;
  }
  if (n == 0) {
    if (why) *why = "no CUDA device found";
    return false;
  }
  return true;
}

void set_device(int device) { check(cudaSetDevice(device), "cudaSetDevice"); }
int get_device() {
  int d = 0;
  check(cudaGetDevice(&d), "cudaGetDevice");
  return d;
}

int sm_count() {
  static int cached[64] = {0};
  const int dev = get_device();
  if (dev < 0 || dev >= 64) {
    int n = 0;
    check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
    return n;
  }
  if (!cached[dev]) {
    int n = 0;
    check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
    cached[dev] = n;
  }
  return cached[dev];
}

void* device_alloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    const std::string call = "cudaMalloc(" + std::to_string(bytes) + " bytes)";
    throw CudaError(static_cast<int>(err), call, cudaGetErrorString(err));
  }
  return p;
}
void device_free(void* p) noexcept {
  if (p) cudaFree(p);
}

Stream stream_create() {
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  return s;
}
void stream_destroy(Stream s) noexcept {
  if (s) cudaStreamDestroy(to_stream(s));
}
void stream_synchronize(Stream s) { check(cudaStreamSynchronize(to_stream(s)), "cudaStreamSynchronize"); }
void device_synchronize() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

void copy_to_device(void* dst, const void* src, size_t bytes, Stream s) {
  if (bytes) check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, to_stream(s)), "cudaMemcpyAsync (to device)");
}
void copy_to_host(void* dst, const void* src, size_t bytes, Stream s) {
  if (bytes) check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, to_stream(s)), "cudaMemcpyAsync (to host)");
  stream_synchronize(s);
}
void copy_device(void* dst, const void* src, size_t bytes, Stream s) {
  if (bytes) check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, to_stream(s)), "cudaMemcpyAsync (device)");
}
void memset_zero(void* dst, size_t bytes, Stream s) {
  if (bytes) check(cudaMemsetAsync(dst, 0, bytes, to_stream(s)), "cudaMemsetAsync");
}
void copy_device_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height, Stream s) {
  if (width && height)
    check(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, cudaMemcpyDeviceToDevice, to_stream(s)),
          "cudaMemcpy2DAsync (device)");
}

void memory_info(size_t* free_bytes, size_t* total_bytes) {
  check(cudaMemGetInfo(free_bytes, total_bytes), "cudaMemGetInfo");
}

void keep_pool_memory() {
  cudaMemPool_t pool;
  check(cudaDeviceGetDefaultMemPool(&pool, get_device()), "cudaDeviceGetDefaultMemPool");
  uint64_t keep = UINT64_MAX;
  check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "cudaMemPoolSetAttribute");
}

}  // namespace medgym::cuda
