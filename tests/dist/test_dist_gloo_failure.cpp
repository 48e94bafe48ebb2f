// How the Gloo process group fails: a rank that never joins a collective (the others
// throw within the timeout, with the hint), a rank that destroys its group mid-run (the
// others throw at once instead of hanging), a rank missing at construction, the ranks
// the store knows are gone named in the message, the group broken after a failure,
// queued asynchronous work when the group is destroyed, ranks that disagree about a
// call (named, never an abort), a bad ZAE_GLOO_HOST, and forming a group again on the
// same store. Ranks are threads sharing a store; timeouts are short (300-500 ms).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <thread>

#include "dist/gloo_context.h"
#include "engine/ops/factory.h"
#include "tests/dist/gloo_test_util.h"
#include "tests/support/test_util.h"

namespace zae::dist::test {
namespace {

using zae::test::expect_throws_with;
using Clock = std::chrono::steady_clock;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A MemoryStore that reports chosen ranks as lost (as a TCPStore does for clients whose
// connection closed), or throws from lost_ranks() to show the group never relies on it.
class LostRankStore final : public Store {
 public:
  enum class Mode { answer, throw_error, stall };
  explicit LostRankStore(std::vector<int> lost, Mode mode = Mode::answer) : lost_(std::move(lost)), mode_(mode) {
    inner_.set_timeout(std::chrono::seconds(10));
  }
  void set(const std::string& key, const Bytes& value) override { inner_.set(key, value); }
  Bytes get(const std::string& key) override { return inner_.get(key); }
  int64_t add(const std::string& key, int64_t delta) override { return inner_.add(key, delta); }
  bool check(const std::vector<std::string>& keys) override { return inner_.check(keys); }
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override {
    inner_.wait(keys, timeout);
  }
  using Store::wait;
  std::vector<int> lost_ranks() override {
    if (mode_ == Mode::throw_error) throw std::runtime_error("lost_ranks exploded");
    if (mode_ == Mode::stall) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    return lost_;
  }

 private:
  MemoryStore inner_;
  std::vector<int> lost_;
  Mode mode_;
};

// Ranks 0 and 1 enter an all_reduce that rank 2 never joins (it idles 1.5 s, then leaves):
// both throw within the 500 ms timeout (well before rank 2 leaves), naming the op, the
// rank and the backend, and at least one says a peer did not join in time. Afterwards
// the group is broken: the next call throws at once naming the first failure.
void missing_rank_times_out(AllReduceAlgorithm algorithm) {
  std::vector<std::string> messages(3);
  std::vector<Clock::duration> took(3);
  ProcessGroupOptions options;
  options.timeout = std::chrono::milliseconds(500);
  options.all_reduce_algorithm = algorithm;
  run_ranks(
      3,
      [&](int r, PG& pg) {
        if (r == 2) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1500));
          return;
        }
        Tensor t = ones({1000});
        const auto t0 = Clock::now();
        try {
          pg->all_reduce(t);
          ADD_FAILURE() << "rank " << r << ": all_reduce without rank 2 did not throw";
        } catch (const Error& e) {
          messages[r] = e.what();
        }
        took[r] = Clock::now() - t0;
        const auto t1 = Clock::now();
        expect_throws_with([&] { pg->barrier(); }, {"barrier failed on rank", "unusable after an earlier failure",
                                                    "all_reduce failed on rank"});
        EXPECT_LT(Clock::now() - t1, std::chrono::milliseconds(100)) << "a broken group must fail at once";
      },
      options);
  bool hinted = false;
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(contains(messages[r], "all_reduce failed on rank " + std::to_string(r) + " of 3 (gloo)"))
        << messages[r];
    EXPECT_TRUE(contains(messages[r], "did not join this collective within 500 ms") ||
                contains(messages[r], "closed its connection"))
        << messages[r];
    hinted = hinted || contains(messages[r], "did every rank call the same collectives in the same order?");
    EXPECT_LT(took[r], std::chrono::milliseconds(1400)) << "rank " << r << " waited past its timeout";
  }
  EXPECT_TRUE(hinted) << messages[0] << "\n" << messages[1];
}

