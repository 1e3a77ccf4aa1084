"""PyTorch peer of bench/gemm.bench.ts: torch.mm (OpenBLAS sgemm) on the same shapes and transposes,
at the same thread count. Prints {"results": [{"M", "N", "K", "transA", "transB", "minMs", ...}]}."""
import torch

from common import emit, setup, time_ms


def main():
    args = setup()
    torch.manual_seed(0)
    results = []
    for s in args["shapes"]:
        M, N, K, ta, tb = s["M"], s["N"], s["K"], s["transA"], s["transB"]
        # Stored layouts as in medgym; .t() views make torch call sgemm with the transpose flags.
        a = torch.randn(K, M).t() if ta else torch.randn(M, K)
        b = torch.randn(N, K).t() if tb else torch.randn(K, N)
        c = torch.empty(M, N)
        t = time_ms(lambda: torch.mm(a, b, out=c))
        results.append({**s, **t})
    emit({"results": results, "torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas_name()})


def blas_name():
    """The BLAS library torch.mm actually loaded (Debian's torch links the system libblas)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split("/")[-1].strip() for line in f if "blas" in line.lower()}
        return ", ".join(sorted(libs)) or "unknown"
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()
