// TensorBoard event files: crc32c (both paths), the REFERENCE.md record byte for byte,
// the protobuf subset, histogram bucketing, the EventWriter (naming, buffering, disk
// errors), TensorBoardLogger -> our reader round trips, and corruption detection.
// TensorBoard's own reader is exercised in test_tensorboard_python.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cfloat>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <thread>

#include "engine/error.h"
#include "io/crc32c.h"
#include "io/json.h"
#include "io/loggers/tensorboard_histogram.h"
#include "io/loggers/tensorboard_reader.h"
#include "io/loggers/tensorboard_writer.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_util.h"

namespace zae::io {
namespace {

using tensorboard::Event;
using tensorboard::EventRecord;
using tensorboard::SummaryValue;

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::string to_hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

// ---- crc32c ------------------------------------------------------------------------------

struct CrcPath {
  const char* name;
  uint32_t (*extend)(uint32_t, const void*, size_t);
};

std::vector<CrcPath> crc_paths() {
  std::vector<CrcPath> paths{{"portable", &crc32c_extend_portable}, {"dispatch", &crc32c_extend}};
  if (crc32c_hardware_available()) paths.push_back({"sse4.2", &crc32c_extend_hardware});
  return paths;
}

TEST(Crc32c, KnownVectorsOnEveryPath) {
  std::string zeros(32, '\0'), ones(32, '\xff'), up(32, 0), down(32, 0);
  for (int i = 0; i < 32; ++i) {
    up[i] = static_cast<char>(i);
    down[i] = static_cast<char>(31 - i);
  }
  // RFC 3720 (iSCSI) B.4 vectors and the standard check value.
  const std::vector<std::pair<std::string, uint32_t>> vectors = {
      {"123456789", 0xE3069283u}, {"", 0u},       {zeros, 0x8A9136AAu},
      {ones, 0x62A8AB43u},        {up, 0x46DD794Eu}, {down, 0x113FDB5Cu},
      {"a", 0xC1D04330u},
  };
  for (const CrcPath& p : crc_paths())
    for (const auto& [data, want] : vectors)
      EXPECT_EQ(p.extend(0, data.data(), data.size()), want) << p.name << " on " << to_hex(data);
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  std::printf("crc32c hardware path: %s\n", crc32c_hardware_available() ? "SSE4.2 (tested)" : "not available");
}

TEST(Crc32c, PathsAgreeAtEveryLengthAlignmentAndSplit) {
  std::mt19937 rng(7);
  std::string buf(600, '\0');
  for (char& c : buf) c = static_cast<char>(rng());
  for (size_t offset = 0; offset < 8; ++offset)
    for (size_t n = 0; n <= 300; n += (n < 40 ? 1 : 13)) {
      const char* p = buf.data() + offset;
      const uint32_t want = crc32c_extend_portable(0, p, n);
      for (const CrcPath& path : crc_paths()) {
        ASSERT_EQ(path.extend(0, p, n), want) << path.name << " n=" << n << " offset=" << offset;
        const size_t split = n / 3;
        ASSERT_EQ(path.extend(path.extend(0, p, split), p + split, n - split), want) << path.name << " split";
      }
    }
}

TEST(Crc32c, MaskMatchesTheReferenceAndInverts) {
  // The length header of the REFERENCE.md record: 26 as u64 LE, masked CRC 0x2dd89b12.
  EXPECT_EQ(masked_crc32c(from_hex("1a00000000000000")), 0x2dd89b12u);
  for (uint32_t v : {0u, 1u, 0xE3069283u, 0xFFFFFFFFu, 0x80000000u}) {
    EXPECT_EQ(unmask_crc32c(mask_crc32c(v)), v);
    EXPECT_EQ(mask_crc32c(v), ((v >> 15) | (v << 17)) + 0xA282EAD8u);
  }
}

// ---- the record format -------------------------------------------------------------------

TEST(TensorBoardFormat, ReferenceRecordByteForByte) {
  const std::string want = "1a00000000000000" "129bd82d" "0900000040fc54d941" "100a" "2a0d" "0a0b"
                           "0a046c6f7373" "150000003f" "67dc85ab";
  const std::string record =
      tensorboard::frame_record(tensorboard::encode_event(tensorboard::make_scalar_event(1.7e9, 10, "loss", 0.5f)));
  EXPECT_EQ(to_hex(record), want);
  const Event back = tensorboard::decode_event(record.substr(12, record.size() - 16), "vector");
  EXPECT_EQ(back.wall_time, 1.7e9);
  EXPECT_EQ(back.step, 10);
  ASSERT_EQ(back.values.size(), 1u);
  EXPECT_EQ(back.values[0].tag, "loss");
  EXPECT_EQ(back.values[0].kind, SummaryValue::Kind::simple_value);
  EXPECT_EQ(back.values[0].simple_value, 0.5f);
}

TEST(TensorBoardFormat, FileVersionEventAndProto3Omissions) {
  Event e;
  e.wall_time = 1.7e9;
  e.file_version = tensorboard::kFileVersion;
  EXPECT_EQ(to_hex(tensorboard::encode_event(e)), "0900000040fc54d941" "1a0d" + to_hex("brain.Event:2"));
  // step 0 and wall_time 0 are omitted; simple_value 0 (a oneof) is written.
  EXPECT_EQ(to_hex(tensorboard::encode_event(tensorboard::make_scalar_event(0.0, 0, "a", 0.0f))),
            "2a0a" "0a08" "0a0161" "1500000000");
}

TEST(TensorBoardFormat, HistogramTextAndNegativeStepsRoundTrip) {
  tensorboard::Histogram h{-1.5, 2.0, 3, 0.5, 6.25, {-1.0, 0.0, DBL_MAX}, {1, 0, 2}};
  Event e = tensorboard::make_histogram_event(123.25, -5, "w", h);
  Event t = tensorboard::make_text_event(1.0, 1LL << 40, "notes", "**hi**\n\xc3\xa9");
  const Event hb = tensorboard::decode_event(tensorboard::encode_event(e), "h");
  EXPECT_EQ(hb.step, -5);
  EXPECT_EQ(hb.wall_time, 123.25);
  ASSERT_EQ(hb.values.size(), 1u);
  ASSERT_EQ(hb.values[0].kind, SummaryValue::Kind::histogram);
  const auto& g = hb.values[0].histogram;
  EXPECT_EQ(g.min, -1.5);
  EXPECT_EQ(g.max, 2.0);
  EXPECT_EQ(g.num, 3);
  EXPECT_EQ(g.sum, 0.5);
  EXPECT_EQ(g.sum_squares, 6.25);
  EXPECT_EQ(g.bucket_limit, h.bucket_limit);
  EXPECT_EQ(g.bucket, h.bucket);
  const Event tb = tensorboard::decode_event(tensorboard::encode_event(t), "t");
  EXPECT_EQ(tb.step, 1LL << 40);
  ASSERT_EQ(tb.values.size(), 1u);
  EXPECT_EQ(tb.values[0].kind, SummaryValue::Kind::tensor);
  EXPECT_EQ(tb.values[0].tensor_dtype, tensorboard::kDtString);
  EXPECT_EQ(tb.values[0].plugin_name, "text");
  EXPECT_EQ(tb.values[0].string_val, std::vector<std::string>{"**hi**\n\xc3\xa9"});
}

TEST(TensorBoardFormat, DecoderSkipsUnknownFieldsAndRejectsMalformedInput) {
  // Unknown fields of each wire type around a step: 0x30 varint (field 6), 0x39 fixed64
  // (field 7), 0x42 bytes (field 8), 0x4d fixed32 (field 9).
  const std::string ok = from_hex("3001" "390102030405060708" "4202abcd" "4d01020304" "1007");
  EXPECT_EQ(tensorboard::decode_event(ok, "ctx").step, 7);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"10", "varint runs past the end"},
      {"1a05616263", "runs past the end"},
      {"0a0100", "field 1 has wire type 2, expected 1"},
      {"10ffffffffffffffffffff01", "varint longer than 10 bytes"},
      {"2a03" "0a01" "15", "runs past the end"},
      {"3f", "unsupported wire type 7"},
  };
  for (const auto& [hex, what] : bad)
    test::expect_throws_with([&] { tensorboard::decode_event(from_hex(hex), "file.x: record at offset 9"); },
                             {"file.x: record at offset 9", "malformed protobuf", what});
}

