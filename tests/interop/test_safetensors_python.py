#!/usr/bin/env python3
"""Interop with Hugging Face's reference `safetensors` package (driven by
tests/interop/test_io_safetensors_interop.cpp):

  test_safetensors_python.py check DIR   verify the files the engine wrote into DIR:
      names, dtypes, shapes, bytes and metadata through safetensors.numpy / safe_open
      and safetensors.deserialize, and byte-identity with safetensors.serialize
      wherever the metadata has at most one key (the reference orders metadata keys
      by hash, so larger metadata can differ in key order only)
  test_safetensors_python.py write DIR   write reference files into DIR: every dtype
      numpy has (incl. U16 U32 U64 I8 I16) with metadata via safetensors.numpy.save_file,
      BF16 and F8_E4M3 via safetensors.serialize_file

Both sides build tensors from one recipe (value(dtype, i) below, mirrored in the C++
test). Exit status: 0 pass, 1 fail, 77 the package cannot be imported (skip).
"""
import math
import struct
import sys

try:
    import numpy as np
    import safetensors
    import safetensors.numpy as stnp
    from safetensors import TensorSpec
except ImportError as e:  # the C++ side reports the skip loudly
    print("SKIP: cannot import the reference safetensors package / numpy: %s" % e, file=sys.stderr)
    sys.exit(77)

NP = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I32": np.int32, "I64": np.int64,
      "U8": np.uint8, "BOOL": np.bool_, "U16": np.uint16, "U32": np.uint32, "U64": np.uint64,
      "I8": np.int8, "I16": np.int16}
SPEC = {"F32": "float32", "F64": "float64", "F16": "float16", "BF16": "bfloat16", "I32": "int32",
        "I64": "int64", "U8": "uint8", "BOOL": "bool", "F8_E4M3": "float8_e4m3fn"}


def value(dtype, i):
    """Element i of a recipe tensor (floats: -1, -0, inf, nan, then steps of 0.25)."""
    if dtype in ("F32", "F64", "F16", "BF16"):
        return [-1.0, -0.0, math.inf, math.nan][i] if i < 4 else (i - 4) * 0.25 - 0.5
    if dtype == "I32":
        return (i - 3) * 1000003
    if dtype == "I64":
        return (i - 3) * 1000003 * 4294967297
    if dtype == "U8":
        return (i * 37) % 256
    if dtype == "BOOL":
        return i % 3 == 0
    if dtype == "U16":
        return (i * 4099) % 65536
    if dtype == "U32":
        return (i * 2654435761) % 2 ** 32
    if dtype == "U64":
        return (i * 1140071481932319848) % 2 ** 63
    if dtype == "I8":
        return (i * 37) % 256 - 128
    if dtype == "I16":
        return (i * 4099) % 65536 - 32768
    raise ValueError(dtype)


def recipe_bytes(dtype, shape):
    n = math.prod(shape)
    if dtype == "BF16":  # the top half of float32 (exact for the recipe's values)
        f32 = np.array([value(dtype, i) for i in range(n)], dtype=np.float32)
        return (f32.view(np.uint32) >> 16).astype("<u2").tobytes()
    return np.array([value(dtype, i) for i in range(n)], dtype=NP[dtype]).reshape(shape).astype(
        np.dtype(NP[dtype]).newbyteorder("<")).tobytes()


