"""torchao as a live oracle for shardquant's tests (CPU, PyTorch + torchao 0.19).

Usage:
    torchao_oracle.py qat DIR [SEED]     a small bf16 model trained a few steps with torchao's QAT flow
        (QATConfig(base, step="prepare"), SGD steps on random data, QATConfig(base, step="convert")) for
        8da4w and intx-weight-only; writes DIR/input_<recipe>.safetensors (the trained weights before convert,
        bf16) and DIR/expected_<recipe>.safetensors (the converted model flattened with torchao's
        flatten_tensor_state_dict, metadata included). Seed and shapes vary with SEED (default: random)
        and are printed.
    torchao_oracle.py unflatten OUT TYPE   loads every tensor and the merged metadata of the shardquant
        output directory OUT with torchao's unflatten_tensor_state_dict and checks that every quantized
        tensor comes back as torchao's TYPE, nothing left over.

Exit 0 on success; 1 with one FAIL line otherwise. Run with TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1 in the
environment of ../shared/tools/torch-env.sh.
"""
import glob
import json
import os
import random
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def qat(out, seed):
    from torchao.quantization import (Int8DynamicActivationIntxWeightConfig, IntxWeightOnlyConfig, PerGroup,
                                      quantize_)
    from torchao.quantization.qat import QATConfig
    from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict

    rnd = random.Random(seed)
    hidden = 32 * rnd.randint(2, 6)
    inter = 32 * rnd.randint(2, 8)
    layers = rnd.randint(1, 3)
    steps = rnd.randint(2, 5)
    print(f"seed {seed}: hidden {hidden}, intermediate {inter}, layers {layers}, {steps} SGD steps", flush=True)
    configs = {
        "8da4w": Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(32)),
        "intx-weight-only": IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32)),
    }
    os.makedirs(out, exist_ok=True)
    for recipe, base in configs.items():
        torch.manual_seed(seed)
        model = torch.nn.Module()
        model.layers = torch.nn.ModuleList()
        for _ in range(layers):
            layer = torch.nn.Module()
            layer.up_proj = torch.nn.Linear(hidden, inter, bias=False)
            layer.down_proj = torch.nn.Linear(inter, hidden, bias=False)
            model.layers.append(layer)
        model = model.to(torch.bfloat16)

        def forward(x):
            for layer in model.layers:
                x = layer.down_proj(torch.relu(layer.up_proj(x)))
            return x

        quantize_(model, QATConfig(base, step="prepare"))
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        for _ in range(steps):
            x = torch.randn(8, hidden, dtype=torch.bfloat16)
            loss = (forward(x).float() - x.float()).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        trained = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if k.endswith(".weight")}
        # 8da4w also fake-quantizes activations while training, so each recipe trains its own weights
        save_file(trained, os.path.join(out, f"input_{recipe}.safetensors"), metadata={"format": "pt"})
        quantize_(model, QATConfig(base, step="convert"))
        tensors, metadata = flatten_tensor_state_dict({k: v for k, v in model.state_dict().items() if k.endswith(".weight")})
        save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, f"expected_{recipe}.safetensors"),
                  metadata=metadata)
        print(f"{recipe}: {len(trained)} trained weights, {len(tensors)} stored tensors", flush=True)
    return 0


def unflatten(out, type_name):
    from torchao.prototype.safetensors.safetensors_support import unflatten_tensor_state_dict

    tensors, metadata = {}, {}
    for path in sorted(glob.glob(os.path.join(out, "model-*.safetensors"))):
        with safe_open(path, "pt") as f:
            metadata.update(f.metadata() or {})
            for k in f.keys():
                tensors[k] = f.get_tensor(k)
    result, leftover = unflatten_tensor_state_dict(tensors, metadata)
    if leftover:
        print(f"FAIL: {len(leftover)} stored tensors left over: {sorted(leftover)[:5]}")
        return 1
    names = json.loads(metadata["tensor_names"])
    quantized = [n for n in names if json.loads(metadata[n]).get("_type") != "Tensor"]
    wrong = [n for n in quantized if type(result[n]).__name__ != type_name]
    if wrong or not quantized:
        print(f"FAIL: {len(wrong)} of {len(quantized)} quantized tensors are not {type_name}: "
              f"{[(n, type(result[n]).__name__) for n in wrong[:3]]}")
        return 1
    print(f"ok: {len(quantized)} tensors unflattened as {type_name}, {len(names) - len(quantized)} plain, nothing left over")
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "qat":
        return qat(argv[1], int(argv[2]) if len(argv) > 2 else random.SystemRandom().randrange(1 << 31))
    if len(argv) == 3 and argv[0] == "unflatten":
        return unflatten(argv[1], argv[2])
    print(__doc__.strip().splitlines()[2], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
