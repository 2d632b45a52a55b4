package ai.lorarar;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

/** Handle lifetimes: close(), deferred frees under concurrent use, and the unreachable-object safety net. */
public class HandleTest {
  private Path dir;
  private Path loraPath;

  @Before
  public void setUp() throws IOException {
    dir = TestFiles.tempDir();
    loraPath = TestFiles.writePeftLora(dir, "l.safetensors", 1, 4);
  }

  @After
  public void tearDown() throws IOException {
    TestFiles.deleteTree(dir);
  }

  @Test
  public void closeFreesOnce() {
    int before = NativeHandle.liveCount();
    LoraFile lora = LoraFile.load(loraPath.toString());
    Adapter adapter = Adapter.fromLora(lora, 0.5f);
    assertEquals(before + 2, NativeHandle.liveCount());
    lora.close();
    adapter.close();
    adapter.close();
    assertEquals(before, NativeHandle.liveCount());
  }

  @Test
  public void closeWhileInUseFreesWhenTheLastUserReleases() {
    AtomicLong freed = new AtomicLong();
    Object owner = new Object();
    NativeHandle h = new NativeHandle(owner, "Thing", 42, freed::set);
    assertEquals(42, h.acquire());
    h.close();
    assertTrue(h.isClosed());
    assertEquals(0, freed.get()); // still in use
    LoraFileTest.expectError(Status.INVALID_ARGUMENT, "Thing is closed", h::acquire);
    h.release();
    assertEquals(42, freed.get());
    h.close();
    assertEquals(42, freed.get());
  }

  @Test
  public void closeFromAnotherThreadDuringACall() throws Exception {
    AtomicLong freed = new AtomicLong();
    NativeHandle h = new NativeHandle(new Object(), "Thing", 7, freed::set);
    CountDownLatch inCall = new CountDownLatch(1);
    CountDownLatch closed = new CountDownLatch(1);
    Thread user = new Thread(() -> {
      h.acquire();
      try {
        inCall.countDown();
        closed.await(10, TimeUnit.SECONDS);
        assertEquals(0, freed.get());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      } finally {
        h.release();
      }
    });
    user.start();
    assertTrue(inCall.await(10, TimeUnit.SECONDS));
    h.close();
    closed.countDown();
    user.join(10_000);
    assertFalse(user.isAlive());
    assertEquals(7, freed.get());
  }

  @Test
  public void unreachableObjectsAreFreedByTheSafetyNet() throws InterruptedException {
    int before = NativeHandle.liveCount();
    for (int i = 0; i < 20; ++i) LoraFile.load(loraPath.toString()); // never closed
    assertTrue(NativeHandle.liveCount() >= before); // some may already be gone
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (NativeHandle.liveCount() > before && System.nanoTime() < deadline) {
      System.gc();
      Thread.sleep(20);
    }
    assertEquals(before, NativeHandle.liveCount());
  }
}
