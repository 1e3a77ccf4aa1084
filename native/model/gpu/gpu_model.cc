// CudaModel: device selection and probing, the flat buffers (upload, host access), the optimizer
// step, and the KV-cache pool.
#include <algorithm>
#include <cmath>
#include <mutex>
#include <stdexcept>

#include "cuda/device.h"
#include "model/gpu/gpu_model.h"

namespace medgym::model::gpu {

namespace {

struct Probe {
  bool ok = false;
  std::string why, name;
};

Probe run_probe() {
  Probe p;
  try {
    if (!cuda::available(&p.why)) return p;
    std::vector<cuda::DeviceInfo> devs = cuda::list_devices(&p.why);
    if (devs.empty()) return p;
    const cuda::DeviceInfo& d = devs[0];
    p.name = d.name + " (sm_" + std::to_string(d.major) + std::to_string(d.minor) + ")";
    if (d.major < 8) {
      p.why = "device 0 (" + p.name + ") has compute capability " + std::to_string(d.major) + "." +
              std::to_string(d.minor) + "; the policy's kernels need 8.0 or newer";
      return p;
    }
    // A context, an allocation and a kernel: catches a missing kernel image for this architecture.
    cuda::set_device(0);
    DeviceBuffer<float> a(8);
    DeviceBuffer<Bf16> b(8);
    cuda::memset_zero(a.get(), 8 * sizeof(float), nullptr);
    cuda::convert_f32_to_bf16(b.get(), a.get(), 8, nullptr);
    cuda::stream_synchronize(nullptr);
    p.ok = true;
  } catch (const std::exception& e) {
    p.ok = false;
    p.why = e.what();
  }
  return p;
}

}  // namespace

bool cuda_usable(std::string* why, std::string* name) {
  static std::once_flag once;
  static Probe probe;
  std::call_once(once, [] { probe = run_probe(); });
  if (why) *why = probe.why;
  if (name) *name = probe.name;
  return probe.ok;
}

std::unique_ptr<Accelerator> make_cuda_accelerator(Model& m, const CudaOptions& o) {
  std::string why, name;
  if (!cuda_usable(&why, &name)) throw std::runtime_error("no usable CUDA device: " + why);
  if (m.cfg.hd() > 256)
    throw std::out_of_range("the CUDA attention kernels support head dims up to 256; this config has d_model / n_head = " +
                            std::to_string(m.cfg.hd()));
  return std::make_unique<CudaModel>(m, o, 0, name);
}

// ---- the model's buffers ----------------------------------------------------------------------

CudaModel::CudaModel(Model& m, const CudaOptions& o, int device, std::string name)
    : m_(m), c_(m.cfg), lay_(m.layout), bf16_(o.bf16), device_(device), name_(std::move(name)) {
  activate();
  cuda::keep_pool_memory();  // the kernels' scratch is reused across calls instead of re-allocated
  st_ = cuda::stream_create();
  const int64_t total = lay_.total;
  P_ = DeviceBuffer<float>(total);
  G_ = DeviceBuffer<float>(total);
  if (bf16_) Pb_ = DeviceBuffer<Bf16>(total);
  clip_ = DeviceBuffer<GradClipResult>(1);
  sum_sq_ = DeviceBuffer<double>(1);
  kv_ = std::make_shared<KvPool>(c_);
  if (static_cast<int64_t>(m.params.size()) != total) throw std::logic_error("CudaModel: the model has no host parameters");
  cuda::copy_to_device(P_.get(), m.params.data(), total * sizeof(float), st_);
  cuda::memset_zero(G_.get(), total * sizeof(float), st_);
  refresh_bf16(0, total);
  if (!m.m.empty()) {  // moments already present (not the case for a fresh Model, kept for completeness)
    ensure_moments();
    cuda::copy_to_device(M_.get(), m.m.data(), total * sizeof(float), st_);
    cuda::copy_to_device(V_.get(), m.v.data(), total * sizeof(float), st_);
  }
  cuda::stream_synchronize(st_);
  // The device holds the truth from now on; the host copies would only go stale.
  for (auto* vec : {&m.params, &m.grads, &m.m, &m.v}) std::vector<float>().swap(*vec);
}

CudaModel::~CudaModel() {
  try {
    activate();
    cuda::stream_synchronize(st_);
  } catch (...) {
  }
  cuda::stream_destroy(st_);
}

void CudaModel::activate() const { cuda::set_device(device_); }

std::string CudaModel::describe() const {
  return "cuda:" + std::to_string(device_) + " " + name_ + ", " + (bf16_ ? "bf16" : "fp32");
}

void CudaModel::ensure_moments() {
  if (M_.size()) return;
  const int64_t total = lay_.total;
  M_ = DeviceBuffer<float>(total);
  V_ = DeviceBuffer<float>(total);
  cuda::memset_zero(M_.get(), total * sizeof(float), st_);
  cuda::memset_zero(V_.get(), total * sizeof(float), st_);
}

void CudaModel::refresh_bf16(int64_t offset, int64_t n) {
  if (bf16_) cuda::convert_f32_to_bf16(Pb_.get() + offset, P_.get() + offset, n, st_);
}

void CudaModel::read(FlatBuffer which, int64_t offset, int64_t n, float* out) {
  activate();
  const float* src = which == FlatBuffer::Params ? P_.get()
                     : which == FlatBuffer::Grads ? G_.get()
                     : which == FlatBuffer::M     ? M_.get()
                                                  : V_.get();
  if (!src && n > 0) throw std::out_of_range("no optimizer state yet (`which`)");
  cuda::copy_to_host(out, src + offset, static_cast<size_t>(n) * sizeof(float), st_);
}

void CudaModel::write(FlatBuffer which, int64_t offset, int64_t n, const float* in) {
  activate();
  if (which == FlatBuffer::M || which == FlatBuffer::V) ensure_moments();
  float* dst = which == FlatBuffer::Params ? P_.get()
               : which == FlatBuffer::Grads ? G_.get()
               : which == FlatBuffer::M     ? M_.get()
                                            : V_.get();
  cuda::copy_to_device(dst + offset, in, static_cast<size_t>(n) * sizeof(float), st_);
  if (which == FlatBuffer::Params) refresh_bf16(offset, n);
  cuda::stream_synchronize(st_);
}

void CudaModel::zero_grad() {
  activate();
  cuda::memset_zero(G_.get(), lay_.total * sizeof(float), st_);
  cuda::stream_synchronize(st_);
}

// Model::step on the device: the same clipping rule (cpu/grad_clip.h semantics, the decision taken
// on the device and copied back) and AdamW (bit-identical to the CPU's for the same gradients), over
// runs of consecutive tensors that share the weight-decay flag.
StepInfo CudaModel::step(const AdamHyper& hp) {
  activate();
  ensure_moments();
  float* arr = G_.get();
  const float* carr = arr;
  const int64_t len = lay_.total;
  StepInfo info{m_.step_count, 0.0, false, true};
  if (hp.max_grad_norm > 0 && std::isfinite(hp.max_grad_norm)) {
    cuda::grad_clip(&arr, &len, 1, hp.max_grad_norm, clip_.get(), st_);
    GradClipResult c;
    cuda::copy_to_host(&c, clip_.get(), sizeof c, st_);
    info.grad_norm = c.norm, info.clipped = c.clipped, info.finite = c.finite;
  } else {
    cuda::grad_sum_squares(&carr, &len, 1, sum_sq_.get(), st_);
    double ss = 0;
    cuda::copy_to_host(&ss, sum_sq_.get(), sizeof ss, st_);
    info.grad_norm = std::sqrt(ss), info.finite = std::isfinite(ss);
  }
  if (info.finite) {
    ++m_.step_count;
    ++m_.weights_version;
    AdamWParams p;
    p.lr = hp.lr, p.beta1 = hp.beta1, p.beta2 = hp.beta2, p.eps = hp.eps, p.step = m_.step_count;
    const std::vector<TensorInfo>& ts = lay_.tensors;
    for (size_t i = 0; i < ts.size();) {
      size_t j = i + 1;
      while (j < ts.size() && ts[j].decay == ts[i].decay && ts[j].offset == ts[j - 1].offset + ts[j - 1].size) ++j;
      const int64_t off = ts[i].offset, n = ts[j - 1].offset + ts[j - 1].size - off;
      p.weight_decay = ts[i].decay ? hp.weight_decay : 0.0;
      cuda::adamw_step(P_.get() + off, G_.get() + off, M_.get() + off, V_.get() + off, n, p, st_);
      i = j;
    }
    refresh_bf16(0, lay_.total);
  }
  info.step = m_.step_count;
  if (hp.zero_grad || !info.finite) cuda::memset_zero(G_.get(), lay_.total * sizeof(float), st_);
  cuda::stream_synchronize(st_);
  return info;
}

void CudaModel::check_rows(int64_t rows, bool keep) {
  activate();
  int64_t n_patch = rows;  // at most every row a patch row (an upper bound: the exact count needs the batch)
  GpuActs a;
  size_t f = 0, h = 0;
  a.plan(c_, rows, n_patch, keep, bf16_, nullptr, nullptr, &f, &h);
  double need = 4.0 * static_cast<double>(f) + 2.0 * static_cast<double>(h);
  if (keep) {
    GpuGrads g;
    size_t gf = 0, gh = 0;
    g.plan(c_, rows, n_patch, bf16_, nullptr, nullptr, &gf, &gh);
    need += 4.0 * static_cast<double>(gf) + 2.0 * static_cast<double>(gh);
  }
  need += static_cast<double>(cuda::kCudaFusedLogprobScratchBytes) + double(64 << 20);  // head scratch, small buffers
  size_t free_b = 0, total_b = 0;
  cuda::memory_info(&free_b, &total_b);
  // What this model holds for activations is freed before a bigger set is allocated.
  const double have = static_cast<double>(free_b) + train_.f32.bytes() + train_.b16.bytes() +
                      (keep ? grad_f32_.bytes() + grad_b16_.bytes() : 0.0);
  if (need > have)
    throw std::out_of_range("the batch (`tokens`) expands to " + std::to_string(rows) + " positions whose activations need " +
                            std::to_string(static_cast<int64_t>(need / (1 << 20))) + " MiB on the GPU, more than the " +
                            std::to_string(static_cast<int64_t>(have / (1 << 20))) +
                            " MiB available: split it into micro-batches");
}

// ---- KV-cache pool ----------------------------------------------------------------------------

int32_t KvPool::acquire() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!free_.empty()) {
    const int32_t s = free_.back();
    free_.pop_back();
    return s;
  }
  return used_++;
}

