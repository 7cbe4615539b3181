"""nvidia-smi answers, and a matrix product computed on the GPU equals the CPU's (float64, so no TF32 rounding).

python3 gpu_probe.py        # in a GPU pod, or on any machine with a GPU and torch
"""

import json
import subprocess
import sys


def main() -> int:
    result: dict[str, object] = {"ok": False}
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except FileNotFoundError:
        result["error"] = "nvidia-smi is not in the container (is the NVIDIA container runtime on this node?)"
        print(json.dumps(result))
        return 1
    result["nvidia_smi"] = [line.strip() for line in smi.stdout.splitlines() if line.strip()]
    if smi.returncode:
        result["error"] = f"nvidia-smi exited {smi.returncode}: {smi.stderr.strip()[-300:]}"
        print(json.dumps(result))
        return 1
    import torch  # pyright: ignore[reportMissingImports] - in the GPU image, not in the kit's environments

    if not torch.cuda.is_available():
        result["error"] = "torch sees no CUDA device"
        print(json.dumps(result))
        return 1
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(1024, 1024, generator=generator, dtype=torch.float64)
    b = torch.randn(1024, 1024, generator=generator, dtype=torch.float64)
    on_cpu = a @ b
    on_gpu = (a.cuda() @ b.cuda()).cpu()
    error = (on_gpu - on_cpu).abs().max().item()
    result.update(
        device=torch.cuda.get_device_name(0),
        cuda=torch.version.cuda,
        max_abs_error=error,
        ok=bool(torch.allclose(on_gpu, on_cpu, rtol=1e-10, atol=1e-10)),
    )
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
