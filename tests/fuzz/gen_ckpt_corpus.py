#!/usr/bin/env python3
"""Writes the libFuzzer seed corpus for tests/fuzz/fuzz_checkpoint.cpp into
tests/fuzz/corpus_ckpt/: valid .ckpt files (named valid_*) and one damaged file per
rejection class of io/checkpoint.cpp (named reject_*). Every reject_* file except the
checksum classes carries a correct checksum, so it is refused for its own reason only.
tests/test_io_checkpoint_corpus.cpp checks that every valid_* file loads and every
reject_* file is refused with the message of its class. Standard library only (the
CRC-32 is binascii's, the same as zlib's):
    python3 tests/fuzz/gen_ckpt_corpus.py
"""
import binascii
import json
import os
import struct

from gen_corpus import raw, st

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus_ckpt")
MEMBER = b'"zae.ckpt.checksum":"crc32:'


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def seal(data: bytes) -> bytes:
    """`data` with its checksum digits (after the first checksum member) set to the CRC-32
    of the file read with those digits as zeros."""
    at = data.index(MEMBER) + len(MEMBER)
    zeroed = data[:at] + b"00000000" + data[at + 8:]
    return zeroed[:at] + b"%08x" % binascii.crc32(zeroed) + zeroed[at + 8:]


def ckpt(tensors=(), state=None, user=None, drop=(), override=None, sealed=True) -> bytes:
    """A checkpoint as io::serialize_checkpoint lays it out; `drop` removes metadata keys,
    `override` replaces some; `sealed` fills in the checksum."""
    md = {"format": "zae-ckpt", "zae.ckpt.version": "1",
          "zae.ckpt.state": dumps({} if state is None else state),
          "zae.ckpt.checksum": "crc32:00000000"}
    for key, value in (user or {}).items():
        md["user." + key] = value
    md.update(override or {})
    for key in drop:
        del md[key]
    data = st(list(tensors), dict(sorted(md.items())))
    return seal(data) if sealed and MEMBER in data else data


def edit_header(data: bytes, edit) -> bytes:
    """`data` with its header text replaced by edit(text), re-padded and re-sized."""
    n = struct.unpack("<Q", data[:8])[0]
    text = edit(data[8:8 + n].rstrip(b" "))
    return raw(text + b" " * (-len(text) % 8), data[8 + n:])


def f32(*values) -> bytes:
    return struct.pack("<%df" % len(values), *values)


