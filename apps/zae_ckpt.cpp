// zae-ckpt: inspect, verify and convert zae checkpoints (.ckpt) and safetensors files.
// The commands are in apps/ckpt/ckpt_commands.h; this is only the process shell.
#include <iostream>
#include <string>
#include <vector>

#include "apps/ckpt/ckpt_commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return zae::apps::ckpt::run_ckpt_cli(args, std::cout, std::cerr);
}