// ---- histograms --------------------------------------------------------------------------

TEST(TensorBoardHistogram, ExponentialLimitsAreTensorFlowsLayout) {
  const auto& limits = tensorboard::exponential_bucket_limits();
  ASSERT_EQ(limits.size(), 1551u);
  EXPECT_EQ(limits.front(), -DBL_MAX);
  EXPECT_EQ(limits.back(), DBL_MAX);
  EXPECT_EQ(limits[775], 0.0);
  EXPECT_EQ(limits[776], 1e-12);
  for (size_t i = 1; i < limits.size(); ++i) ASSERT_LT(limits[i - 1], limits[i]) << i;
  for (size_t i = 0; i < limits.size(); ++i) ASSERT_EQ(limits[i], -limits[limits.size() - 1 - i]);
  EXPECT_NEAR(limits[777] / limits[776], 1.1, 1e-12);
}

TEST(TensorBoardHistogram, ExponentialCountsEachValueInItsBucket) {
  const std::vector<double> values = {0.0, 1.0, -1.0, 2.5, 1e-13, -3e5, 0.75, 1.0, NAN, INFINITY, 7e30};
  size_t skipped = 0;
  const tensorboard::Histogram h = tensorboard::make_histogram(values, {}, &skipped);
  EXPECT_EQ(skipped, 2u);
  EXPECT_EQ(h.num, 9);
  EXPECT_EQ(h.min, -3e5);
  EXPECT_EQ(h.max, 7e30);
  EXPECT_EQ(h.sum, 0.0 + 1.0 - 1.0 + 2.5 + 1e-13 - 3e5 + 0.75 + 1.0 + 7e30);
  ASSERT_EQ(h.bucket.size(), h.bucket_limit.size());
  double total = 0;
  size_t nonempty = 0;
  for (size_t k = 0; k < h.bucket.size(); ++k) {
    total += h.bucket[k];
    if (k > 0) {
      ASSERT_LT(h.bucket_limit[k - 1], h.bucket_limit[k]);
    }
    if (h.bucket[k] == 0) {
      if (k > 0) {
        EXPECT_NE(h.bucket[k - 1], 0) << "runs of empty buckets are collapsed";
      }
      continue;
    }
    ++nonempty;
    const double lo = k > 0 ? h.bucket_limit[k - 1] : -INFINITY;
    size_t inside = 0;
    for (double v : values)
      if (std::isfinite(v) && v >= lo && v < h.bucket_limit[k]) ++inside;
    EXPECT_EQ(static_cast<double>(inside), h.bucket[k]) << "bucket ending at " << h.bucket_limit[k];
  }
  EXPECT_EQ(total, 9);
  EXPECT_EQ(nonempty, 7u);  // {-3e5} {-1} {0, 1e-13} {0.75} {1, 1} {2.5} {7e30}
  EXPECT_LT(h.bucket.size(), 20u);

  EXPECT_EQ(tensorboard::make_histogram(std::vector<double>{NAN}).num, 0);
  EXPECT_TRUE(tensorboard::make_histogram(std::vector<double>{}).bucket.empty());
}

