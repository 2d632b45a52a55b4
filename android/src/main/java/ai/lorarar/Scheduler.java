package ai.lorarar;

/** The denoising scheduler ({@code lorarar_scheduler_kind}). */
public enum Scheduler {
  DDIM(0),
  EULER(1),
  LCM(2);

  final int code;

  Scheduler(int code) {
    this.code = code;
  }

  static Scheduler fromCode(int code) {
    for (Scheduler s : values()) {
      if (s.code == code) return s;
    }
    throw new IllegalArgumentException("unknown scheduler " + code);
  }
}
