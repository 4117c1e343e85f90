#!/usr/bin/env python3
"""Feeds shardquant's int4 output to PyTorch's own int4 ops (run on a GPU machine with torch).

    .device/run.sh -cp "$(cat .device/cp)" shardquant.kernels.backend.cuda.TorchCheckExport /tmp/tc.safetensors
    python3 tools/torch_check.py /tmp/tc.safetensors

Checks, each printed as one PASS/FAIL line (exit 1 on any FAIL):
  1. torch's own packing of our codes (aten._convert_weight_to_int4pack, inner_k_tiles 8) gives our
     tile-packed qdata byte for byte;
  2. aten._weight_int4pack_mm(x, our qdata, 128, our scale_and_zero) on the GPU equals x @ dq.T (our
     reference dequantization) up to bf16 matmul rounding;
  3. on an AVX-512 host, torch's CPU packing of our codes gives our int4-cpu qdata, and
     aten._weight_int4pack_mm_for_cpu with it matches x @ dq.T too.
The file is read with the standard library and torch only (no safetensors package needed).
"""
import json
import struct
import sys

import torch

DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "I32": torch.int32,
          "U8": torch.uint8, "I8": torch.int8}


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = memoryview(data)[8 + n:]
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        t = torch.frombuffer(bytearray(body[a:b]), dtype=DTYPES[e["dtype"]]) if b > a else torch.empty(0, dtype=DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"])
    return out, meta


def report(ok, what):
    print(("PASS " if ok else "FAIL ") + what)
    return ok


def main(path):
    t, meta = load(path)
    group = int(meta.get("group_size", "128"))
    print(f"file {path}: quantized on {meta.get('backend')}, torch {torch.__version__}, cuda {torch.cuda.is_available()}")
    codes = (t["codes_minus_8"].to(torch.int32) + 8)  # [N, K], 0..15
    dq = t["dq"]
    x = torch.randn(16, codes.shape[1], dtype=torch.bfloat16, generator=torch.Generator().manual_seed(0))
    ok = True
    if torch.cuda.is_available():
        packed_u8 = ((codes[:, ::2] << 4) | codes[:, 1::2]).to(torch.uint8)
        theirs = torch.ops.aten._convert_weight_to_int4pack(packed_u8.cuda(), 8).cpu()
        ok &= report(torch.equal(theirs.reshape(-1).view(torch.uint8), t["tile_qdata"].reshape(-1).view(torch.uint8)),
                     f"torch packs our codes into our tile-packed qdata {list(theirs.shape)}")
        y = torch.ops.aten._weight_int4pack_mm(x.cuda(), t["tile_qdata"].cuda(), group, t["scale_and_zero"].cuda()).float().cpu()
        want = (x.float() @ dq.float().T)
        err = ((y - want).abs().max() / want.abs().max()).item()
        ok &= report(err < 2e-2, f"_weight_int4pack_mm with our tile-packed weight matches x @ dq.T (max rel error {err:.2e})")
    else:
        ok &= report(False, "no CUDA device: the GPU checks did not run")
    cap = torch.backends.cpu.get_cpu_capability()
    if cap.startswith("AVX512"):
        theirs = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 8)
        ok &= report(torch.equal(theirs.reshape(-1).view(torch.uint8), t["cpu_qdata"].reshape(-1).view(torch.uint8)),
                     "torch's CPU packing of our codes gives our int4-cpu qdata")
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(x, t["cpu_qdata"], group, t["scale_and_zero"]).float()
        err = ((y - (x.float() @ dq.float().T)).abs().max() / (x.float() @ dq.float().T).abs().max()).item()
        ok &= report(err < 2e-2, f"_weight_int4pack_mm_for_cpu with our int4-cpu weight matches x @ dq.T (max rel error {err:.2e})")
    else:
        print(f"SKIP int4-cpu checks: this CPU is {cap}; our int4-cpu layout is PyTorch's AVX-512 one")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
