#!/usr/bin/env python3
"""Checks a zae .ckpt with ordinary Python tools only (the reference `safetensors`
package, json, zlib), as io/checkpoint.h promises a user can:
  - safetensors opens it and lists/loads every tensor;
  - metadata: format == "zae-ckpt", a version, the state is JSON text (an object);
  - the checksum: zlib.crc32 of the file with the 8 hex digits after
    '"zae.ckpt.checksum":"crc32:' replaced by '0' equals those digits.
Usage: check_ckpt_python.py FILE EXPECTED_TENSOR_COUNT
Prints the tensor names and the state's progress; exits non-zero on any mismatch."""
import json
import sys
import zlib

from safetensors import safe_open


def main():
    path, want = sys.argv[1], int(sys.argv[2])
    with safe_open(path, framework="numpy") as f:
        md = f.metadata()
        names = list(f.keys())
        for n in names:
            f.get_tensor(n)  # every tensor loads
    assert md["format"] == "zae-ckpt", md.get("format")
    assert int(md["zae.ckpt.version"]) >= 1
    state = json.loads(md["zae.ckpt.state"])
    assert isinstance(state, dict)
    data = bytearray(open(path, "rb").read())
    key = b'"zae.ckpt.checksum":"crc32:'
    at = data.find(key)
    assert at > 0 and data.find(key, at + 1) < 0, "checksum member not found exactly once"
    digits = bytes(data[at + len(key):at + len(key) + 8])
    data[at + len(key):at + len(key) + 8] = b"00000000"
    got = "%08x" % zlib.crc32(bytes(data))
    assert got == digits.decode(), f"crc32 {got} != stored {digits.decode()}"
    assert md["zae.ckpt.checksum"] == "crc32:" + got
    assert len(names) == want, f"{len(names)} tensors, expected {want}"
    print("tensors:", " ".join(sorted(names)))
    print("progress:", state["progress"], "crc32:", got)


if __name__ == "__main__":
    main()