TEST(DistGlooFailure, MissingRankTimesOutLibrary) { missing_rank_times_out(AllReduceAlgorithm::library); }
TEST(DistGlooFailure, MissingRankTimesOutRing) { missing_rank_times_out(AllReduceAlgorithm::ring); }

// Rank 1 destroys its group while rank 0 waits in an all_reduce with a 10 s timeout:
// rank 0 throws as soon as the connection closes, not after the timeout.
TEST(DistGlooFailure, PeerDestroyingItsGroupMakesOthersThrow) {
  std::string message;
  Clock::duration took{};
  ProcessGroupOptions options;
  options.timeout = std::chrono::seconds(10);
  run_ranks(
      2,
      [&](int r, PG& pg) {
        Tensor t = ones({64});
        pg->all_reduce(t);  // both healthy
        if (r == 1) {
          std::this_thread::sleep_for(std::chrono::milliseconds(300));
          pg.reset();
          return;
        }
        const auto t0 = Clock::now();
        try {
          pg->all_reduce(t);
          ADD_FAILURE() << "all_reduce with a destroyed peer did not throw";
        } catch (const Error& e) {
          message = e.what();
        }
        took = Clock::now() - t0;
        // Later calls fail at once too.
        expect_throws_with([&] { pg->all_reduce(t); }, {"unusable after an earlier failure"});
      },
      options);
  EXPECT_TRUE(contains(message, "all_reduce failed on rank 0 of 2 (gloo)")) << message;
  EXPECT_LT(took, std::chrono::seconds(5)) << message;
}

// Point to point against a peer that left: the send or recv throws, it does not hang.
TEST(DistGlooFailure, RecvFromDestroyedPeerThrows) {
  ProcessGroupOptions options;
  options.timeout = std::chrono::seconds(10);
  run_ranks(
      2,
      [&](int r, PG& pg) {
        pg->barrier();
        if (r == 1) {
          pg.reset();
          return;
        }
        Tensor t = zeros({16});
        const auto t0 = Clock::now();
        expect_throws_with([&] { pg->recv(t, 1, 4); }, {"recv from rank 1 (tag 4) failed on rank 0 of 2 (gloo)"});
        EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
      },
      options);
}

TEST(DistGlooFailure, ConstructionTimesOutWhenARankIsMissing) {
  auto store = test_store();
  ProcessGroupOptions options;
  options.timeout = std::chrono::milliseconds(300);
  options.store_prefix = "lonely";
  const auto t0 = Clock::now();
  expect_throws_with([&] { make_gloo_process_group(store, 0, 2, options); },
                     {"make_gloo_process_group failed on rank 0 of 2", "lonely", "within 300 ms"});
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(3));
}

TEST(DistGlooFailure, LostRanksAreNamed) {
  std::string message;
  ProcessGroupOptions options;
  options.timeout = std::chrono::milliseconds(400);
  run_ranks(
      2,
      [&](int r, PG& pg) {
        if (r == 1) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1000));
          return;
        }
        Tensor t = ones({8});
        try {
          pg->all_reduce(t);
        } catch (const Error& e) {
          message = e.what();
        }
      },
      options, std::make_shared<LostRankStore>(std::vector<int>{1}));
  EXPECT_TRUE(contains(message, "all_reduce failed on rank 0 of 2 (gloo)")) << message;
  EXPECT_TRUE(contains(message, "rank(s) 1 gone (connection to the store closed)")) << message;
}

// A store whose lost_ranks() throws, or stalls past the group's timeout: the failure is
// reported all the same, promptly, without naming anyone.
void misbehaving_lost_ranks(LostRankStore::Mode mode) {
  std::string message;
  Clock::duration took{};
  ProcessGroupOptions options;
  options.timeout = std::chrono::milliseconds(400);
  run_ranks(
      2,
      [&](int r, PG& pg) {
        if (r == 1) {
          std::this_thread::sleep_for(std::chrono::milliseconds(2000));
          return;
        }
        const auto t0 = Clock::now();
        try {
          pg->barrier();
        } catch (const Error& e) {
          message = e.what();
        }
        took = Clock::now() - t0;
      },
      options, std::make_shared<LostRankStore>(std::vector<int>{1}, mode));
  EXPECT_TRUE(contains(message, "barrier failed on rank 0 of 2 (gloo)")) << message;
  EXPECT_FALSE(contains(message, "gone")) << message;
  EXPECT_LT(took, std::chrono::milliseconds(1400)) << message;
}

