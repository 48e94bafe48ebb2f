// Building and reading the small JSON documents that hold training state in
// checkpoints: exact numbers both ways and strict getters with clear errors.
// Doubles are written as the shortest literal that reads back to the same bits
// (std::to_chars); NaN and the infinities, which JSON cannot spell, are the strings
// "nan", "inf" and "-inf". Integers are written exactly (int64 range).
// Every getter fails with "<context>: <what> '<key>' ..." naming the field and
// what was found, so a hand-edited or damaged state is a clear error.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/json.h"

namespace zae::io::state {

json::Value number(double v);
json::Value integer(int64_t v);
json::Value string(std::string s);
json::Value boolean(bool b);
json::Value numbers(const std::vector<double>& v);
/// Appends (key, value) to an object (keys must be unique; not checked here).
void put(json::Value& object, std::string key, json::Value value);

/// The member `key` of `object`; an error when `object` is not an object or lacks it.
const json::Value& get(const json::Value& object, std::string_view key, const std::string& context);
/// Whether `object` is an object with member `key`.
bool has(const json::Value& object, std::string_view key);

/// A number (or "nan"/"inf"/"-inf") as a double.
double as_double(const json::Value& v, const std::string& what);
/// An integer number within int64.
int64_t as_int(const json::Value& v, const std::string& what);
/// An integer number within uint64.
uint64_t as_uint(const json::Value& v, const std::string& what);
const std::string& as_string(const json::Value& v, const std::string& what);
bool as_bool(const json::Value& v, const std::string& what);
std::vector<double> as_doubles(const json::Value& v, const std::string& what);

double get_double(const json::Value& object, std::string_view key, const std::string& context);
int64_t get_int(const json::Value& object, std::string_view key, const std::string& context);
uint64_t get_uint(const json::Value& object, std::string_view key, const std::string& context);
std::string get_string(const json::Value& object, std::string_view key, const std::string& context);
bool get_bool(const json::Value& object, std::string_view key, const std::string& context);
std::vector<double> get_doubles(const json::Value& object, std::string_view key, const std::string& context);

}  // namespace zae::io::state