void KvPool::release(int32_t slot) {
  std::lock_guard<std::mutex> lock(mu_);
  free_.push_back(slot);
}

size_t KvPool::bytes() const { return 2 * static_cast<size_t>(c_.L) * slots_ * slot_stride() * sizeof(float); }

void KvPool::ensure(int64_t positions, cuda::Stream s) {
  int64_t want_slots = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    want_slots = used_;
  }
  if (want_slots <= slots_ && positions <= cap_) return;
  int64_t slots = std::max<int64_t>(slots_, 8), cap = std::max<int64_t>(cap_, 64);
  while (slots < want_slots) slots *= 2;
  while (cap < positions) cap *= 2;
  cap = std::max(std::min(cap, c_.T), positions);
  const int64_t H = c_.H, hd = c_.hd();
  k_.resize(c_.L), v_.resize(c_.L);
  for (int64_t l = 0; l < c_.L; ++l) {
    for (auto* buf : {&k_[l], &v_[l]}) {
      DeviceBuffer<float> grown(static_cast<size_t>(slots * H * cap * hd));
      // Rows of the old layout are (slot, head) blocks of cap_ * hd floats; they keep their index.
      if (slots_ > 0 && cap_ > 0)
        cuda::copy_device_2d(grown.get(), cap * hd * sizeof(float), buf->get(), cap_ * hd * sizeof(float),
                             cap_ * hd * sizeof(float), static_cast<size_t>(slots_ * H), s);
      cuda::stream_synchronize(s);  // the copy has read the old buffer before it is freed
      *buf = std::move(grown);
    }
  }
  slots_ = slots, cap_ = cap;
}

}  // namespace medgym::model::gpu
