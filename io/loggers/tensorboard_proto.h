// The subset of TensorBoard's protobuf messages that event files need, encoded and
// decoded by hand (no protobuf library), and the TFRecord framing around each event:
//   u64 LE length | u32 LE masked_crc32c(length bytes) | data | u32 LE masked_crc32c(data)
// Messages (field number, wire type):
//   Event:          wall_time 1 double, step 2 varint, file_version 3 string, summary 5
//   Summary:        value 1 (repeated)
//   Summary.Value:  tag 1 string, simple_value 2 float, histo 5, tensor 8, metadata 9
//   HistogramProto: min 1, max 2, num 3, sum 4, sum_squares 5 (double),
//                   bucket_limit 6, bucket 7 (packed double)
//   SummaryMetadata.plugin_data 1 -> PluginData: plugin_name 1, content 2
//   TensorProto:    dtype 1 (DT_STRING = 7), tensor_shape 2, string_val 8 (repeated bytes)
// Invariants: the encoder writes fields in field-number order and, as proto3 does, omits
// scalars equal to zero (wall_time +0.0, step 0, empty strings); a oneof value
// (simple_value) is always written. The decoder never reads outside its input, skips
// unknown fields of any wire type, and reports malformed input (bad varint, length past
// the end, a known field with the wrong wire type) as a zae::Error prefixed by its
// context ("<file>: record at offset N").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace zae::io::tensorboard {

/// TensorFlow's HistogramProto: bucket[i] counts values in [bucket_limit[i-1], bucket_limit[i])
/// (the first bucket starts at -infinity / min).
struct Histogram {
  double min = 0, max = 0, num = 0, sum = 0, sum_squares = 0;
  std::vector<double> bucket_limit;
  std::vector<double> bucket;
};

/// One Summary.Value.
struct SummaryValue {
  enum class Kind { none, simple_value, histogram, tensor };
  std::string tag;
  Kind kind = Kind::none;
  float simple_value = 0.0f;            ///< kind == simple_value
  Histogram histogram;                  ///< kind == histogram
  int tensor_dtype = 0;                 ///< kind == tensor (7 = DT_STRING)
  std::vector<std::string> string_val;  ///< kind == tensor: the strings of a DT_STRING tensor
  std::string plugin_name;              ///< metadata.plugin_data.plugin_name ("" when absent)
  std::string plugin_content;           ///< metadata.plugin_data.content
};

/// One Event (the fields TensorBoard logs use).
struct Event {
  double wall_time = 0.0;     ///< seconds since the Unix epoch
  int64_t step = 0;
  std::string file_version;   ///< "brain.Event:2" in the first record of a file
  bool has_summary = false;   ///< decode: a summary field was present; encode: forced on when values exist
  std::vector<SummaryValue> values;
};

/// The value of DT_STRING in TensorProto.dtype.
inline constexpr int kDtString = 7;
/// The file_version of the first event of every file.
inline constexpr const char* kFileVersion = "brain.Event:2";

/// Serialized Event message (the data of one record).
std::string encode_event(const Event& event);
/// Parses a serialized Event; `context` prefixes error messages.
Event decode_event(std::string_view data, const std::string& context);

/// The framed record around `data` (12-byte header, data, 4-byte footer).
std::string frame_record(std::string_view data);
/// Appends the framed record around `data` to `out`.
void append_record(std::string& out, std::string_view data);

/// Conveniences: Events with one value.
Event make_scalar_event(double wall_time, int64_t step, std::string tag, float value);
Event make_histogram_event(double wall_time, int64_t step, std::string tag, Histogram histogram);
/// A text-plugin value: a scalar DT_STRING tensor with metadata plugin_name "text"
/// (what TensorBoard's Text tab reads; the text is rendered as Markdown).
Event make_text_event(double wall_time, int64_t step, std::string tag, std::string text);

}  // namespace zae::io::tensorboard
