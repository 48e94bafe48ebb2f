"""Reads a TensorBoard log directory with TensorBoard's own loaders and prints what they
found as one line of JSON (tests/loggers/test_tensorboard.cpp compares it with what was
logged). Usage: python3 tb_read.py LOG_DIR

Two loaders, as TensorBoard itself has them:
  event_accumulator.EventAccumulator (size_guidance 0 = keep everything): scalars,
    histograms (HistogramProto fields), tensors (text);
  plugin_event_accumulator.EventAccumulator: the path behind TensorBoard's dashboards,
    where every value is migrated to a tensor (histograms become (k, 3) arrays of
    [left, right, count] buckets).
Non-finite floats are written as the strings "nan", "inf", "-inf" (strict JSON).
"""
import json
import math
import sys

from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing import plugin_event_accumulator as pea
from tensorboard.util import tensor_util


def num(x):
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def main():
    log_dir = sys.argv[1]
    everything = {ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.COMPRESSED_HISTOGRAMS: 0, ea.TENSORS: 0,
                  ea.IMAGES: 0, ea.AUDIO: 0}
    acc = ea.EventAccumulator(log_dir, size_guidance=everything)
    acc.Reload()
    tags = acc.Tags()
    out = {"file_version": acc.file_version, "scalars": {}, "histograms": {}, "texts": {},
           "plugin_histograms": {}, "plugins": {}}
    for tag in tags[ea.SCALARS]:
        out["scalars"][tag] = [[e.step, num(e.value)] for e in acc.Scalars(tag)]
    for tag in tags[ea.HISTOGRAMS]:
        rows = []
        for e in acc.Histograms(tag):
            h = e.histogram_value
            rows.append({"step": e.step, "min": num(h.min), "max": num(h.max), "num": num(h.num),
                         "sum": num(h.sum), "sum_squares": num(h.sum_squares),
                         "bucket_limit": [num(x) for x in h.bucket_limit],
                         "bucket": [num(x) for x in h.bucket]})
        out["histograms"][tag] = rows
    for tag in tags[ea.TENSORS]:
        rows = []
        for e in acc.Tensors(tag):
            arr = tensor_util.make_ndarray(e.tensor_proto)
            rows.append([e.step, arr.item().decode("utf-8") if arr.dtype.kind in "OS" else str(arr)])
        out["texts"][tag] = rows

    pacc = pea.EventAccumulator(log_dir, size_guidance={pea.TENSORS: 0})
    pacc.Reload()
    for tag in pacc.Tags()[pea.TENSORS]:
        plugin = pacc.SummaryMetadata(tag).plugin_data.plugin_name
        out["plugins"][tag] = plugin
        if plugin != "histograms":
            continue
        rows = []
        for e in pacc.Tensors(tag):
            arr = tensor_util.make_ndarray(e.tensor_proto)
            rows.append({"step": e.step, "buckets": [[num(v) for v in row] for row in arr.tolist()]})
        out["plugin_histograms"][tag] = rows
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