# name -> (dtype, shape): what the engine writes (engine_*.safetensors)
ENGINE = {
    "f32": ("F32", [2, 3]), "f64": ("F64", [2, 3]), "bf16": ("BF16", [2, 3]), "f16": ("F16", [2, 3]),
    "i32": ("I32", [2, 3]), "i64": ("I64", [2, 3]), "u8": ("U8", [2, 3]), "bool": ("BOOL", [2, 3]),
    "scalar_f64": ("F64", []), "empty_f32": ("F32", [0]), "empty_i64": ("I64", [2, 0, 3]),
    "nämé/😀": ("F32", [1, 1, 5]),
}
ENGINE_FILES = {  # file -> metadata
    "engine_all.safetensors": {"format": "pt", "note": "é \"quoted\"\n\ttab", "empty": ""},
    "engine_one_meta.safetensors": {"format": "pt"},
    "engine_no_meta.safetensors": None,
}


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(d):
    for fname, meta in ENGINE_FILES.items():
        path = "%s/%s" % (d, fname)
        raw = open(path, "rb").read()
        # 1. the raw view: every dtype, including BF16 which numpy lacks
        got = dict(safetensors.deserialize(raw))
        if set(got) != set(ENGINE):
            fail("%s: names %s != %s" % (fname, sorted(got), sorted(ENGINE)))
        for name, (dtype, shape) in ENGINE.items():
            t = got[name]
            if t["dtype"] != dtype or list(t["shape"]) != shape:
                fail("%s: %r is %s %s, expected %s %s" % (fname, name, t["dtype"], t["shape"], dtype, shape))
            if bytes(t["data"]) != recipe_bytes(dtype, shape):
                fail("%s: %r bytes differ: %s vs %s" % (fname, name, bytes(t["data"]).hex(),
                                                        recipe_bytes(dtype, shape).hex()))
        # 2. the numpy API (all but BF16) and metadata through safe_open
        with safetensors.safe_open(path, framework="np") as f:
            if (f.metadata() or None) != meta:
                fail("%s: metadata %r != %r" % (fname, f.metadata(), meta))
            for name, (dtype, shape) in ENGINE.items():
                if dtype == "BF16":
                    continue
                a = f.get_tensor(name)
                if a.dtype != np.dtype(NP[dtype]) or list(a.shape) != shape:
                    fail("%s: numpy %r is %s %s" % (fname, name, a.dtype, a.shape))
                if a.tobytes() != recipe_bytes(dtype, shape):
                    fail("%s: numpy %r bytes differ" % (fname, name))
        if meta is None or len(meta) <= 1:
            keep = []
            specs = {}
            for name, (dtype, shape) in ENGINE.items():
                buf = np.frombuffer(recipe_bytes(dtype, shape) or b"\0", dtype=np.uint8).copy()
                keep.append(buf)
                specs[name] = TensorSpec(dtype=SPEC[dtype], shape=shape, data_ptr=buf.ctypes.data,
                                         data_len=len(recipe_bytes(dtype, shape)))
            ref = bytes(safetensors.serialize(specs, metadata=meta))
            if ref != raw:
                fail("%s: not byte-identical to the reference writer:\n engine %r\n ref    %r" %
                     (fname, raw[:400], ref[:400]))
            print("%s: byte-identical to safetensors.serialize (%d bytes)" % (fname, len(raw)))
        print("%s: %d tensors, names/dtypes/shapes/bytes/metadata OK" % (fname, len(ENGINE)))
    print("engine -> python: OK (safetensors %s, numpy %s)" % (safetensors.__version__, np.__version__))


# name -> (dtype, shape): what Python writes (python_*.safetensors)
PYTHON = {"p_" + d.lower(): (d, [3, 2]) for d in NP}
PYTHON.update({"p_scalar_i16": ("I16", []), "p_empty_u32": ("U32", [0, 4])})
PYTHON_META = {"source": "python", "ü": "ß 😀"}


def write(d):
    arrays = {}
    for name, (dtype, shape) in PYTHON.items():
        arrays[name] = np.frombuffer(recipe_bytes(dtype, shape), dtype=np.dtype(NP[dtype]).newbyteorder("<")) \
            .reshape(shape)
    stnp.save_file(arrays, "%s/python_all.safetensors" % d, metadata=PYTHON_META)
    for fname, dtype, shape in (("python_bf16.safetensors", "BF16", [2, 3]),
                                ("python_f8.safetensors", "F8_E4M3", [4])):
        data = recipe_bytes(dtype, shape) if dtype == "BF16" else bytes([0x38, 0x40, 0xB8, 0x00])
        buf = np.frombuffer(data, dtype=np.uint8).copy()
        safetensors.serialize_file({"x": TensorSpec(dtype=SPEC[dtype], shape=shape, data_ptr=buf.ctypes.data,
                                                    data_len=len(data))}, "%s/%s" % (d, fname),
                                   metadata={"dtype": dtype})
    print("python -> engine: wrote %d tensors + bf16 + f8 files to %s" % (len(PYTHON), d))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("check", "write"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    (check if sys.argv[1] == "check" else write)(sys.argv[2])
