// zae-wandb-sync: uploads the W&B runs that WandBLogger spooled to disk (offline mode, no
// API key, or a server that could not be reached). The logic is in
// apps/wandb_sync/wandb_sync.h; this is only the process shell.
#include <iostream>
#include <string>
#include <vector>

#include "apps/wandb_sync/wandb_sync.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return zae::apps::wandb_sync::run_wandb_sync_cli(args, std::cout, std::cerr);
}
