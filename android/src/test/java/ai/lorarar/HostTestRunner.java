package ai.lorarar;

import java.util.ArrayList;
import java.util.List;
import org.junit.runner.Description;
import org.junit.runner.JUnitCore;
import org.junit.runner.Result;
import org.junit.runner.notification.Failure;
import org.junit.runner.notification.RunListener;

/**
 * Runs the test classes named on the command line like {@code org.junit.runner.JUnitCore}, and also says which tests
 * were skipped (an {@code Assume} that failed: the engine tests without a bundle) and why, so a green run with
 * nothing exercised cannot pass unnoticed. Exit status 1 when a test failed.
 */
public final class HostTestRunner {
  private HostTestRunner() {}

  public static void main(String[] args) throws ClassNotFoundException {
    List<Class<?>> classes = new ArrayList<>();
    for (String name : args) classes.add(Class.forName(name));
    List<String> skipped = new ArrayList<>();
    JUnitCore core = new JUnitCore();
    core.addListener(new org.junit.internal.TextListener(System.out));
    core.addListener(
        new RunListener() {
          @Override
          public void testAssumptionFailure(Failure failure) {
            skipped.add(failure.getDescription().getDisplayName() + ": " + failure.getMessage());
          }

          @Override
          public void testIgnored(Description description) {
            skipped.add(description.getDisplayName() + ": @Ignore");
          }
        });
    Result result = core.run(classes.toArray(new Class<?>[0]));
    for (String s : skipped) System.out.println("skipped " + s);
    System.out.println(
        "host tests: "
            + result.getRunCount()
            + " run, "
            + (result.getRunCount() - result.getFailureCount() - skipped.size())
            + " passed, "
            + skipped.size()
            + " skipped, "
            + result.getFailureCount()
            + " failed");
    System.exit(result.wasSuccessful() ? 0 : 1);
  }
}
