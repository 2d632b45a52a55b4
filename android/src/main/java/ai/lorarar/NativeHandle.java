package ai.lorarar;

import java.lang.ref.PhantomReference;
import java.lang.ref.Reference;
import java.lang.ref.ReferenceQueue;
import java.util.Collections;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Owns one native pointer. Every call into the library brackets its use with {@link #acquire()} / {@link #release()},
 * so {@link #close()} from another thread never frees the pointer under a running call: the last user frees it. It is
 * freed exactly once, by {@code close()} or, for a handle its owner never closed, by the cleaner thread after the
 * owner became unreachable (a PhantomReference safety net: {@code java.lang.ref.Cleaner} needs Android API 33).
 *
 * <p>The handle never refers to its owner, so it does not keep it reachable.
 */
final class NativeHandle {
  /** Frees a native pointer (one of the {@code NativeBridge.*Free} functions). */
  interface Releaser {
    void free(long pointer);
  }

  private static final AtomicInteger live = new AtomicInteger();

  private final String kind;
  private final Releaser releaser;
  private final Phantom phantom;
  private long pointer;
  private int users;
  private boolean closed;

  /**
   * @param owner the object whose reachability ends the handle's life if nobody closes it
   * @param kind the owner's class name, for "{@code <kind> is closed}" messages
   */
  NativeHandle(Object owner, String kind, long pointer, Releaser releaser) {
    if (pointer == 0) throw new LorararException(Status.INTERNAL, kind + ": the library returned a null handle");
    this.kind = kind;
    this.releaser = releaser;
    this.pointer = pointer;
    live.incrementAndGet();
    this.phantom = Phantom.register(owner, this);
  }

  /** The pointer, counted as in use until {@link #release()}; throws when closed. */
  long acquire() {
    synchronized (this) {
      if (closed) throw new LorararException(Status.INVALID_ARGUMENT, kind + " is closed");
      users++;
      return pointer;
    }
  }

  void release() {
    long toFree = 0;
    synchronized (this) {
      if (users <= 0) throw new IllegalStateException("release() without acquire()");
      users--;
      if (users == 0 && closed) {
        toFree = pointer;
        pointer = 0;
      }
    }
    free(toFree);
  }

  /** Marks the handle closed; frees the pointer now, or when its last user releases it. Idempotent. */
  void close() {
    long toFree = 0;
    synchronized (this) {
      if (closed) return;
      closed = true;
      if (users == 0) {
        toFree = pointer;
        pointer = 0;
      }
    }
    phantom.unregister();
    free(toFree);
  }

  synchronized boolean isClosed() {
    return closed;
  }

  /** Closed and no longer in use: the native object is gone. */
  synchronized boolean isFreed() {
    return closed && pointer == 0;
  }

  private void free(long p) {
    if (p == 0) return;
    live.decrementAndGet();
    releaser.free(p);
  }

  /** Native objects created and not yet freed, all kinds together (for tests and leak checks). */
  static int liveCount() {
    return live.get();
  }

  /** The safety net: closes the handle once its owner is phantom reachable. */
  private static final class Phantom extends PhantomReference<Object> {
    private static final ReferenceQueue<Object> queue = new ReferenceQueue<>();
    // Keeps the references themselves reachable until their owners go.
    private static final Set<Phantom> registered = Collections.synchronizedSet(new HashSet<Phantom>());
    private static Thread thread;

    private final NativeHandle handle;

    private Phantom(Object owner, NativeHandle handle) {
      super(owner, queue);
      this.handle = handle;
    }

    static Phantom register(Object owner, NativeHandle handle) {
      Phantom p = new Phantom(owner, handle);
      registered.add(p);
      startThread();
      return p;
    }

    void unregister() {
      registered.remove(this);
      clear();
    }

    private static synchronized void startThread() {
      if (thread != null) return;
      thread = new Thread(Phantom::drain, "lorarar-cleaner");
      thread.setDaemon(true);
      thread.start();
    }

    private static void drain() {
      while (true) {
        try {
          Reference<?> ref = queue.remove();
          if (ref instanceof Phantom) ((Phantom) ref).handle.close();
        } catch (InterruptedException e) {
          return;
        } catch (RuntimeException e) {
          // A releaser never throws; keep the safety net alive whatever happens.
        }
      }
    }
  }
}