TEST(TensorBoardHistogram, UniformLayout) {
  tensorboard::HistogramOptions o{tensorboard::HistogramBins::uniform, 5};
  std::vector<float> values;
  for (int i = 0; i < 10; ++i) values.push_back(static_cast<float>(i));
  const auto h = tensorboard::make_histogram(values.data(), values.size(), o);
  EXPECT_EQ(h.bucket, (std::vector<double>{2, 2, 2, 2, 2}));
  ASSERT_EQ(h.bucket_limit.size(), 5u);
  EXPECT_DOUBLE_EQ(h.bucket_limit[0], 1.8);
  EXPECT_EQ(h.bucket_limit[4], 9.0);
  const auto same = tensorboard::make_histogram(std::vector<double>{3, 3, 3}, o);
  EXPECT_EQ(same.bucket, (std::vector<double>{0, 0, 3, 0, 0}));
  EXPECT_EQ(same.bucket_limit.back(), 3.5);
  const auto huge = tensorboard::make_histogram(std::vector<double>{-DBL_MAX, DBL_MAX, 0}, o);
  EXPECT_EQ(huge.bucket, (std::vector<double>{1, 0, 1, 0, 1}));
  for (double l : huge.bucket_limit) EXPECT_TRUE(std::isfinite(l));
  test::expect_throws_with([&] { tensorboard::make_histogram(values.data(), 1, {tensorboard::HistogramBins::uniform, 0}); },
                           {"uniform_buckets must be at least 1", "0"});
}

