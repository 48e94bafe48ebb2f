// A GoogleTest fixture owning a fresh scratch directory per test:
// <tmp>/zae_<pid>_<suite>_<test>, created in SetUp and removed (with everything in it)
// in TearDown, plus helpers to name files in it and read them back.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

namespace zae::test {

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name();
    for (char& c : name)
      if (c == '/') c = '_';  // parameterised tests
    dir_ = std::filesystem::temp_directory_path() / ("zae_" + std::to_string(::getpid()) + "_" + name);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  /// The path of `name` inside the scratch directory.
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  /// The whole contents of a file, as bytes.
  static std::string read(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::filesystem::path dir_;
};

}  // namespace zae::test
