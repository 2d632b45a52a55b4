import CLorarar

/// What to generate (`lorarar_generate_params`). Every value left out takes the C API's default
/// (`lorarar_generate_default_params()`: empty negative prompt, 25 steps, guidance 5, DDIM, seed 0).
/// The library checks the values when generating (steps 1...1000, finite guidance).
public struct GenerateParams: Equatable, Sendable {
    public var prompt: String
    /// Only used with guidance above 1.
    public var negativePrompt: String
    /// Denoising steps, 1...1000.
    public var steps: Int
    /// Classifier-free guidance scale; 1 or less turns guidance off.
    public var guidance: Float
    public var scheduler: SchedulerKind
    /// Same seed, same image.
    public var seed: UInt64

    public init(
        prompt: String? = nil,
        negativePrompt: String? = nil,
        steps: Int? = nil,
        guidance: Float? = nil,
        scheduler: SchedulerKind? = nil,
        seed: UInt64? = nil
    ) {
        let d = lorarar_generate_default_params()
        self.prompt = prompt ?? String(cString: d.prompt)
        self.negativePrompt = negativePrompt ?? String(cString: d.negative_prompt)
        self.steps = steps ?? Int(d.steps)
        self.guidance = guidance ?? d.guidance
        self.scheduler = scheduler ?? SchedulerKind(d.scheduler)
        self.seed = seed ?? d.seed
    }
}