// ---- the writer and the logger -----------------------------------------------------------

class TensorBoardFiles : public test::TempDirTest {};

TEST_F(TensorBoardFiles, FileNameAndFirstRecord) {
  const double before = tensorboard::wall_time_now();
  EventWriter w(path("run"), {.filename_suffix = ".train"});
  EventWriter w2(path("run"));
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string name = std::filesystem::path(w.path()).filename().string();
  std::smatch m;
  ASSERT_TRUE(std::regex_match(name, m, std::regex(R"(events\.out\.tfevents\.(\d{10})\.(.+)\.(\d+)\.(\d+)\.train)")))
      << name;
  EXPECT_NEAR(std::stod(m[1].str()), before, 5.0);
  EXPECT_EQ(m[2].str(), host);
  EXPECT_EQ(m[3].str(), std::to_string(::getpid()));
  EXPECT_NE(w.path(), w2.path());
  EXPECT_EQ(tensorboard::event_file_name(1700000000, "h", 42, 3), "events.out.tfevents.1700000000.h.42.3");
  EXPECT_EQ(tensorboard::event_file_name(12, "h", 1, 0), "events.out.tfevents.0000000012.h.1.0");

  // The version record is on disk at once, before any flush.
  const auto events = tensorboard::read_event_file(w.path());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].offset, 0u);
  EXPECT_EQ(events[0].event.file_version, "brain.Event:2");
  EXPECT_NEAR(events[0].event.wall_time, before, 5.0);
  EXPECT_FALSE(events[0].event.has_summary);
  EXPECT_EQ(tensorboard::list_event_files(path("run")).size(), 2u);
}

TEST_F(TensorBoardFiles, LoggerRoundTripThroughOurReader) {
  const std::string dir = path("logs/a/b");  // created with its parents
  std::string file;
  std::vector<std::tuple<std::string, int64_t, float>> logged;
  {
    TensorBoardLogger logger({.log_dir = dir, .flush_interval = std::chrono::hours(1)});
    file = logger.event_file();
    json::Value config = json::parse(R"({"model":{"hidden":[1024,1024]},"lr":0.001,"name":"mlp"})", "cfg");
    logger.log_config(config);
    for (int64_t step = 1; step <= 1000; ++step) {
      const MetricValues values = {{"train/loss", 1.0 / static_cast<double>(step)},
                                   {"lr", 1e-3 * std::cos(static_cast<double>(step))},
                                   {"samples_per_s", 12345.678 + static_cast<double>(step)}};
      logger.log_metrics(values, step);
      for (const auto& [k, v] : values) logged.emplace_back(k, step, static_cast<float>(v));
      if (step % 250 == 0) {
        std::vector<double> w(1000);
        for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(static_cast<double>(i * step)) * 0.1;
        logger.log_histogram("params/w", w, step);
      }
    }
    logger.log_summary({{"best/loss", 0.001}});
    logger.finish(true);
    logger.log_metrics({{"late", 1.0}}, 2000);  // ignored after finish
    logger.finish(true);
  }
  const auto files = tensorboard::list_event_files(dir);
  ASSERT_EQ(files, std::vector<std::string>{file});
  const auto events = tensorboard::read_event_file(file);
  ASSERT_EQ(events.size(), 1u + 1u + 3000u + 4u + 1u);
  EXPECT_EQ(events[0].event.file_version, "brain.Event:2");
  // config text at step 0
  ASSERT_EQ(events[1].event.values.size(), 1u);
  EXPECT_EQ(events[1].event.values[0].tag, "config");
  EXPECT_EQ(events[1].event.values[0].plugin_name, "text");
  EXPECT_NE(events[1].event.values[0].string_val.at(0).find("\"hidden\": [\n"), std::string::npos);
  // scalars, in order, exact as float32
  size_t next = 0, histograms = 0;
  uint64_t last_offset = 0;
  for (size_t i = 2; i < events.size(); ++i) {
    const Event& e = events[i].event;
    EXPECT_GT(events[i].offset, last_offset);
    last_offset = events[i].offset;
    ASSERT_EQ(e.values.size(), 1u);
    const SummaryValue& v = e.values[0];
    if (v.kind == SummaryValue::Kind::histogram) {
      ++histograms;
      EXPECT_EQ(v.tag, "params/w");
      EXPECT_EQ(e.step % 250, 0);
      EXPECT_EQ(v.histogram.num, 1000);
      continue;
    }
    ASSERT_EQ(v.kind, SummaryValue::Kind::simple_value);
    if (v.tag == "summary/best/loss") {
      EXPECT_EQ(e.step, 1000);
      EXPECT_EQ(v.simple_value, 0.001f);
      continue;
    }
    ASSERT_LT(next, logged.size());
    EXPECT_EQ(v.tag, std::get<0>(logged[next]));
    EXPECT_EQ(e.step, std::get<1>(logged[next]));
    EXPECT_EQ(v.simple_value, std::get<2>(logged[next])) << v.tag << " at " << e.step;
    EXPECT_NEAR(e.wall_time, tensorboard::wall_time_now(), 60.0);
    ++next;
  }
  EXPECT_EQ(next, logged.size());
  EXPECT_EQ(histograms, 4u);
  // config.json next to the event file
  const json::Value back = json::parse(read(dir + "/config.json"), "config.json");
  EXPECT_EQ(json::dump(back), R"({"model":{"hidden":[1024,1024]},"lr":0.001,"name":"mlp"})");
}

