#include <cstring>

#include "harness.h"

namespace lorarar_test {

std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}

static int g_failures = 0;

void record_failure(const char* file, int line, const std::string& message) {
  ++g_failures;
  std::fprintf(stderr, "  FAIL %s:%d: %s\n", file, line, message.c_str());
}

}  // namespace lorarar_test

int main(int argc, char** argv) {
  using namespace lorarar_test;
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int run = 0, failed = 0;
  for (const auto& t : registry()) {
    if (filter && !std::strstr(t.name, filter)) continue;
    const int before = g_failures;
    t.fn();
    ++run;
    if (g_failures != before) {
      ++failed;
      std::fprintf(stderr, "[FAIL] %s\n", t.name);
    } else {
      std::printf("[ ok ] %s\n", t.name);
    }
  }
  std::printf("%d tests, %d failed\n", run, failed);
  return failed == 0 && run > 0 ? 0 : 1;
}