TEST(DistGlooFailure, ThrowingLostRanksIsHarmless) { misbehaving_lost_ranks(LostRankStore::Mode::throw_error); }
TEST(DistGlooFailure, StallingLostRanksIsBounded) { misbehaving_lost_ranks(LostRankStore::Mode::stall); }

// ZAE_GLOO_HOST picks the listening address; one this machine does not have is an error
// that names the variable (192.0.2.1 is TEST-NET-1, never a local address).
TEST(DistGlooFailure, GlooHostFromEnvironment) {
  const char* saved = std::getenv("ZAE_GLOO_HOST");
  const std::string saved_value = saved ? saved : "";
  setenv("ZAE_GLOO_HOST", "127.0.0.1", 1);
  EXPECT_EQ(detail::gloo_listen_host().host, "127.0.0.1");
  EXPECT_EQ(detail::gloo_listen_host().source, "ZAE_GLOO_HOST");
  run_ranks(2, [&](int r, PG& pg) {
    Tensor t = full({3}, r);
    pg->all_reduce(t);
    EXPECT_TRUE(matches(t, [](int64_t) { return 1.0; }, 0.0));
  });
  setenv("ZAE_GLOO_HOST", "192.0.2.1", 1);
  auto store = test_store();
  expect_throws_with([&] { make_gloo_process_group(store, 0, 2); }, {"cannot listen on ZAE_GLOO_HOST='192.0.2.1'"});
  if (saved) {
    setenv("ZAE_GLOO_HOST", saved_value.c_str(), 1);
  } else {
    unsetenv("ZAE_GLOO_HOST");
    EXPECT_NE(detail::gloo_listen_host().source, "ZAE_GLOO_HOST");
  }
}

// Destroying a group with queued asynchronous work: the running job ends within its
// timeout, the queued ones fail, every Work reports an error (again on a second wait).
TEST(DistGlooFailure, DestroyWithQueuedWork) {
  ProcessGroupOptions options;
  options.timeout = std::chrono::milliseconds(500);
  run_ranks(
      2,
      [&](int r, PG& pg) {
        if (r == 1) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1500));
          return;
        }
        Tensor a = ones({10}), b = ones({10}), c = ones({10});
        auto wa = pg->all_reduce_async(a);
        auto wb = pg->all_reduce_async(b);
        auto wc = pg->all_reduce_async(c);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the first job is running by now
        const auto t0 = Clock::now();
        pg.reset();
        EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(1300)) << "destruction waited past the timeout";
        EXPECT_TRUE(wa->completed() && wb->completed() && wc->completed());
        for (auto* w : {&wa, &wa, &wb, &wc}) {
          try {
            (*w)->wait();
            ADD_FAILURE() << "queued work succeeded after its group was destroyed";
          } catch (const Error& e) {
            const std::string what = e.what();
            EXPECT_TRUE(contains(what, "all_reduce failed on rank 0 of 2 (gloo)") ||
                        contains(what, "on rank 0 of 2 (gloo): the process group was destroyed before it ran"))
                << what;
          }
        }
      },
      options);
}