TEST_F(TensorBoardFiles, FlushIntervalPutsEventsOnDiskWithoutFlushCalls) {
  TensorBoardLogger fast({.log_dir = path("fast"), .flush_interval = std::chrono::milliseconds(50)});
  TensorBoardLogger slow({.log_dir = path("slow"), .flush_interval = std::chrono::hours(1)});
  fast.log_metrics({{"x", 1.0}}, 1);
  slow.log_metrics({{"x", 1.0}}, 1);
  size_t seen = 0;
  for (int i = 0; i < 200 && seen < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    seen = tensorboard::read_event_file(fast.event_file()).size();
  }
  EXPECT_EQ(seen, 2u) << "the background flush did not write the event within 2 s";
  EXPECT_EQ(tensorboard::read_event_file(slow.event_file()).size(), 1u) << "buffered until flush()";
  slow.flush();
  EXPECT_EQ(tensorboard::read_event_file(slow.event_file()).size(), 2u);
  TensorBoardLogger every({.log_dir = path("every"), .flush_interval = std::chrono::milliseconds(0)});
  every.log_metrics({{"x", 1.0}, {"y", 2.0}}, 3);
  EXPECT_EQ(tensorboard::read_event_file(every.event_file()).size(), 3u);
}

TEST_F(TensorBoardFiles, ConcurrentLoggingKeepsEveryRecordWhole) {
  TensorBoardLogger logger({.log_dir = path("mt"), .flush_interval = std::chrono::milliseconds(1)});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      const std::string scalar_tag = std::string("t").append(std::to_string(t));
      const std::string histogram_tag = std::string("h").append(std::to_string(t));
      for (int i = 0; i < 300; ++i) {
        logger.log_metrics({{scalar_tag, static_cast<double>(i)}}, i);
        if (i % 100 == 0) logger.log_histogram(histogram_tag, std::vector<double>{1.0, 2.0, 3.0}, i);
      }
    });
  for (auto& th : threads) th.join();
  logger.finish(true);
  const auto events = tensorboard::read_event_file(logger.event_file());
  EXPECT_EQ(events.size(), 1u + 4u * 300u + 4u * 3u);
}

