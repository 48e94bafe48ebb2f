// CSV text for CsvLogger (RFC 4180 with "\n" line ends): quoting a field, spelling a
// number exactly, and splitting a file back into records. Pure functions, no I/O.
// Invariants: a field holding ',', '"', CR or LF is quoted, with '"' doubled, and every
// other field is written as is, so parse_csv(join of formatted records) gives the fields
// back unchanged; numbers are the shortest literal that reads back to the same double
// (std::to_chars), NaN and the infinities nan, inf, -inf.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace zae::io::csv {

/// Appends `field`, quoted when it needs to be.
void append_field(std::string& out, std::string_view field);
/// Appends the fields separated by ',' and a final '\n'.
void append_record(std::string& out, const std::vector<std::string>& fields);
/// The shortest exact spelling of `v`; "nan", "inf", "-inf" for the non-finite values.
std::string format_double(double v);

/// What parse_csv found.
struct Parsed {
  std::vector<std::vector<std::string>> records;  ///< complete records, fields unquoted
  size_t complete_end = 0;  ///< bytes covered by them; a torn last record lies beyond
};

/// Splits `text` into records. Lines end with "\n" or "\r\n"; a quoted field may span
/// them. A last record without its line end (or inside an open quote) is not returned
/// and not counted in complete_end. A quote inside an unquoted field, or text after a
/// closing quote, is kept literally (lenient, as most readers are).
Parsed parse_csv(std::string_view text);

}  // namespace zae::io::csv
