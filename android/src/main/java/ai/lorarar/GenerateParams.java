package ai.lorarar;

/**
 * What to generate ({@code lorarar_generate_params}). Immutable; made with {@link #builder()}, whose defaults are read
 * from the C API's {@code lorarar_generate_default_params()}: empty prompts, 25 steps, guidance 5, DDIM, seed 0.
 *
 * <pre>{@code
 * GenerateParams params = GenerateParams.builder("a sks dog in zwz style").steps(20).seed(42).build();
 * }</pre>
 *
 * The C API checks the values when generating (steps 1..1000, finite guidance) and {@code generate} throws a {@link
 * LorararException} naming the bad one.
 */
public final class GenerateParams {
  private final String prompt;
  private final String negativePrompt;
  private final int steps;
  private final float guidance;
  private final Scheduler scheduler;
  private final long seed;

  private GenerateParams(Builder b) {
    this.prompt = b.prompt;
    this.negativePrompt = b.negativePrompt;
    this.steps = b.steps;
    this.guidance = b.guidance;
    this.scheduler = b.scheduler;
    this.seed = b.seed;
  }

  /** A builder holding the C API's defaults. */
  public static Builder builder() {
    return new Builder();
  }

  /** A builder holding the C API's defaults and this prompt. */
  public static Builder builder(String prompt) {
    return new Builder().prompt(prompt);
  }

  /** A builder holding these parameters. */
  public Builder toBuilder() {
    Builder b = new Builder();
    b.prompt = prompt;
    b.negativePrompt = negativePrompt;
    b.steps = steps;
    b.guidance = guidance;
    b.scheduler = scheduler;
    b.seed = seed;
    return b;
  }

  public String prompt() {
    return prompt;
  }

  public String negativePrompt() {
    return negativePrompt;
  }

  public int steps() {
    return steps;
  }

  public float guidance() {
    return guidance;
  }

  public Scheduler scheduler() {
    return scheduler;
  }

  /** The seed's 64 bits, read by the library as an unsigned number: same seed, same image. */
  public long seed() {
    return seed;
  }

  @Override
  public String toString() {
    return "GenerateParams{prompt=\""
        + prompt
        + "\", negativePrompt=\""
        + negativePrompt
        + "\", steps="
        + steps
        + ", guidance="
        + guidance
        + ", scheduler="
        + scheduler
        + ", seed="
        + Long.toUnsignedString(seed)
        + "}";
  }

  /** Builds {@link GenerateParams}; not thread-safe. */
  public static final class Builder {
    private String prompt = Defaults.PROMPT;
    private String negativePrompt = Defaults.NEGATIVE_PROMPT;
    private int steps = Defaults.STEPS;
    private float guidance = Defaults.GUIDANCE;
    private Scheduler scheduler = Defaults.SCHEDULER;
    private long seed = Defaults.SEED;

    private Builder() {}

    public Builder prompt(String prompt) {
      this.prompt = Checks.notNull(prompt, "prompt");
      return this;
    }

    /** Default "". Only used with guidance above 1. */
    public Builder negativePrompt(String negativePrompt) {
      this.negativePrompt = Checks.notNull(negativePrompt, "negativePrompt");
      return this;
    }

    /** Denoising steps, 1..1000 (default 25). */
    public Builder steps(int steps) {
      this.steps = steps;
      return this;
    }

    /** Classifier-free guidance scale (default 5); 1 or less turns guidance off. */
    public Builder guidance(float guidance) {
      this.guidance = guidance;
      return this;
    }

    public Builder scheduler(Scheduler scheduler) {
      this.scheduler = Checks.notNull(scheduler, "scheduler");
      return this;
    }

    /** Any 64 bits (read as unsigned). */
    public Builder seed(long seed) {
      this.seed = seed;
      return this;
    }

    public GenerateParams build() {
      return new GenerateParams(this);
    }
  }

  /** The C API's defaults, read once. */
  private static final class Defaults {
    static final String PROMPT;
    static final String NEGATIVE_PROMPT;
    static final int STEPS;
    static final float GUIDANCE;
    static final Scheduler SCHEDULER;
    static final long SEED;

    static {
      String[] prompts = NativeBridge.generateDefaultPrompts();
      double[] numbers = NativeBridge.generateDefaultNumbers();
      PROMPT = prompts[0];
      NEGATIVE_PROMPT = prompts[1];
      STEPS = (int) numbers[0];
      GUIDANCE = (float) numbers[1];
      SCHEDULER = Scheduler.fromCode((int) numbers[2]);
      SEED = NativeBridge.generateDefaultSeed();
    }

    private Defaults() {}
  }
}