TEST_F(TensorBoardFiles, CorruptionIsAnErrorNamingFileAndOffset) {
  std::string file;
  {
    TensorBoardLogger logger({.log_dir = path("c")});
    file = logger.event_file();
    for (int s = 1; s <= 3; ++s) logger.log_metrics({{"loss", 0.5 * s}}, s);
  }
  const auto events = tensorboard::read_event_file(file);
  ASSERT_EQ(events.size(), 4u);
  const std::string good = read(file);
  auto write_bytes = [&](const std::string& bytes) { std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes; };
  const uint64_t at = events[2].offset;
  std::string bad = good;
  bad[at + 12 + 3] ^= 0x01;  // a byte of record 2's data
  write_bytes(bad);
  test::expect_throws_with([&] { tensorboard::read_event_file(file); },
                           {file, "corrupt record at offset " + std::to_string(at), "data CRC mismatch"});
  bad = good;
  bad[at + 1] ^= 0x40;  // its length
  write_bytes(bad);
  test::expect_throws_with([&] { tensorboard::read_event_file(file); },
                           {file, "offset " + std::to_string(at), "length CRC mismatch"});
  bad = good;
  bad[at + 9] ^= 0x10;  // its stored length CRC
  write_bytes(bad);
  test::expect_throws_with([&] { tensorboard::read_event_file(file); }, {"offset " + std::to_string(at), "length CRC"});
  // A cut-off tail: an error, or the end of the data for a reader that follows a live file.
  const uint64_t last = events[3].offset;
  for (uint64_t cut : {last + 5, last + 12, last + 20, static_cast<uint64_t>(good.size()) - 1}) {
    write_bytes(good.substr(0, cut));
    test::expect_throws_with([&] { tensorboard::read_event_file(file); }, {file, "offset " + std::to_string(last)});
    EXPECT_EQ(tensorboard::read_event_file(file, {.allow_partial_tail = true}).size(), 3u) << "cut at " << cut;
  }
  // A huge length with a valid CRC does not allocate: it is reported against the file size.
  std::string huge(8, '\0');
  for (int i = 0; i < 8; ++i) huge[i] = static_cast<char>(0xFF >> (i == 7 ? 1 : 0));
  const uint32_t c = masked_crc32c(huge);
  for (int i = 0; i < 4; ++i) huge.push_back(static_cast<char>((c >> (8 * i)) & 0xFF));
  write_bytes(huge + "xxxx");
  test::expect_throws_with([&] { tensorboard::read_event_file(file); }, {"offset 0", "runs past the end of the file"});
  test::expect_throws_with([&] { tensorboard::read_event_file(path("missing")); }, {"cannot open", path("missing")});
}

TEST_F(TensorBoardFiles, DiskErrorsAreOneWarningNeverAnException) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "/dev/full is not writable here";
  ::testing::internal::CaptureStderr();
  {
    auto w = EventWriter::open_path("/dev/full", {.max_pending_bytes = 4096});
    EXPECT_TRUE(w->failing());  // the version record could not be written
    EXPECT_TRUE(w->write_scalar("x", 1.0f, 1, 1.0));
    EXPECT_FALSE(w->flush());
    EXPECT_FALSE(w->flush());
    EXPECT_EQ(w->bytes_written(), 0u);
    int accepted = 0;
    for (int i = 0; i < 200; ++i) accepted += w->write_scalar("x", 1.0f, i, 1.0) ? 1 : 0;
    EXPECT_GT(accepted, 0);
    EXPECT_LT(accepted, 200);
    EXPECT_EQ(w->records_dropped(), static_cast<uint64_t>(200 - accepted));
    EXPECT_LE(w->pending_bytes(), 4096u);
    w->close();
    EXPECT_FALSE(w->write_scalar("x", 1.0f, 1, 1.0));
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  auto count = [&](const std::string& s) {
    size_t n = 0;
    for (size_t p = err.find(s); p != std::string::npos; p = err.find(s, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("cannot write"), 1u) << err;
  EXPECT_EQ(count("dropping events"), 1u) << err;
  EXPECT_EQ(count("could not be written and are lost"), 1u) << err;
  EXPECT_NE(err.find("/dev/full"), std::string::npos) << err;
}

TEST_F(TensorBoardFiles, BadOptionsAreErrorsAtConstruction) {
  std::ofstream(path("file")) << "x";
  test::expect_throws_with([&] { TensorBoardLogger l({.log_dir = path("file") + "/sub"}); },
                           {"cannot create the log directory", path("file") + "/sub"});
  test::expect_throws_with([&] { TensorBoardLogger l({.log_dir = path("file")}); },
                           {"cannot create the log directory", path("file")});
  test::expect_throws_with([&] { TensorBoardLogger l({.log_dir = ""}); }, {"log_dir is empty"});
  test::expect_throws_with(
      [&] { TensorBoardLogger l({.log_dir = path("d"), .flush_interval = std::chrono::milliseconds(-1)}); },
      {"flush_interval", "-1"});
  test::expect_throws_with(
      [&] {
        TensorBoardLogger l({.log_dir = path("d"), .histogram = {tensorboard::HistogramBins::uniform, 0}});
      },
      {"uniform_buckets"});
}

}  // namespace
}  // namespace zae::io
