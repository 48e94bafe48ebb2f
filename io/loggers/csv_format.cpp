// CSV quoting, exact numbers and a lenient record splitter for CsvLogger.
#include "io/loggers/csv_format.h"

#include <charconv>
#include <cmath>
#include <system_error>

#include "engine/error.h"

namespace zae::io::csv {

void append_field(std::string& out, std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) {
    out += field;
    return;
  }
  out += '"';
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

void append_record(std::string& out, const std::vector<std::string>& fields) {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    append_field(out, fields[i]);
  }
  out += '\n';
}

std::string format_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  ZAE_CHECK(ec == std::errc(), "csv: cannot format ", v);
  return std::string(buf, end);
}

Parsed parse_csv(std::string_view t) {
  Parsed out;
  const size_t n = t.size();
  size_t i = 0;
  auto line_end = [&](size_t at) { return t[at] == '\n' || (t[at] == '\r' && at + 1 < n && t[at + 1] == '\n'); };
  std::vector<std::string> record;
  std::string field;
  while (i < n) {  // a record starts at i
    record.clear();
    for (;;) {  // a field starts at i
      field.clear();
      if (i < n && t[i] == '"') {
        ++i;
        bool closed = false;
        while (i < n) {
          if (t[i] == '"') {
            if (i + 1 < n && t[i + 1] == '"') {
              field += '"';
              i += 2;
              continue;
            }
            ++i;
            closed = true;
            break;
          }
          field += t[i++];
        }
        if (!closed) return out;  // the file ends inside a quoted field: torn
      }
      while (i < n && t[i] != ',' && !line_end(i)) field += t[i++];  // unquoted, or text after a quote
      record.push_back(field);
      if (i >= n) return out;  // no line end: torn
      if (t[i] == ',') {
        ++i;
        continue;
      }
      i += t[i] == '\r' ? 2 : 1;
      break;
    }
    out.records.push_back(record);
    out.complete_end = i;
  }
  return out;
}

}  // namespace zae::io::csv