# The state JSON restore_training_state reads (trainer/training_state.h), for a tiny model.
TRAINER_STATE = {
    "progress": {"epoch": 3, "step": 17},
    "mode": "train",
    "best": {"loss": 0.125, "epoch": 2},
    "loop": {"skipped_batches": 0, "optimizer_steps": 16, "accumulated": 1, "early_best": "inf",
             "early_bad_epochs": 0, "loss_history_train": [0.5, 0.25, 0.1875],
             "loss_history_test": [0.625, 0.375], "in_epoch": True,
             "epoch_values": {"loss": [0.2, 0.1875], "acc": [0.5, "nan"]},
             "pending_grads": ["w"]},
    "rng": {"default": {"seed": "18446744073709551615", "offset": "4096"}},
    "loader": {"seed": "42", "epoch": 2, "batches_consumed": 1, "batches_per_epoch": 4},
    "optimizer": {"name": "AdamW", "groups": [{"options": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999,
                                                           "eps": 1e-08, "weight_decay": 0.01},
                                               "params": [0, 1]}]},
    "scheduler": {"name": "CosineAnnealingLR", "state": {"last_epoch": [16.0], "base_lrs": [0.001]}},
    "extras": {"state_manager": {"best": [{"epoch": 2, "loss": 0.125, "path": "best-epoch2.ckpt"}]}},
}
TRAINER_TENSORS = [
    ("model.w", "F32", [2, 2], f32(0.5, -1.0, 2.0, 0.0)),
    ("model.b", "F32", [2], f32(0.25, -0.25)),
    ("best.w", "F32", [2, 2], f32(0.5, -1.0, 2.0, 1.0)),
    ("best.b", "F32", [2], f32(0.0, 0.0)),
    ("grad.w", "F32", [2, 2], f32(0.01, 0.02, -0.03, 0.0)),
    ("optim.0.exp_avg", "F32", [2, 2], f32(0.1, 0.2, 0.3, 0.4)),
    ("optim.0.exp_avg_sq", "F32", [2, 2], f32(0.01, 0.04, 0.09, 0.16)),
    ("optim.0.step", "I64", [], struct.pack("<q", 16)),
    ("optim.1.exp_avg", "F32", [2], f32(0.0, 1.0)),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    files = {}
    # ---- valid
    files["valid_empty"] = ckpt()
    files["valid_trainer_state"] = ckpt(TRAINER_TENSORS, TRAINER_STATE, {"run": "fuzz-seed", "note": "é\n\"q\""})
    files["valid_all_dtypes"] = ckpt(
        [("f32", "F32", [2], f32(1.5, float("-inf"))), ("f64", "F64", [1], struct.pack("<d", 1e300)),
         ("bf16", "BF16", [2], struct.pack("<2H", 0x3F80, 0x7FC1)), ("f16", "F16", [1], struct.pack("<H", 0x3C00)),
         ("i32", "I32", [1], struct.pack("<i", -7)), ("i64", "I64", [2, 0], b""),
         ("u8", "U8", [3], bytes([0, 128, 255])), ("bool", "BOOL", [2], bytes([1, 0]))],
        {"numbers": [0, -0.0, 1e-300, 1.7976931348623157e308, "nan", "inf", "-inf"], "big": 18446744073709551615,
         "neg": -9223372036854775808, "flag": False, "none": None, "text": "\u00e9\U0001F600"})
    files["valid_state_missing_keys"] = ckpt(TRAINER_TENSORS[:2], {"progress": {"epoch": 1}, "mode": "test"})
    files["valid_state_wrong_types"] = ckpt(
        [], {"progress": {"epoch": "3", "step": 1.5}, "best": {"loss": "fast", "epoch": -1},
             "loop": {"in_epoch": 1, "loss_history_train": [1, "x"], "epoch_values": []},
             "rng": {"default": {"seed": "-1", "offset": "99999999999999999999"}}})

    # ---- reject: the checksum classes
    good = files["valid_trainer_state"]
    at = good.index(MEMBER) + len(MEMBER)
    flipped = b"%08x" % (int(good[at:at + 8], 16) ^ 1)
    files["reject_checksum_mismatch"] = good[:at] + flipped + good[at + 8:]
    last = len(good) - 1
    files["reject_data_modified"] = good[:last] + bytes([good[last] ^ 0x40]) + good[last + 1:]
    files["reject_checksum_uppercase"] = ckpt(override={"zae.ckpt.checksum": "crc32:ABCDEF01"}, sealed=False)
    files["reject_checksum_missing"] = ckpt(TRAINER_TENSORS[:1], drop=["zae.ckpt.checksum"])
    files["reject_checksum_short"] = ckpt(override={"zae.ckpt.checksum": "crc32:0000000"}, sealed=False)
    files["reject_checksum_not_crc32"] = ckpt(override={"zae.ckpt.checksum": "md5:00000000"}, sealed=False)
    files["reject_checksum_member_spaced"] = edit_header(
        ckpt(TRAINER_TENSORS[:1]), lambda h: h.replace(b'"zae.ckpt.checksum":', b'"zae.ckpt.checksum" :'))
    # ---- reject: format and version (checksums correct)
    files["reject_not_a_checkpoint"] = ckpt(TRAINER_TENSORS[:1], override={"format": "pt"})
    files["reject_format_missing"] = ckpt(drop=["format"])
    files["reject_version_missing"] = ckpt(drop=["zae.ckpt.version"])
    files["reject_version_newer"] = ckpt(override={"zae.ckpt.version": "2"})
    files["reject_version_zero"] = ckpt(override={"zae.ckpt.version": "0"})
    files["reject_version_not_integer"] = ckpt(override={"zae.ckpt.version": "1.0"})
    # ---- reject: the state JSON (checksums correct)
    files["reject_state_missing"] = ckpt(TRAINER_TENSORS[:1], drop=["zae.ckpt.state"])
    files["reject_state_invalid_json"] = ckpt(override={"zae.ckpt.state": '{"progress":{"epoch":1,}}'})
    files["reject_state_not_object"] = ckpt(override={"zae.ckpt.state": "[1,2]"})
    files["reject_state_deep_nesting"] = ckpt(override={"zae.ckpt.state": '{"a":' + "[" * 100 + "]" * 100 + "}"})
    files["reject_state_duplicate_key"] = ckpt(override={"zae.ckpt.state": '{"mode":"train","mode":"test"}'})
    # ---- reject: the safetensors layout and tensor bytes (checksums correct)
    files["reject_truncated"] = good[:len(good) - 4]
    files["reject_bool_byte"] = ckpt([("model.mask", "BOOL", [2], bytes([1, 2]))], TRAINER_STATE)
    files["reject_unsupported_dtype"] = ckpt([("model.idx", "U16", [2], struct.pack("<2H", 1, 2))])
    files["reject_not_safetensors"] = raw(b"zae-ckpt")

    for name in os.listdir(OUT):
        if name.startswith(("valid_", "reject_")):
            os.remove(os.path.join(OUT, name))
    for name, data in sorted(files.items()):
        with open(os.path.join(OUT, name), "wb") as fh:
            fh.write(data)
    print("wrote %d seeds to %s" % (len(files), OUT))


if __name__ == "__main__":
    main()
