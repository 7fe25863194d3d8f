"""PyTorch eager latency of torchvision's ResNet-50 on the GPU (random weights: latency does
not depend on them), FP32 and FP16, batch 1 and 8, for tests/gpu/run.sh. Set
TORCH_COMPILE=1 to add torch.compile (minutes of compilation). Prints one JSON object;
{"error": ...} when PyTorch, torchvision or a GPU is missing."""
import json
import os
import sys
import time

try:
    import torch
    import torchvision
except ImportError as e:
    print(json.dumps({"error": f"not importable: {e}"}))
    sys.exit(0)
if not torch.cuda.is_available():
    print(json.dumps({"error": "torch.cuda.is_available() is False"}))
    sys.exit(0)


def median_ms(fn, runs=100, warmup=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "resnet50": {}}
modes = ["eager"] + (["compile"] if os.environ.get("TORCH_COMPILE") == "1" else [])
for dtype in [torch.float32, torch.float16]:
    model = torchvision.models.resnet50().eval().cuda().to(dtype)
    for mode in modes:
        m = torch.compile(model) if mode == "compile" else model
        for batch in [1, 8]:
            x = torch.randn(batch, 3, 224, 224, device="cuda", dtype=dtype)
            with torch.inference_mode():
                out["resnet50"][f"{mode}_{str(dtype)[6:]}_b{batch}"] = median_ms(lambda: m(x))
print(json.dumps(out))
