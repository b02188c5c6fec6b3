# pip install numpy==2.4.6 gguf==0.19.0 safetensors==0.8.0 torch==2.15.0
"""Random cross-check of FuseKit's GGUF dequantizers against gguf-py's `gguf.quants.dequantize`, bit for bit.

Writes into OUT (default: a temp dir):
  <type>.blocks / <type>.f32   random blocks of every block type FuseKit reads (Q4_0, Q4_1, Q5_0, Q5_1,
                               Q8_0, Q2_K..Q6_K), the f16 scale fields drawn from ordinary values and
                               from the extremes (±0, subnormals, the smallest normal, ±65504, ±inf,
                               quiet and signalling NaN); F16 and BF16 hold every one of the 65536 bit
                               patterns. Same layout as Tests/Fixtures/gguf/quant.
  random.gguf                  a file written by gguf.GGUFWriter with tensors of every type and odd
                               shapes (1, 3, 7, 17 rows; one to five blocks per row; 3-D), and
  expected.safetensors         gguf-py's dequantization of each (GGUFReader), f32 by tensor name.
then runs FuseKit's QuantTests (FUSEKIT_QUANT_FIXTURES=OUT) and GGUFTests.testRandomFileFromEnvironment
(FUSEKIT_GGUF_RANDOM=OUT). Every value is compared by its bits, NaN payloads included.

Run (from the repository root, after `swift build --build-tests`):
  /opt/fkvenv/bin/python Tools/checks/gguf_dequant_random.py [--blocks 4000] [--seed 1] [--out DIR] [--no-swift]
"""
import argparse, os, subprocess, sys, tempfile
import numpy as np
import torch
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize
from safetensors.torch import save_file

# Offsets of the f16 scale fields in each block (d, and m / dmin where the type has one).
SCALE_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
# f16 bit patterns at the edges: ±0, smallest and largest subnormal, smallest normal, 1, ±65504, ±inf,
# quiet NaN, signalling NaN, negative NaN.
EXTREMES = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00,
            0x7E00, 0x7C01, 0xFE00]


def name_of(t):
    return t.name.lower().replace("_k", "_K")


def random_blocks(rng, qtype, n):
    _, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n, block_bytes), dtype=np.uint8)
    for off in SCALE_FIELDS[qtype]:
        ordinary = (rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 2, n)).astype(np.float16).view(np.uint16)
        extreme = np.array(EXTREMES, dtype=np.uint16)[rng.integers(len(EXTREMES), size=n)]
        bits = np.where(rng.random(n) < 0.5, extreme, ordinary).astype("<u2")
        raw[:, off:off + 2] = bits.view(np.uint8).reshape(n, 2)
    return raw


def write_blocks(out, rng, n):
    for qtype in SCALE_FIELDS:
        blocks = random_blocks(rng, qtype, n)
        with np.errstate(all="ignore"):
            expected = dequantize(blocks.reshape(-1), qtype).astype("<f4").reshape(-1)
        blocks.tofile(os.path.join(out, name_of(qtype) + ".blocks"))
        expected.tofile(os.path.join(out, name_of(qtype) + ".f32"))
    bits = np.arange(1 << 16, dtype="<u2")
    for qtype in (T.F16, T.BF16):
        bits.tofile(os.path.join(out, name_of(qtype) + ".blocks"))
        with np.errstate(all="ignore"):
            dequantize(bits.view(np.uint8), qtype).astype("<f4").tofile(os.path.join(out, name_of(qtype) + ".f32"))


def write_gguf(out, rng):
    w = gguf.GGUFWriter(os.path.join(out, "random.gguf"), "llama")
    expected = {}
    k = 0
    for qtype in list(SCALE_FIELDS) + [T.F16, T.BF16]:
        block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        for shape in [(1, 1), (3, 1), (7, 3), (17, 5), (2, 3, 2)]:   # rows..., blocks per row
            *outer, per_row = shape
            cols = per_row * block_elems if block_elems > 1 else 3 * per_row + 1   # odd widths for f16/bf16
            rows = int(np.prod(outer))
            if qtype in (T.F16, T.BF16):
                raw = rng.integers(0, 1 << 16, size=rows * cols, dtype=np.uint16).astype("<u2").view(np.uint8)
            else:
                raw = random_blocks(rng, qtype, rows * per_row).reshape(-1)
            raw = raw.reshape(*outer, cols // block_elems * block_bytes)
            name = f"t{k}.{name_of(qtype)}"
            w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)
            k += 1
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    reader = gguf.GGUFReader(os.path.join(out, "random.gguf"))
    for t in reader.tensors:
        shape = [int(x) for x in reversed(t.shape.tolist())]
        with np.errstate(all="ignore"):
            values = dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32).reshape(shape)
        expected[t.name] = torch.from_numpy(np.ascontiguousarray(values))
    save_file(expected, os.path.join(out, "expected.safetensors"))
    return len(expected), sum(v.numel() for v in expected.values())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=4000, help="random blocks per quant type")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-swift", action="store_true", help="only write the files")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="gguf_dequant_random_")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    write_blocks(out, rng, args.blocks)
    tensors, values = write_gguf(out, rng)
    print(f"wrote {out}: {args.blocks} blocks of each of {len(SCALE_FIELDS)} block types, all 65536 f16/bf16 patterns, "
          f"random.gguf with {tensors} tensors ({values} values)")
    if args.no_swift:
        return
    env = dict(os.environ, FUSEKIT_QUANT_FIXTURES=out, FUSEKIT_GGUF_RANDOM=out)
    r = subprocess.run(["swift", "test", "--skip-build", "--filter", "QuantTests|GGUFTests.testRandomFileFromEnvironment"],
                       env=env, capture_output=True, text=True)
    lines = [l for l in (r.stdout + r.stderr).splitlines()
             if "error:" in l or "random.gguf" in l or "Executed" in l]
    print("\n".join(lines[-40:]))
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
