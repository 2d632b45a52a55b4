#include "core/thread_pool.h"

namespace lorarar {

namespace {
// Far above any task count, and far from wrapping when late claims add to it.
constexpr size_t kNoTasks = static_cast<size_t>(-1) / 2;
}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::thread::hardware_concurrency());
  if (num_threads <= 0) num_threads = 1;
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::run_tasks() {
  while (true) {
    const size_t i = next_.fetch_add(1);
    if (i >= n_.load()) break;
    (*fn_.load())(i);
  }
}

void ThreadPool::worker_loop() {
  size_t seen = 0;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      ++active_;
    }
    run_tasks();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--active_ == 0) done_cv_.notify_all();
    }
  }
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  if (workers_.empty() || n == 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    next_.store(kNoTasks);  // claims fail until fn_ and n_ are in place
    fn_.store(&fn);
    n_.store(n);
    next_.store(0);
    ++generation_;
  }
  start_cv_.notify_all();
  run_tasks();
  std::unique_lock<std::mutex> lock(mutex_);
  // Workers that woke for this generation finish their claimed tasks; the
  // counter is past n, so late wakers find nothing and leave at once.
  done_cv_.wait(lock, [&] { return active_ == 0 && next_.load() >= n; });
}

}  // namespace lorarar
