#!/usr/bin/env python3
"""hf_check.py: does a quantized Hugging Face checkpoint load in transformers and equal torchao's own result?

Usage:
    hf_check.py OUT INPUT [--logits FILE] [--same-as DIR] [--vllm]

    OUT     a quantized model directory: config.json with a torchao `quantization_config`, safetensors
            shards in torchao's flattened format (`<module>._weight_qdata`, ... plus the per-tensor JSON in
            each shard's __metadata__) and model.safetensors.index.json. shardquant's output, or
            shared/golden/transformers-5.18/<recipe>.
    INPUT   the original (bf16) model directory OUT was made from.
    --logits FILE   a safetensors file with `logits` (the expected logits) and `prompt` (token ids, as a
            tensor, or as a JSON list under the `prompt` metadata key), as in golden/*/logits.safetensors.
    --same-as DIR   a directory transformers itself wrote for the same recipe (shared/golden/transformers-5.18/
            <recipe>): its weights and its logits, loaded here, must equal OUT's bit for bit. Where this
            machine's kernels do not reproduce the --logits file even for DIR, the file comparison is a note.
    --vllm  also load OUT with vLLM (otherwise tried only when `import vllm` works and CUDA is present).

What it checks, one line each, `ok: ...` / `FAIL: ...` (`note:` and `skip:` lines are informational):
    1. OUT loads with AutoModelForCausalLM.from_pretrained(OUT, device_map=...) and nothing else, and the
       load report is clean (no missing, unexpected or mismatched keys).
    2. The TorchAoConfig is rebuilt from OUT's config.json the way transformers does it
       (TorchAoConfig.from_dict -> torchao's config_from_dict), and INPUT is quantized with it in this
       process: from_pretrained(INPUT, quantization_config=that) is the reference.
    3. Every torchao tensor-subclass weight of the reference has the same subclass in OUT, with the same
       outer shape/dtype, the same non-tensor attributes (block_size, dtype, ...) and every inner tensor
       (from __tensor_flatten__) identical bit for bit; every plain parameter and buffer identical bit for
       bit. One FAIL line per mismatching tensor, named as it is stored in the shards, then a count line.
    4. The same set of weights is quantized in both models.
    5. Logits for a fixed prompt: OUT's equal the reference model's bit for bit, and with --logits also
       the file's. Without --logits the prompt is a built-in one of 16 ids below vocab_size.
    6. vLLM (see --vllm): greedy generation of a few tokens; its first token must be transformers' argmax.
       `skip: vllm not installed` when it is absent.

Exit codes: 0 every check passed; 1 some check FAILed; 2 bad usage, an unreadable directory, or an OUT
that transformers cannot treat as a torchao checkpoint at all (no config.json, no quantization_config);
4 not checkable on this machine (int4 tile-packed, Int4WeightOnlyConfig, needs CUDA and there is none).

Environment: PyTorch, transformers, safetensors, accelerate and torchao (shared/tools/torch-env.sh builds
one offline). From the repository root:
    TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1 "$(../shared/tools/torch-env.sh DIR)" tools/hf_check.py OUT INPUT
Runs on CPU unless the quantization needs CUDA. Deterministic: no randomness is used; the two models run
the same kernels in the same process, whatever the thread count.
A --logits file is bit-comparable only on CPU kernels like those that made it: on a CPU with AMX, oneDNN's
bf16 GEMM (the unquantized lm_head) rounds one of golden/transformers-5.18/int8-dynamic's 4096 logits
differently; ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 reproduces the file. The `note: cpu kernels` line says
what this machine uses, and a file mismatch says when OUT still equals the in-process reference.
"""
import argparse
import json
import logging
import os
import sys
import time
import traceback
import warnings

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNCHECKABLE = 0, 1, 2, 4

# quant_type `_type`s whose tensors torchao only creates and runs with CUDA kernels.
CUDA_ONLY = {
    "Int4WeightOnlyConfig": "int4 weight-only (tile-packed / plain int4) packs and runs only with CUDA kernels",
}

BUILTIN_PROMPT_LEN = 16
MAX_LISTED = 8  # names listed on one line before "... and N more"


class Usage(Exception):
    pass


class Report:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def ok(self, msg):
        self.passed += 1
        print(f"ok: {msg}", flush=True)

    def fail(self, msg):
        self.failed += 1
        print(f"FAIL: {msg}", flush=True)

    @staticmethod
    def note(msg):
        print(f"note: {msg}", flush=True)

    @staticmethod
    def skip(msg):
        print(f"skip: {msg}", flush=True)


