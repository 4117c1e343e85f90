"""Writes golden cases whose rows hold exactly one group (K equal to the group size), made by torchao.

Usage: golden_one_group.py OUTDIR SEED

OUTDIR gets index.json and one .safetensors per case in the format of shared/golden/torchao-0.19 (see its
README): the same kinds, tensor names, dtypes and torchao calls, on seeded weights with the README's edge
rows. The public set has no K = g case; these are made live, on this CPU, so the golden runner meets
torchao's own shapes for them: tinygemm's scale and zero [N, 1] and scale_and_zero [1, N, 2] (torchao's
tinygemm callers reshape the primitive's [N] to [N, K/g] before packing), QAT's per-group qparams [N, 1],
affine's per-group qparams [N] (choose_qparams_affine drops a dimension the block covers whole).

What needs CUDA is left out: the tensor-core tiled packing and the int4 matmuls. packed_cpu is written only
on an AVX-512 CPU, the only ISA whose layout the golden vectors and shardquant follow.

Run with the environment of ../shared/tools/torch-env.sh and TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from torchao.quantization.granularity import PerGroup
from torchao.quantization.qat import IntxFakeQuantizeConfig
from torchao.quantization.qat.fake_quantizer import IntxFakeQuantizer
from torchao.quantization.quant_primitives import (
    MappingType,
    ZeroPointDomain,
    _choose_qparams_affine_tinygemm,
    _dequantize_affine_tinygemm,
    _quantize_affine_tinygemm,
    choose_qparams_affine,
    dequantize_affine,
    quantize_affine,
)
from torchao.quantization.quantize_.workflows.nf4.nf4_tensor import to_nf4
from torchao.quantization.utils import pack_tinygemm_scales_and_zeros


def weights(n, k, dtype, gen):
    """Normal weights with the README's edge rows: all zero, constant, all negative, tiny, 40x, 0.5% outliers."""
    w = torch.randn(n, k, generator=gen)
    w[0] = 0
    w[1] = 0.25
    w[2] = -w[2].abs() - 0.01
    w[3] = w[3] * 1e-8
    w[4] = w[4] * 40
    outliers = torch.rand(n, k, generator=gen) < 0.005
    w[outliers] = w[outliers] * 25
    return w.to(dtype)


def avx512():
    try:
        with open("/proc/cpuinfo") as f:
            return "avx512f" in f.read()
    except OSError:
        return False


def tinygemm(n, g, gen):
    w = weights(n, g, torch.bfloat16, gen)
    block = (1, g)
    scale, zero = _choose_qparams_affine_tinygemm(w, MappingType.ASYMMETRIC, block, torch.int32, 0, 15,
                                                  None, torch.bfloat16, torch.bfloat16)
    # What Int4TilePackedTo4dTensor.from_hp and get_groupwise_affine_qparams do before packing.
    scale = scale.reshape(n, -1)
    zero = zero.reshape(n, -1)
    q = _quantize_affine_tinygemm(w, block, scale, zero, torch.int32, 0, 15)
    t = {"w": w, "scale": scale, "zero": zero, "q": q,
         "dq": _dequantize_affine_tinygemm(q, block, scale, zero, torch.int32, 0, 15, output_dtype=torch.bfloat16),
         "scale_and_zero": pack_tinygemm_scales_and_zeros(scale, zero, torch.bfloat16)}
    if n % 16 == 0 and avx512():
        t["packed_cpu"] = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
    params = {"kind": "tinygemm_int4", "n": n, "k": g, "group_size": g, "quant_min": 0, "quant_max": 15,
              "zero_point_domain": "FLOAT", "dtype": "bfloat16", "eps": "bfloat16 smallest normal"}
    return f"tinygemm_int4_{n}x{g}_g{g}", params, t


def affine(n, g, variant, mapping, qmin, qmax, gen):
    w = weights(n, g, torch.float32, gen)
    block = (1, g)
    eps = torch.finfo(torch.float32).eps
    scale, zp = choose_qparams_affine(w, mapping, block, torch.int8, qmin, qmax, eps, torch.float32, torch.int32)
    q = quantize_affine(w, block, scale, zp, torch.int8, qmin, qmax)
    t = {"w": w, "scale": scale, "zero_point": zp, "q": q,
         "dq": dequantize_affine(q, block, scale, zp, torch.int8, qmin, qmax, output_dtype=torch.float32)}
    params = {"kind": "affine", "variant": variant, "mapping": mapping.name, "block_size": list(block),
              "target_dtype": "int8", "quant_min": qmin, "quant_max": qmax, "eps": eps, "scale_dtype": "float32",
              "zero_point_dtype": "int32", "input_dtype": "float32", "n": n, "k": g}
    return f"affine_{variant}_{n}x{g}", params, t


