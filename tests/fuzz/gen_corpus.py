#!/usr/bin/env python3
"""Writes the libFuzzer seed corpus for tests/fuzz/fuzz_safetensors.cpp into
tests/fuzz/corpus/: one valid file per dtype (plus the format's test vector and a few
edge cases), named valid_*, and one file per rejection class of the reader, named
reject_*. tests/test_io_safetensors_reject.cpp checks that every valid_* file loads
(with widening) and every reject_* file is refused. Standard library only:
    python3 tests/fuzz/gen_corpus.py
"""
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

# The reference writer's order: its dtype enum, descending, then the name.
ORDER = ["BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0",
         "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64"]


def raw(header: bytes, data: bytes = b"", n=None) -> bytes:
    """8-byte little-endian N (len(header) unless given) + header + data."""
    return struct.pack("<Q", len(header) if n is None else n) + header + data


def st(tensors, metadata=None) -> bytes:
    """A file laid out as the reference writes it; tensors = [(name, dtype, shape, bytes)]."""
    tensors = sorted(tensors, key=lambda t: (-ORDER.index(t[1]), t[0].encode()))
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return raw(text, data)


def entry(name, dtype, shape, begin, end):
    return '"%s":{"dtype":"%s","shape":%s,"data_offsets":[%s,%s]}' % (name, dtype, shape, begin, end)


def hdr(*entries) -> bytes:
    return ("{" + ",".join(entries) + "}").encode()


