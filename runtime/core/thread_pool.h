// A fixed pool of worker threads for data-parallel loops (fusing layers,
// packing adapters). The calling thread works too, so a pool of n threads
// starts n - 1 workers. One parallel_for runs at a time per pool.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lorarar {

class ThreadPool {
 public:
  // num_threads <= 0: one per hardware thread.
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(i) for i in [0, n), spread over the pool; returns when all are done.
  void parallel_for(size_t n, const std::function<void(size_t)>& fn);

 private:
  void worker_loop();
  void run_tasks();

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // serialises parallel_for callers
  std::mutex mutex_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  // Atomic because a worker that wakes late for a finished loop may read them
  // while the next loop is being set up (it then claims that loop's tasks).
  std::atomic<const std::function<void(size_t)>*> fn_{nullptr};
  std::atomic<size_t> n_{0};
  std::atomic<size_t> next_{0};
  size_t generation_ = 0;
  int active_ = 0;
  bool stop_ = false;
};

}  // namespace lorarar