def nf4(n, dtype, gen):
    w = weights(n, 64, dtype, gen)
    t4 = to_nf4(w, 64, 256)
    name = str(dtype).removeprefix("torch.")
    t = {"w": w, "quantized_data": t4.quantized_data, "quantized_scalers": t4.quantized_scalers,
         "quantization_factor": t4.quantization_factor, "scaler_mean": t4.scaler_mean.reshape(1), "nf4": t4.nf4,
         "dq": t4.get_original_weight()}
    params = {"kind": "nf4", "block_size": 64, "scaler_block_size": 256, "n": n, "k": 64, "dtype": name,
              "device": "cpu"}
    return f"nf4_{name}_{n}x64", params, t


def qat(n, g, variant, config, gen):
    x = weights(n, g, torch.float32, gen).requires_grad_()
    fq = IntxFakeQuantizer(config)
    y = fq(x)
    grad_out = torch.randn(n, g, generator=gen)
    y.backward(grad_out)
    t = {"x": x.detach(), "y": y.detach(), "grad_out": grad_out, "grad_in": x.grad,
         "scale": fq.scale.detach(), "zero_point": fq.zero_point.detach().to(torch.float32)}
    params = {"kind": "qat_fake_quant", "variant": variant, "n": n, "k": g, "group_size": g, "config": repr(config)}
    return f"qat_{variant}_{n}x{g}_g{g}", params, t


def main():
    if len(sys.argv) != 3:
        print("usage: golden_one_group.py OUTDIR SEED", file=sys.stderr)
        return 2
    out, seed = sys.argv[1], int(sys.argv[2])
    gen = torch.Generator().manual_seed(seed)
    cases = []

    def rows(least, most, multiple=1):  # a row count the seed picks in [least, most], a multiple of `multiple`
        return multiple * int(torch.randint(-(-least // multiple), most // multiple + 1, (1,), generator=gen))

    for g in (32, 64, 128, 256):
        cases.append(tinygemm(rows(16, 128, 16), g, gen))  # CPU packing too
        cases.append(tinygemm(16 * rows(0, 7) + 8, g, gen))  # N % 16 == 8: no CPU packing
        cases.append(affine(rows(5, 64), g, "int4_sym_group", MappingType.SYMMETRIC, -8, 7, gen))
        cases.append(affine(rows(5, 64), g, "int4_asym_group", MappingType.ASYMMETRIC, -8, 7, gen))
        cases.append(qat(rows(5, 48), g, "w_int4_sym_group", IntxFakeQuantizeConfig(
            torch.int4, PerGroup(g), mapping_type=MappingType.SYMMETRIC), gen))
        cases.append(qat(rows(5, 48), g, "w_uint4_asym_group_float_zero", IntxFakeQuantizeConfig(
            torch.uint4, PerGroup(g), mapping_type=MappingType.ASYMMETRIC, zero_point_domain=ZeroPointDomain.FLOAT), gen))
    # NF4 needs whole 256-scaler blocks: 256 rows of one 64-element block each, or a multiple.
    cases.append(nf4(rows(256, 768, 256), torch.bfloat16, gen))
    cases.append(nf4(rows(256, 768, 256), torch.float32, gen))
    os.makedirs(out, exist_ok=True)
    index = []
    for name, params, tensors in cases:
        file = name + ".safetensors"
        tensors = {k: v.contiguous() for k, v in tensors.items()}
        save_file(tensors, os.path.join(out, file), metadata={"case": json.dumps(params)})
        index.append({"file": file, **params,
                      "tensors": {k: [str(v.dtype).removeprefix("torch."), list(v.shape)] for k, v in tensors.items()}})
        print(file, {k: list(v.shape) for k, v in tensors.items() if k in ("w", "x", "scale", "scale_and_zero")})
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"torch": torch.__version__, "seed": seed, "cases": index}, f, indent=1)
    print(f"wrote {len(index)} cases to {out} (seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
