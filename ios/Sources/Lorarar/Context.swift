import CLorarar
import Foundation

/// A flag several threads read and write.
final class AtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    func set(_ v: Bool) {
        lock.lock()
        value = v
        lock.unlock()
    }

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}

/// What the C progress callback reaches through `user_data` during one generation.
private final class ProgressBox {
    let contextCancel: AtomicFlag
    let taskCancel: AtomicFlag?
    let callback: ((GenerationProgress) -> Bool)?
    let decodeCallback: ((DecodeProgress) -> Bool)?

    init(
        contextCancel: AtomicFlag, taskCancel: AtomicFlag?, callback: ((GenerationProgress) -> Bool)?,
        decodeCallback: ((DecodeProgress) -> Bool)?
    ) {
        self.contextCancel = contextCancel
        self.taskCancel = taskCancel
        self.callback = callback
        self.decodeCallback = decodeCallback
    }

    private var cancelled: Bool { contextCancel.isSet || taskCancel?.isSet == true }

    /// False stops the generation.
    func step(_ step: Int, _ total: Int) -> Bool {
        if cancelled { return false }
        return callback?(GenerationProgress(step: step, totalSteps: total)) ?? true
    }

    /// False stops the generation.
    func tile(_ tile: Int, _ total: Int) -> Bool {
        if cancelled { return false }
        return decodeCallback?(DecodeProgress(tile: tile, totalTiles: total)) ?? true
    }
}

/// `lorarar_progress_fn`: a C function pointer, so it captures nothing; the box comes through `user_data`.
private let progressTrampoline: lorarar_progress_fn = { step, total, userData in
    guard let userData = userData else { return 0 }
    let box = Unmanaged<ProgressBox>.fromOpaque(userData).takeUnretainedValue()
    return box.step(Int(step), Int(total)) ? 0 : 1
}

/// The same for `decode_progress`.
private let decodeProgressTrampoline: lorarar_progress_fn = { tile, total, userData in
    guard let userData = userData else { return 0 }
    let box = Unmanaged<ProgressBox>.fromOpaque(userData).takeUnretainedValue()
    return box.tile(Int(tile), Int(total)) ? 0 : 1
}

/// One generation's state: the current LoRA pair, folded into the engine's LoRA slot, and scratch memory
/// (`lorarar_context`). Switching the pair never reloads base weights: `setLoras` takes milliseconds.
///
/// Threads: every call runs on the context's own serial queue, one at a time (the async `generate` too, so it never
/// blocks Swift's cooperative thread pool), except `cancel()`, which is safe from anywhere. For parallel generations
/// make several contexts from one engine. The progress callback runs on the context's queue; calling this context's
/// synchronous methods from it throws instead of waiting on itself. Freed on deinit (a running generation keeps the
/// context alive until it returns).
public final class Context: @unchecked Sendable {
    let handle: OpaquePointer
    /// The engine it generates with (kept alive by the context).
    public let engine: Engine
    private let queue: DispatchQueue
    private let cancelFlag = AtomicFlag()
    private static let queueKey = DispatchSpecificKey<ObjectIdentifier>()

    init(handle: OpaquePointer, engine: Engine) {
        self.handle = handle
        self.engine = engine
        queue = DispatchQueue(label: "ai.lorarar.context", qos: .userInitiated)
        queue.setSpecific(key: Context.queueKey, value: ObjectIdentifier(self))
    }

    deinit { lorarar_context_free(handle) }

    /// Runs `body` on the queue and waits; refuses to when already on it (the progress callback), which would
    /// deadlock.
    private func sync<T>(_ body: () throws -> T) throws -> T {
        if DispatchQueue.getSpecific(key: Context.queueKey) == ObjectIdentifier(self) {
            throw LorararError.argument("a Context's methods cannot be called from its own progress callback")
        }
        return try queue.sync(execute: body)
    }

    /// Merges the pair and loads it into the LoRA slot (`lorarar_context_set_loras`). The LoRA files are not needed
    /// afterwards. Parameters left out take `lorarar_apply_default_params()`: the hypernetwork, both scales 1.
    /// - Parameters:
    ///   - content: the content LoRA; nil with `.single` (and a nil style) empties the slot.
    ///   - style: the style LoRA; may be nil with `.single`.
    /// - Returns: how long merging took.
    /// - Throws: e.g. `.invalidArgument` naming the file and the layer the bundle's slot does not fit.
    @discardableResult
    public func setLoras(
        content: LoraFile?, style: LoraFile?, method: ApplyMethod? = nil, contentScale: Float? = nil,
        styleScale: Float? = nil
    ) throws -> MergeTimings {
        try sync {
            var params = lorarar_apply_default_params()
            if let m = method { params.method = m.cValue }
            if let c = contentScale { params.content_scale = c }
            if let s = styleScale { params.style_scale = s }
            var t = lorarar_merge_timings()
            let status = withExtendedLifetime((content, style)) {
                lorarar_context_set_loras(handle, content?.handle, style?.handle, &params, &t)
            }
            try LorararError.check(status)
            return MergeTimings(t)
        }
    }

    /// Empties the LoRA slot: generations use the base model alone.
    public func clearLoras() throws {
        try setLoras(content: nil, style: nil, method: .single)
    }