// Ranks that break the contract (different shapes, dtypes, collectives, roots or
// algorithms) all get the same clear error naming every rank's call; nothing aborts.
TEST(DistGlooFailure, DisagreeingCollectivesAreNamed) {
  struct Case {
    std::function<void(int, ProcessGroup&)> call;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {[](int r, ProcessGroup& pg) {
         Tensor t = ones({r == 0 ? 10 : 12});
         pg.all_reduce(t);
       },
       {"all_reduce failed on rank", "the ranks disagree about this call",
        "rank 0: all_reduce(sum, library) of float32 [10]", "rank 1: all_reduce(sum, library) of float32 [12]"}},
      {[](int r, ProcessGroup& pg) {
         Tensor t = ones({4}, {.dtype = r == 0 ? DType::float32 : DType::float64});
         pg.all_reduce(t, ReduceOp::max);
       },
       {"rank 0: all_reduce(max, library) of float32 [4]", "rank 1: all_reduce(max, library) of float64 [4]"}},
      {[](int r, ProcessGroup& pg) {
         Tensor t = ones({3});
         if (r == 0)
           pg.all_reduce(t);
         else
           pg.broadcast(t, 0);
       },
       {"rank 0: all_reduce(sum, library) of float32 [3]", "rank 1: broadcast(root 0) of float32 [3]"}},
      {[](int r, ProcessGroup& pg) {
         Tensor t = ones({3});
         pg.broadcast(t, r);
       },
       {"rank 0: broadcast(root 0)", "rank 1: broadcast(root 1)"}},
      {[](int r, ProcessGroup& pg) { (void)pg.all_gather(ones({2, r + 1})); },
       {"rank 0: all_gather of float32 [2, 1]", "rank 1: all_gather of float32 [2, 2]"}},
      {[](int r, ProcessGroup& pg) {
         if (r == 0)
           pg.barrier();
         else
           (void)pg.reduce_scatter(ones({4}));
       },
       {"rank 0: barrier", "rank 1: reduce_scatter(sum) of float32 [4]"}},
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    std::vector<std::string> messages(2);
    run_ranks(2, [&](int r, PG& pg) {
      try {
        cases[c].call(r, *pg);
        ADD_FAILURE() << "case " << c << ", rank " << r << ": no error";
      } catch (const Error& e) {
        messages[r] = e.what();
      }
    });
    for (int r = 0; r < 2; ++r)
      for (const std::string& part : cases[c].parts)
        EXPECT_TRUE(contains(messages[r], part)) << "case " << c << ", rank " << r << ": " << messages[r];
  }
  // Groups built with different algorithms disagree too.
  std::vector<std::string> messages(2);
  auto store = test_store();
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      ProcessGroupOptions options;
      options.timeout = std::chrono::seconds(10);
      options.all_reduce_algorithm = r == 0 ? AllReduceAlgorithm::library : AllReduceAlgorithm::ring;
      try {
        PG pg = make_gloo_process_group(store, r, 2, options);
        Tensor t = ones({5});
        pg->all_reduce(t);
      } catch (const Error& e) {
        messages[r] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < 2; ++r)
    EXPECT_TRUE(contains(messages[r], "rank 0: all_reduce(sum, library) of float32 [5]; rank 1: all_reduce(sum, ring)"))
        << messages[r];
}

// A recv whose buffer does not fit the message (size or dtype) fails on the receiver with
// both sides' tensors named; the sender completes; nothing aborts.
TEST(DistGlooFailure, MismatchedRecvIsNamed) {
  for (int variant = 0; variant < 3; ++variant) {
    std::string message;
    run_ranks(2, [&](int r, PG& pg) {
      if (r == 0) {
        pg->send(ones({10}), 1, 3);  // completes: the receiver drains it
        return;
      }
      Tensor t = variant == 0   ? zeros({5})
                 : variant == 1 ? zeros({20})
                                : zeros({10}, {.dtype = DType::int32});
      try {
        pg->recv(t, 0, 3);
        ADD_FAILURE() << "variant " << variant << ": no error";
      } catch (const Error& e) {
        message = e.what();
      }
    });
    EXPECT_TRUE(contains(message, "recv from rank 0 (tag 3) failed on rank 1 of 2 (gloo): rank 0 sent float32 [10]"))
        << message;
    EXPECT_TRUE(contains(message, "this rank receives into")) << message;
  }
}

// A group destroyed and formed again with the same prefix on the same store connects
// afresh (it does not read the addresses of its previous life).
TEST(DistGlooFailure, GroupFormsAgainOnTheSameStore) {
  auto store = test_store();
  for (int round = 0; round < 3; ++round) {
    run_ranks(
        2,
        [&](int r, PG& pg) {
          Tensor t = full({5}, r + round);
          pg->all_reduce(t);
          EXPECT_TRUE(matches(t, [&](int64_t) { return 1.0 + 2 * round; }, 0.0)) << "round " << round;
        },
        {}, store);
  }
}

}  // namespace
}  // namespace zae::dist::test
