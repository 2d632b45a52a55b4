import CLorarar
import Foundation

/// A bundle made by `lorarar export --backend xnnpack`: text encoder, UNet with a LoRA slot, VAE decoder and the
/// LoRA.rar hypernetwork as ExecuTorch programs, plus tokenizer and scheduler files (`lorarar_engine`).
///
/// Load it once (it maps the programs and, by default, checks every file's sha256) and share it: an Engine is
/// immutable and thread-safe. Generate through a `Context` per concurrent generation (`makeContext()`); contexts
/// keep the engine alive. Freed on deinit.
///
/// ```swift
/// let engine = try Engine(bundlePath: bundleURL.path)
/// let context = try engine.makeContext()
/// try context.setLoras(content: try LoraFile(path: contentPath), style: try LoraFile(path: stylePath))
/// let image = try await context.generate(GenerateParams(prompt: "a sks dog in zwz style", seed: 42)) { progress in
///     print(progress.step, "/", progress.totalSteps)
///     return true  // false cancels
/// }
/// ```
public final class Engine: @unchecked Sendable {
    let handle: OpaquePointer
    public let bundlePath: String
    /// Image size, LoRA slot, backend... (read once at load).
    public let info: EngineInfo

    /// Loads a bundle (`lorarar_engine_load`). Blocks for as long as loading takes: call it off the main thread.
    /// - Parameters:
    ///   - threads: threads for the programs; nil: the C API's default (0, one per hardware thread).
    ///   - verifyChecksums: check the sha256 of every bundle file against the manifest; nil: the default (yes).
    ///   - parallelContexts: give each context its own activation workspace, so contexts generate in parallel at
    ///     more memory each; nil: the default (no: they share one and take turns per delegate call).
    ///   - packedCacheDir: an existing folder private to the app (its Caches directory): the first load writes
    ///     each program's XNNPACK-packed weights there, later loads map them (no repacking; clean pages the OS
    ///     can evict instead of heap); nil: packed on the heap at every load.
    /// - Throws: `LorararError`, e.g. `.notFound` "`<dir>: no manifest.json (not a bundle, or an unfinished export)`".
    public init(bundlePath: String, threads: Int? = nil, verifyChecksums: Bool? = nil,
                parallelContexts: Bool? = nil, packedCacheDir: String? = nil) throws {
        var params = lorarar_engine_default_params()
        if let t = threads { params.n_threads = Int32(clamping: t) }
        if let v = verifyChecksums { params.verify_checksums = v ? 1 : 0 }
        if let p = parallelContexts { params.parallel_contexts = p ? 1 : 0 }
        var out: OpaquePointer?
        // The C string must outlive the call: strdup'd, freed after it (the engine copies the path).
        let cacheDir = packedCacheDir.map { strdup($0) } ?? nil
        defer { free(cacheDir) }
        params.packed_cache_dir = UnsafePointer(cacheDir)
        try LorararError.check(lorarar_engine_load(bundlePath, &params, &out))
        guard let h = out else { throw LorararError(status: .internalError, message: "\(bundlePath): no handle") }
        var c = lorarar_engine_info()
        do {
            try LorararError.check(lorarar_engine_get_info(h, &c))
        } catch {
            lorarar_engine_free(h)
            throw error
        }
        handle = h
        self.bundlePath = bundlePath
        info = EngineInfo(c)  // copies the strings, which live as long as the engine
    }

    /// Checks that every layer of the LoRA is in the bundle's LoRA slot with a matching shape
    /// (`lorarar_engine_check_lora`); the error names the file and the first layer that is not.
    public func checkLora(_ lora: LoraFile) throws {
        try LorararError.check(lorarar_engine_check_lora(handle, lora.handle))
    }

    /// A new context: scratch memory and a LoRA slot holding no LoRA (`lorarar_context_create`).
    public func makeContext() throws -> Context {
        var out: OpaquePointer?
        try LorararError.check(lorarar_context_create(handle, &out))
        guard let h = out else { throw LorararError(status: .internalError, message: "no handle") }
        return Context(handle: h, engine: self)
    }

    deinit { lorarar_engine_free(handle) }
}