def last_line(e):
    """The exception's last line, prefixed with its type when that line does not already name it."""
    lines = [l for l in "".join(traceback.format_exception_only(type(e), e)).splitlines() if l.strip()]
    line = lines[-1].strip() if lines else ""
    name = type(e).__name__
    return line if line.startswith(name) else f"{name}: {line}"


def listed(names):
    names = sorted(names)
    more = f" ... and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


# ---------------------------------------------------------------------------------------------- arguments


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise Usage(f"{message} (usage: hf_check.py OUT INPUT [--logits FILE] [--same-as DIR] [--vllm])")


def parse(argv):
    p = Parser(prog="hf_check.py", add_help=True, description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("input")
    p.add_argument("--logits", metavar="FILE")
    p.add_argument("--same-as", metavar="DIR")
    p.add_argument("--vllm", action="store_true")
    a = p.parse_args(argv)
    for label, d in (("OUT", a.out), ("INPUT", a.input)):
        if not os.path.isdir(d) or not os.access(d, os.R_OK | os.X_OK):
            raise Usage(f"{label} {d!r} is not a readable directory")
        if not os.path.isfile(os.path.join(d, "config.json")):
            raise Usage(f"{label} {d!r} has no config.json: not a Hugging Face model directory")
    if a.logits is not None and not os.path.isfile(a.logits):
        raise Usage(f"--logits {a.logits!r} is not a readable file")
    return a


def read_quantization_config(out):
    path = os.path.join(out, "config.json")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise Usage(f"cannot read {path}: {last_line(e)}")
    qc = cfg.get("quantization_config") if isinstance(cfg, dict) else None
    if qc is None:
        raise Usage(f"{path} has no quantization_config: this recipe (e.g. nf4 / int4-cpu) is not loadable "
                    "by transformers; only torchao-format outputs are checkable")
    method = qc.get("quant_method") if isinstance(qc, dict) else None
    if method != "torchao":
        raise Usage(f"{path}: quantization_config.quant_method is {method!r}, not 'torchao'; hf_check only "
                    "checks torchao checkpoints")
    qt = qc.get("quant_type")
    if not (isinstance(qt, dict) and isinstance(qt.get("default"), dict) and "_type" in qt["default"]):
        raise Usage(f"{path}: quantization_config.quant_type is not {{'default': {{'_type': ..., '_data': ...}}}} "
                    "as transformers writes it")
    return qc


def config_types(node):
    """Every `_type` in a serialized torchao config (FqnToConfig nests per-module configs)."""
    if isinstance(node, dict):
        t = node.get("_type")
        yield from ([t] if isinstance(t, str) else [])
        for v in node.values():
            yield from config_types(v)
    elif isinstance(node, list):
        for v in node:
            yield from config_types(v)


# ---------------------------------------------------------------------------------------------- env quieting


class Captured(logging.Handler):
    """Keeps transformers' log records (load reports) instead of printing them."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        try:
            self.records.append(record.getMessage())
        except Exception:
            pass

    def take(self):
        r, self.records = self.records, []
        return r


def quiet_imports():
    # torchao's and torch's import-time chatter is not about the checkpoint.
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import torch  # noqa: F401
    import torchao  # noqa: F401
    import transformers
    from transformers.utils import logging as tlog

    tlog.disable_progress_bar()
    tlog.disable_default_handler()
    captured = Captured()
    tlog.get_logger("transformers").addHandler(captured)
    tlog.set_verbosity_warning()
    return captured


def expand_braces(key):
    """transformers' report folds layer numbers: model.layers.{0, 1}.x -> model.layers.0.x, model.layers.1.x."""
    import itertools
    import re

    parts = re.split(r"\{([^{}]*)\}", key)
    choices = [[p] if k % 2 == 0 else [c.strip() for c in p.split(",")] for k, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def conversion_details(messages):
    """A digest of the load report transformers logs before raising: which weights failed their conversion
    (torchao deserialization) with which exception, and which it then reported missing."""
    import re

    failed, missing, key = {}, [], None
    for m in messages:
        for line in m.splitlines():
            s = line.strip()
            row = [c.strip() for c in s.split("|")]
            if len(row) >= 2 and row[1] in ("CONVERSION", "MISSING", "UNEXPECTED", "MISMATCH"):
                names = expand_braces(row[0])
                if row[1] == "CONVERSION":
                    key = names
                else:
                    missing += [f"{n} {row[1]}" for n in names]
            elif key and re.match(r"^[A-Za-z_.]*(Error|Exception)\b", s) and not s.startswith("Error"):
                failed.setdefault(s[:200], []).extend(key)
                key = None
    parts = [f"{len(v)} weights failed to convert with {k}: {listed(v)}" for k, v in failed.items()]
    if missing and not failed:
        parts.append(f"load report: {listed(missing)}")
    return parts


# ---------------------------------------------------------------------------------------------- comparisons


def version_line():
    import torch
    import torchao
    import transformers

    return f"torch {torch.__version__}, transformers {transformers.__version__}, torchao {torchao.__version__}"


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def kernels_line():
    """What decides CPU logits bit for bit besides the weights: the ATen vector ISA and oneDNN's."""
    import torch

    amx = sorted(f for f in cpu_flags() if f.startswith("amx"))
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return (f"cpu kernels: ATen {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"
            + (f", cpu has {'/'.join(amx)}" if amx else "")
            + (f", ONEDNN_MAX_CPU_ISA={isa}" if isa else ""))


def is_subclass_tensor(t):
    import torch

    return isinstance(t, torch.Tensor) and type(t) not in (torch.Tensor, torch.nn.Parameter)


def tensors_of(model):
    """name -> tensor for every parameter and buffer, tied ones under each name."""
    d = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        d[n] = p
    for n, b in model.named_buffers(remove_duplicate=False):
        d[n] = b
    return d


def flat_bytes(t):
    import torch

    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.contiguous().reshape(-1)
    return t.view(torch.uint8).reshape(t.numel(), t.element_size()) if t.numel() else t.view(torch.uint8)


def diff_plain(a, b):
    """None when a and b are the same dtype, shape and bits; else a short description."""
    import torch

    if a.dtype != b.dtype:
        return f"dtype {b.dtype} in OUT, {a.dtype} in reference"
    if tuple(a.shape) != tuple(b.shape):
        return f"shape {tuple(b.shape)} in OUT, {tuple(a.shape)} in reference"
    if a.numel() == 0:
        return None
    ba, bb = flat_bytes(a), flat_bytes(b)
    if torch.equal(ba, bb):
        return None
    n = int((ba != bb).any(dim=1).sum())
    msg = f"{n} of {a.numel()} elements differ"
    try:
        fa, fb = a.detach().cpu().double(), b.detach().cpu().double()
        msg += f", max abs diff {(fa - fb).abs().max().item():.6g}"
    except Exception:
        pass
    return msg


def plain_value(x):
    """Tuples to lists, recursively: a JSON round trip (torchao's safetensors metadata) turns block_size's
    tuple into a list, which is the same value."""
    if isinstance(x, (list, tuple)):
        return [plain_value(v) for v in x]
    if isinstance(x, dict):
        return {k: plain_value(v) for k, v in x.items()}
    return x


def attrs_equal(x, y):
    x, y = plain_value(x), plain_value(y)
    try:
        return type(x) is type(y) and bool(x == y)
    except Exception:
        return repr(x) == repr(y)


def stored_name(name, inner):
    """How transformers/torchao name an inner tensor in the shards: a.b.weight + qdata -> a.b._weight_qdata."""
    mod, _, leaf = name.rpartition(".")
    return f"{mod}._{leaf}_{inner}" if mod else f"_{leaf}_{inner}"


def compare_subclass(name, ref, out, problems):
    """Appends (stored tensor name, message) for each difference between two tensor-subclass weights."""
    if type(ref) is not type(out):
        problems.append((name, f"{type(out).__name__} in OUT, {type(ref).__name__} in reference"))
        return
    if ref.dtype != out.dtype or tuple(ref.shape) != tuple(out.shape):
        problems.append((name, f"outer {out.dtype} {tuple(out.shape)} in OUT, {ref.dtype} {tuple(ref.shape)} "
                               "in reference"))
    rnames, rattrs = ref.__tensor_flatten__()
    onames, oattrs = out.__tensor_flatten__()
    if list(rnames) != list(onames):
        problems.append((name, f"inner tensors {list(onames)} in OUT, {list(rnames)} in reference"))
    rattrs = rattrs if isinstance(rattrs, dict) else {"ctx": rattrs}
    oattrs = oattrs if isinstance(oattrs, dict) else {"ctx": oattrs}
    for k in sorted(set(rattrs) | set(oattrs)):
        if k not in rattrs or k not in oattrs or not attrs_equal(rattrs[k], oattrs[k]):
            problems.append((name, f"attribute {k}: {oattrs.get(k, '<absent>')!r} in OUT, "
                                   f"{rattrs.get(k, '<absent>')!r} in reference"))
    for inner in rnames:
        if inner not in onames:
            continue
        ri, oi = getattr(ref, inner), getattr(out, inner)
        if is_subclass_tensor(ri) or is_subclass_tensor(oi):
            compare_subclass(f"{name}.{inner}", ri, oi, problems)
            continue
        d = diff_plain(ri, oi)
        if d:
            problems.append((stored_name(name, inner), d))


def check_weights(rep, ref_model, out_model, shard_of):
    ref, out = tensors_of(ref_model), tensors_of(out_model)
    where = lambda n: f" [{shard_of[n]}]" if n in shard_of else ""  # noqa: E731

    # 4. the same weights quantized
    qref = {n for n, t in ref.items() if is_subclass_tensor(t)}
    qout = {n for n, t in out.items() if is_subclass_tensor(t)}
    for n in sorted(qref - qout):
        rep.fail(f"{n}: quantized ({type(ref[n]).__name__}) in reference, "
                 + (f"plain {out[n].dtype} in OUT" if n in out else "absent from OUT"))
    for n in sorted(qout - qref):
        rep.fail(f"{n}: quantized ({type(out[n]).__name__}) in OUT, "
                 + (f"plain {ref[n].dtype} in reference" if n in ref else "absent from reference"))
    if qref == qout:
        kinds = sorted({type(ref[n]).__name__ for n in qref})
        rep.ok(f"same {len(qref)} quantized weights in OUT and reference ({', '.join(kinds) or 'none'})")
    for n in sorted(set(ref) - set(out) - qref):
        rep.fail(f"{n}: in reference, absent from OUT")
    for n in sorted(set(out) - set(ref) - qout):
        rep.fail(f"{n}: in OUT, absent from reference")

    # 3. every tensor identical
    bad = set()
    nq = np = 0
    for n in sorted(set(ref) & set(out)):
        r, o = ref[n], out[n]
        if is_subclass_tensor(r) and is_subclass_tensor(o):
            nq += 1
            problems = []
            compare_subclass(n, r, o, problems)
        elif not is_subclass_tensor(r) and not is_subclass_tensor(o):
            np += 1
            d = diff_plain(r, o)
            problems = [(n, d)] if d else []
        else:
            continue  # reported above
        for stored, msg in problems:
            rep.fail(f"{stored}{where(stored)}: {msg}")
        if problems:
            bad.add(n)
    total = nq + np
    if bad:
        rep.fail(f"tensors: {len(bad)} of {total} differ ({nq} quantized, {np} plain compared): {listed(bad)}")
    else:
        rep.ok(f"tensors: all {total} compared identical bit for bit ({nq} quantized with every inner tensor and "
               f"attribute, {np} plain parameters/buffers)")


def shard_map(out):
    try:
        with open(os.path.join(out, "model.safetensors.index.json")) as f:
            return dict(json.load(f).get("weight_map", {}))
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------------------------------------- logits


def read_logits_file(path):
    """(prompt ids as a [1, n] int64 tensor, logits tensor, where the prompt came from)."""
    import torch
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        keys = set(f.keys())
        meta = f.metadata() or {}
        if "logits" not in keys:
            raise ValueError(f"{path} has no 'logits' tensor (has: {sorted(keys)})")
        logits = f.get_tensor("logits")
        if "prompt" in keys:
            prompt, source = f.get_tensor("prompt"), "tensor 'prompt'"
        elif "prompt" in meta:
            prompt, source = torch.tensor(json.loads(meta["prompt"]), dtype=torch.long), "metadata 'prompt'"
        else:
            raise ValueError(f"{path} has neither a 'prompt' tensor nor a 'prompt' metadata entry")
    prompt = prompt.to(torch.long)
    if prompt.dim() == 1:
        prompt = prompt.unsqueeze(0)
    return prompt, logits, source


def builtin_prompt(vocab):
    import torch

    # 1 (bos in Llama-style vocabularies), then ids spread over the vocabulary; all below vocab_size.
    ids = [1] + [(7 + 37 * i) % vocab for i in range(BUILTIN_PROMPT_LEN - 1)]
    return torch.tensor([ids], dtype=torch.long)


def logits_of(model, ids):
    import torch

    with torch.inference_mode():
        return model(input_ids=ids.to(model.device)).logits.detach().cpu()


def compare_logits(rep, label, got, want, hint=""):
    if tuple(got.shape) != tuple(want.shape):
        rep.fail(f"logits vs {label}: shape {tuple(got.shape)} from OUT, {tuple(want.shape)} expected")
        return
    cast = ""
    if got.dtype != want.dtype:
        cast = f", OUT's {got.dtype} cast to {want.dtype}"
        got = got.to(want.dtype)
    import torch

    if torch.equal(got, want):
        rep.ok(f"logits vs {label}: identical ({'x'.join(map(str, want.shape))} {want.dtype}{cast})")
    else:
        diff = (got.double() - want.double()).abs()
        n = int((got != want).sum())
        rep.fail(f"logits vs {label}: {n} of {want.numel()} differ, max abs diff {diff.max().item():.6g}{cast}"
                 + hint)


# ---------------------------------------------------------------------------------------------- vLLM


def check_vllm(rep, out, ids, hf_first, explicit, cuda):
    try:
        import vllm  # noqa: F401
    except Exception as e:
        if explicit and not isinstance(e, ImportError):
            rep.fail(f"vllm: import failed: {last_line(e)}")
        else:
            rep.skip("vllm not installed" if isinstance(e, ImportError) else f"vllm import failed: {last_line(e)}")
        return
    if not explicit and not cuda:
        rep.skip("vllm is installed but there is no CUDA device (pass --vllm to try anyway)")
        return
    try:
        from vllm import LLM, SamplingParams

        llm = LLM(model=out, skip_tokenizer_init=True, enforce_eager=True, gpu_memory_utilization=0.3)
        sp = SamplingParams(temperature=0.0, max_tokens=4, logprobs=1, detokenize=False)
        res = llm.generate([{"prompt_token_ids": ids[0].tolist()}], sp)
        o = res[0].outputs[0]
        tokens = list(o.token_ids)
        first_lp = o.logprobs[0] if o.logprobs else None
        top = max(first_lp.items(), key=lambda kv: kv[1].logprob)[0] if first_lp else tokens[0]
    except Exception as e:
        rep.fail(f"vllm: loading/generating with OUT failed: {last_line(e)}")
        return
    if top == hf_first:
        rep.ok(f"vllm: first token {top} = transformers' argmax (greedy tokens {tokens})")
    else:
        rep.fail(f"vllm: first-token logprob argmax {top}, transformers' argmax {hf_first} (greedy tokens {tokens})")


# ---------------------------------------------------------------------------------------------- main


def load(captured, path, **kw):
    """(model, loading_info) or raises; the load report transformers logs is kept in captured."""
    from transformers import AutoModelForCausalLM

    captured.take()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoModelForCausalLM.from_pretrained(path, output_loading_info=True, **kw)


def load_report_problems(info):
    probs = []
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        v = info.get(key) or ()
        if v:
            names = [k[0] if isinstance(k, tuple) else k for k in v]
            probs.append(f"{len(names)} {key.replace('_', ' ')}: {listed(names)}")
    if info.get("error_msgs"):
        probs.append(f"errors: {'; '.join(info['error_msgs'])[:300]}")
    return probs


def run(a):
    started = time.time()
    qc = read_quantization_config(a.out)  # Usage on the config problems that make OUT unloadable

    captured = quiet_imports()
    import torch
    from transformers import TorchAoConfig

    rep = Report()
    print(f"versions: {version_line()}", flush=True)
    rep.note(kernels_line())
    types = list(config_types(qc["quant_type"]["default"]))
    print(f"quant_type: {qc['quant_type']['default']['_type']}", flush=True)

    needs = [t for t in types if t in CUDA_ONLY]
    cuda = torch.cuda.is_available()
    if needs and not cuda:
        rep.skip(f"{needs[0]}: {CUDA_ONLY[needs[0]]}, and torch sees no CUDA device here; not checkable on this "
                 "machine (exit 4)")
        return EXIT_UNCHECKABLE
    device = "cuda" if needs else "cpu"

    # 1. OUT loads as is
    t0 = time.time()
    try:
        out_model, info = load(captured, a.out, device_map=device)
    except Exception as e:
        details = conversion_details(captured.take())
        rep.fail(f"transformers cannot load OUT: {last_line(e)}"
                 + (f" [{'; '.join(details)}]" if details else ""))
        return finish(rep, started)
    probs = load_report_problems(info)
    if probs:
        for p in probs:
            rep.fail(f"OUT load report: {p}")
    else:
        rep.ok(f"OUT loads with from_pretrained(device_map={device!r}) as {type(out_model).__name__}, clean load "
               f"report ({time.time() - t0:.2f} s)")

    # 2. the reference: INPUT quantized in process with OUT's own config
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            tao = TorchAoConfig.from_dict(qc)
        for x in w:
            rep.note(f"rebuilding the torchao config: {x.message}")
    except Exception as e:
        rep.fail(f"TorchAoConfig.from_dict on OUT's quantization_config: {last_line(e)}")
        return finish(rep, started)
    rep.ok(f"quantization_config rebuilt: {tao.quant_type!r}"[:400])
    t0 = time.time()
    try:
        ref_model, rinfo = load(captured, a.input, quantization_config=tao, device_map=device)
    except Exception as e:
        rep.fail(f"quantizing INPUT in process failed: {last_line(e)}")
        return finish(rep, started)
    for p in load_report_problems(rinfo):
        rep.note(f"INPUT load report: {p}")
    rep.ok(f"INPUT quantized in process as the reference ({time.time() - t0:.2f} s)")

    # 3 + 4. weights
    check_weights(rep, ref_model, out_model, shard_map(a.out))

    # 5. logits
    vocab = getattr(out_model.config.get_text_config(), "vocab_size", None)
    expected = None
    if a.logits:
        try:
            ids, expected, source = read_logits_file(a.logits)
        except Exception as e:
            rep.fail(f"--logits {a.logits}: {last_line(e)}")
            ids, source = None, None
        if ids is not None and vocab and int(ids.max()) >= vocab:
            rep.fail(f"--logits prompt has ids up to {int(ids.max())}, vocab_size is {vocab}")
            ids = None
        if ids is not None:
            rep.note(f"prompt: {ids.shape[1]} token ids from the {source} of {a.logits}")
    else:
        ids = builtin_prompt(vocab or 32)
        rep.note(f"prompt: built-in, {ids.shape[1]} token ids {ids[0].tolist()}")
    hf_first = None
    if ids is not None:
        try:
            got = logits_of(out_model, ids)
            want = logits_of(ref_model, ids)
            hf_first = int(got[0, -1].float().argmax())
            compare_logits(rep, "reference model", got, want)
            same = None
            if a.same_as:
                same_model, _ = load(captured, a.same_as, device_map=device)
                check_weights(rep, same_model, out_model, shard_map(a.out))
                same = logits_of(same_model, ids)
                compare_logits(rep, f"{a.same_as} loaded here", got, same)
                del same_model
            if expected is not None:
                if same is not None and torch.equal(got, same) and not torch.equal(same, expected):
                    # The oracle is transformers' own output; its file is only as portable as the CPU kernels.
                    rep.note(f"logits vs {os.path.basename(a.logits)}: this machine's kernels do not reproduce the "
                             f"file even for {a.same_as} itself; OUT's logits equal that directory's bit for bit")
                else:
                    same_as_ref = torch.equal(got, want)
                    hint = ("; OUT's logits equal the in-process reference's, so the file was made with other "
                            "kernels than this machine's (CPU ISA, oneDNN: see the cpu kernels line; e.g. "
                            "ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 on an AMX CPU)") if same_as_ref else ""
                    compare_logits(rep, os.path.basename(a.logits), got, expected, hint)
        except Exception as e:
            rep.fail(f"forward pass failed: {last_line(e)}")

    # 6. vLLM, with the transformers models freed first (it wants the GPU memory)
    del out_model, ref_model
    if cuda:
        import gc

        gc.collect()
        torch.cuda.empty_cache()
    if ids is not None and hf_first is not None:
        check_vllm(rep, a.out, ids, hf_first, a.vllm, cuda)
    elif a.vllm:
        rep.fail("vllm: not run, there are no transformers logits to compare with")
    return finish(rep, started)


def finish(rep, started):
    verdict = "ok" if rep.failed == 0 else "FAIL"
    print(f"summary: {verdict}: {rep.passed} checks passed, {rep.failed} failed ({time.time() - started:.1f} s)",
          flush=True)
    return EXIT_OK if rep.failed == 0 else EXIT_FAIL


def main(argv=None):
    try:
        a = parse(sys.argv[1:] if argv is None else argv)
        return run(a)
    except Usage as e:
        print(f"hf_check: {e}", flush=True)
        return EXIT_USAGE
    except Exception as e:  # a bug here, not a verdict on OUT: one line, the traceback on stderr
        traceback.print_exc()
        print(f"FAIL: hf_check itself failed: {last_line(e)}", flush=True)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