def main():
    os.makedirs(OUT, exist_ok=True)
    files = {}
    # ---- valid: one per dtype (engine dtypes and the widened ones), the test vector, edge cases
    f = {
        "F32": struct.pack("<4f", 0.0, -1.5, float("inf"), 3.25),
        "F64": struct.pack("<2d", -0.0, 1e300),
        "BF16": struct.pack("<4H", 0x3F80, 0x8000, 0x7FC1, 0x0001),
        "F16": struct.pack("<4H", 0x3C00, 0x8000, 0x7E01, 0x0001),
        "I32": struct.pack("<2i", -(2 ** 31), 2 ** 31 - 1),
        "I64": struct.pack("<2q", -(2 ** 63), 2 ** 63 - 1),
        "U8": bytes([0, 255, 7]),
        "BOOL": bytes([1, 0, 1]),
        "U16": struct.pack("<2H", 0, 65535),
        "U32": struct.pack("<2I", 0, 2 ** 32 - 1),
        "U64": struct.pack("<2Q", 0, 2 ** 63 - 1),
        "I8": struct.pack("<2b", -128, 127),
        "I16": struct.pack("<2h", -32768, 32767),
    }
    sizes = {"F32": 4, "F64": 8, "BF16": 2, "F16": 2, "I32": 4, "I64": 8, "U8": 1, "BOOL": 1,
             "U16": 2, "U32": 4, "U64": 8, "I8": 1, "I16": 2}
    for dtype, payload in f.items():
        files["valid_%s" % dtype.lower()] = st([("t", dtype, [len(payload) // sizes[dtype]], payload)])
    files["valid_test_vector"] = st([("attn0", "F32", [1, 1, 2, 3], struct.pack("<6f", 0, 1, 2, 3, 4, 5))])
    files["valid_all_dtypes_metadata"] = st(
        [("x_" + d.lower(), d, [len(p) // sizes[d]], p) for d, p in f.items()],
        {"format": "pt", "head.weight": "embed.weight", "note": "é\n\"q\""})
    files["valid_empty"] = st([])
    files["valid_leading_whitespace"] = raw(b" \n{}    ")
    files["valid_scalar_and_zero_sized"] = st(
        [("s", "F32", [], struct.pack("<f", 2.0)), ("z", "F64", [0, 3], b""), ("e", "I64", [2, 0], b"")])

    # ---- reject: one per rejection class
    t4 = b"\0\0\x80\x3f"
    ok = entry("t", "F32", "[1]", 0, 4)
    files["reject_short_file"] = b"\x08\0\0\0\0\0\0"
    files["reject_header_too_large"] = raw(b"{}", n=100_000_001)
    files["reject_header_past_eof"] = raw(b"{}      ", n=64)
    files["reject_header_len_wraps"] = raw(b"{}      ", n=2 ** 64 - 8)
    files["reject_not_utf8"] = raw(b'{"\xff":1}   ')
    files["reject_invalid_json"] = raw(b'{"t":{"dtype":"F32",}}  ')
    files["reject_nul_padding"] = raw(b"{}\0\0\0\0\0\0")
    files["reject_deep_nesting"] = raw(b"[" * 200 + b"]" * 200)
    files["reject_not_object"] = raw(b"[1,2,3] ")
    files["reject_entry_not_object"] = raw(b'{"t":[1]}       ')
    files["reject_missing_field"] = raw(b'{"t":{"dtype":"F32","shape":[1]}}', t4)
    files["reject_extra_field"] = raw(hdr(ok[:-1] + ',"x":0}'), t4)
    files["reject_field_twice"] = raw(hdr(ok[:-1] + ',"shape":[1]}'), t4)
    files["reject_wrong_field_type"] = raw(hdr(entry("t", "F32", '"1"', 0, 4)), t4)
    files["reject_unknown_dtype"] = raw(hdr(entry("t", "F99", "[1]", 0, 4)), t4)
    files["reject_unsupported_dtype"] = raw(hdr(entry("t", "F8_E4M3", "[4]", 0, 4)), t4)
    files["reject_subbyte_not_whole"] = raw(hdr(entry("t", "F4", "[3]", 0, 2)), b"ab")
    files["reject_metadata_not_object"] = raw(b'{"__metadata__":["a"]}')
    files["reject_metadata_value_not_string"] = raw(b'{"__metadata__":{"k":1}}')
    files["reject_metadata_duplicate_key"] = raw(b'{"__metadata__":{"k":"a","k":"b"}}')
    files["reject_negative_number"] = raw(hdr(entry("t", "F32", "[-1]", 0, 4)), t4)
    files["reject_non_integer"] = raw(hdr(entry("t", "F32", "[1.0]", 0, 4)), t4)
    files["reject_number_overflow"] = raw(hdr(entry("t", "F32", "[1]", 0, "18446744073709551620")), t4)
    files["reject_dim_exceeds_int64"] = raw(hdr(entry("t", "F32", "[9223372036854775808,0]", 0, 0)))
    files["reject_count_wraps_to_zero"] = raw(hdr(entry("t", "F32", "[4294967296,4294967296]", 0, 0)))
    files["reject_byte_size_overflow"] = raw(hdr(entry("t", "F64", "[4611686018427387904]", 0, 0)))
    files["reject_size_mismatch"] = raw(hdr(entry("t", "F32", "[2,3]", 0, 20)), b"x" * 20)
    files["reject_end_before_begin"] = raw(hdr(entry("t", "F32", "[1]", 4, 0)), t4)
    files["reject_gap"] = raw(hdr(entry("a", "F32", "[1]", 0, 4), entry("b", "F32", "[1]", 8, 12)), b"x" * 12)
    files["reject_overlap"] = raw(hdr(entry("a", "F32", "[2]", 0, 8), entry("b", "F32", "[2]", 4, 12)), b"x" * 12)
    files["reject_duplicate_names"] = raw(hdr(entry("a", "F32", "[1]", 0, 4), entry("a", "F32", "[1]", 4, 8)),
                                          b"x" * 8)
    files["reject_trailing_bytes"] = raw(hdr(ok), t4 + b"junk")
    files["reject_truncated_data"] = raw(hdr(entry("t", "F32", "[4]", 0, 16)), t4)
    files["reject_bool_byte"] = raw(hdr(entry("b", "BOOL", "[2]", 0, 2)), b"\x01\x02")
    files["reject_too_many_dims"] = raw(hdr(entry("t", "F32", "[1,1,1,1,1,1,1,1,1]", 0, 4)), t4)
    files["reject_u64_too_large"] = raw(hdr(entry("u", "U64", "[1]", 0, 8)), b"\xff" * 8)

    for name in os.listdir(OUT):
        if name.startswith(("valid_", "reject_")):
            os.remove(os.path.join(OUT, name))
    for name, data in sorted(files.items()):
        with open(os.path.join(OUT, name), "wb") as fh:
            fh.write(data)
    print("wrote %d seeds to %s" % (len(files), OUT))


if __name__ == "__main__":
    main()