    /// Loads an already merged adapter into the LoRA slot (`lorarar_context_set_adapter`).
    public func setAdapter(_ adapter: Adapter) throws {
        try sync {
            let status = withExtendedLifetime(adapter) { lorarar_context_set_adapter(handle, adapter.handle) }
            try LorararError.check(status)
        }
    }

    /// Asks the generation running on this context to stop after its current step (`lorarar_context_cancel`); it
    /// then throws `LorararError` with status `.cancelled`. Safe from any thread, the progress callback included.
    /// A cancel while nothing runs does not carry over to the next generation.
    public func cancel() {
        cancelFlag.set(true)
        lorarar_context_cancel(handle)
    }

    /// Generates an image, blocking the calling thread (not the main thread, please) until it is done.
    /// - Parameters:
    ///   - progress: called after each step on the context's queue; return false to cancel.
    ///   - decodeProgress: called after each run of the VAE decoder, which follows the last step (one per tile of a
    ///     bundle exported with `--vae-tile`, `EngineInfo.vaeTiles` of them, else one); return false to cancel.
    /// - Throws: `LorararError`: `.cancelled` ("generation cancelled") after `cancel()` or a progress callback that
    ///   returned false; `.invalidArgument` for bad parameters ("steps must be 1..1000", "guidance must be finite").
    public func generateBlocking(
        _ params: GenerateParams, progress: ((GenerationProgress) -> Bool)? = nil,
        decodeProgress: ((DecodeProgress) -> Bool)? = nil
    ) throws -> GeneratedImage {
        try sync { try run(params, taskCancel: nil, progress: progress, decodeProgress: decodeProgress) }
    }

    /// Generates an image on the context's queue, suspending the caller meanwhile.
    ///
    /// Cancelling the calling Task stops the generation after its current step and throws `CancellationError`;
    /// `cancel()` or a progress callback returning false throws `LorararError` with status `.cancelled`.
    /// - Parameters:
    ///   - progress: called after each step, on the context's queue (hop to the main actor yourself for UI); return
    ///     false to cancel.
    ///   - decodeProgress: called after each VAE decoder run (see `generateBlocking`), on the same queue.
    public func generate(
        _ params: GenerateParams, progress: (@Sendable (GenerationProgress) -> Bool)? = nil,
        decodeProgress: (@Sendable (DecodeProgress) -> Bool)? = nil
    ) async throws -> GeneratedImage {
        try Task.checkCancellation()
        let taskCancel = AtomicFlag()
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<GeneratedImage, Error>) in
                    queue.async {
                        continuation.resume(
                            with: Result {
                                try self.run(
                                    params, taskCancel: taskCancel, progress: progress, decodeProgress: decodeProgress)
                            })
                    }
                }
            } onCancel: {
                taskCancel.set(true)
                self.cancel()
            }
        } catch let error as LorararError where error.status == .cancelled && taskCancel.isSet {
            throw CancellationError()
        }
    }

    /// One generation as a stream: `.progress` after each step, `.decoding` after each VAE decoder run, then
    /// `.finished` with the image. Ending the iteration early, or cancelling the Task that iterates, cancels the
    /// generation.
    public func generationEvents(_ params: GenerateParams) -> AsyncThrowingStream<GenerationEvent, Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let image = try await self.generate(
                        params,
                        progress: { progress in
                            continuation.yield(.progress(progress))
                            return true
                        },
                        decodeProgress: { progress in
                            continuation.yield(.decoding(progress))
                            return true
                        })
                    continuation.yield(.finished(image))
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Runs one generation; on the context's queue.
    private func run(
        _ params: GenerateParams, taskCancel: AtomicFlag?, progress: ((GenerationProgress) -> Bool)?,
        decodeProgress: ((DecodeProgress) -> Bool)?
    ) throws -> GeneratedImage {
        cancelFlag.set(false)
        if taskCancel?.isSet == true { throw CancellationError() }
        let info = engine.info
        let box = ProgressBox(
            contextCancel: cancelFlag, taskCancel: taskCancel, callback: progress, decodeCallback: decodeProgress)
        var rgb = [UInt8](repeating: 0, count: info.imageBytes)
        var t = lorarar_generate_timings()
        let status: lorarar_status = withExtendedLifetime(box) {
            params.prompt.withCString { prompt in
                params.negativePrompt.withCString { negative in
                    var p = lorarar_generate_default_params()
                    p.prompt = prompt
                    p.negative_prompt = negative
                    p.steps = Int32(clamping: params.steps)
                    p.guidance = params.guidance
                    p.scheduler = params.scheduler.cValue
                    p.seed = params.seed
                    p.progress = progressTrampoline
                    p.decode_progress = decodeProgressTrampoline
                    p.user_data = Unmanaged.passUnretained(box).toOpaque()
                    return rgb.withUnsafeMutableBufferPointer { buffer in
                        lorarar_generate(handle, &p, buffer.baseAddress, buffer.count, &t)
                    }
                }
            }
        }
        try LorararError.check(status)
        return GeneratedImage(width: info.imageWidth, height: info.imageHeight, rgb: rgb, timings: GenerateTimings(t))
    }
}

/// What `Context.generationEvents` yields.
public enum GenerationEvent: Sendable {
    case progress(GenerationProgress)
    case decoding(DecodeProgress)
    case finished(GeneratedImage)
}
