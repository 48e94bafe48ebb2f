// Child program of tests/test_checkpoint_crash.cpp: rewrites one checkpoint in a tight
// loop until it is killed.
//
//   ckpt_writer_child <path> <megabytes>
//
// If <path> exists it must load (exit status 3 otherwise, with the error on stderr);
// its counter is the starting point. Each iteration increments the counter and saves
// a checkpoint whose every part carries it: state {"counter", "pid"}, user metadata
// "counter", a float64 scalar "counter" and an int32 tensor "payload" of about
// <megabytes> MiB with payload[i] = int32(uint32(counter * 1000003 + i)), so a reader
// can tell a torn or mixed file from a complete one. Prints "ready" on stdout (flushed)
// once it has started, right before the loop: the test's kill delays count from there, so
// a slow start (a loaded machine, a CUDA build loading its libraries) cannot eat them.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

#include "engine/zae.h"
#include "io/checkpoint.h"
#include "io/state_json.h"

namespace {

int run(const std::string& path, int64_t megabytes) {
  namespace st = zae::io::state;
  int64_t counter = 0;
  if (std::filesystem::exists(path)) {
    const zae::io::Checkpoint previous = zae::io::load_checkpoint(path);
    counter = st::get_int(previous.state, "counter", path);
  }
  const int64_t n = megabytes * (1 << 20) / 4;
  zae::Tensor payload = zae::Tensor::empty({n}, {.dtype = zae::DType::int32});
  zae::Tensor scalar = zae::Tensor::empty({}, {.dtype = zae::DType::float64});
  int32_t* p = payload.data<int32_t>();
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) {
    ++counter;
    const uint32_t base = static_cast<uint32_t>(counter) * 1000003u;
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int32_t>(base + static_cast<uint32_t>(i));
    scalar.data<double>()[0] = static_cast<double>(counter);
    zae::io::Checkpoint ck;
    ck.tensors = {{"payload", payload}, {"counter", scalar}};
    st::put(ck.state, "counter", st::integer(counter));
    st::put(ck.state, "pid", st::integer(::getpid()));
    ck.user_metadata["counter"] = std::to_string(counter);
    zae::io::save_checkpoint(path, ck);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <path> <megabytes>\n", argv[0]);
    return 2;
  }
  try {
    return run(argv[1], std::atoll(argv[2]));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ckpt_writer_child: %s\n", e.what());
    return 3;
  }
}
