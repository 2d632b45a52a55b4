import CLorarar

/// One layer of a `LoraFile` or an `Adapter` (`lorarar_layer_info`).
public struct LayerInfo: Equatable, Sendable {
    /// The diffusers module path, e.g. `mid_block.attentions.0.transformer_blocks.0.attn1.to_q`.
    public let module: String
    public let rank: Int
    public let inFeatures: Int
    public let outFeatures: Int
    /// The file's alpha, or the rank where the file carries none. For an adapter: its rank.
    public let alpha: Float
    /// The factor dW = scale * B A is applied with. For an adapter: 1 (the scales live in A').
    public let scale: Float
    public let alphaInFile: Bool

    init(_ c: lorarar_layer_info) {
        module = String(cString: c.module)
        rank = Int(c.rank)
        inFeatures = Int(c.in_features)
        outFeatures = Int(c.out_features)
        alpha = c.alpha
        scale = c.scale
        alphaInFile = c.alpha_in_file != 0
    }

    /// Reads `count` layers through `get` (lorarar_lora_layer or lorarar_adapter_layer).
    static func list(
        count: Int, _ get: (Int, UnsafeMutablePointer<lorarar_layer_info>) -> lorarar_status
    ) throws -> [LayerInfo] {
        var out: [LayerInfo] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            var info = lorarar_layer_info()
            try LorararError.check(get(i, &info))
            out.append(LayerInfo(info))
        }
        return out
    }
}

/// Element type of saved factors and of fused weights (`lorarar_dtype`).
public enum DType: Sendable {
    case f32, f16, bf16

    var cValue: lorarar_dtype {
        switch self {
        case .f32: return LORARAR_DTYPE_F32
        case .f16: return LORARAR_DTYPE_F16
        case .bf16: return LORARAR_DTYPE_BF16
        }
    }
}

/// How `Adapter.fuse` and `BaseModel.writeFused` fuse W += scale * B' A' (`lorarar_fuse_params`). Values left out
/// take the C API's defaults (`lorarar_fuse_default_params()`: scale 1, one thread per hardware thread, "auto").
public struct FuseParams: Equatable, Sendable {
    /// The factor the adapter is fused with.
    public var scale: Float
    /// Threads; 0: one per hardware thread.
    public var threads: Int
    /// "auto", "scalar", "avx2" or "neon".
    public var kernel: String

    public init(scale: Float? = nil, threads: Int? = nil, kernel: String? = nil) {
        let d = lorarar_fuse_default_params()
        self.scale = scale ?? d.scale
        self.threads = threads ?? Int(d.n_threads)
        self.kernel = kernel ?? String(cString: d.kernel)
    }

    /// Calls `body` with these values as a `lorarar_fuse_params`, valid during the call.
    func withCParams<R>(_ body: (UnsafePointer<lorarar_fuse_params>) throws -> R) rethrows -> R {
        try kernel.withCString { kernelName in
            var p = lorarar_fuse_default_params()
            p.scale = scale
            p.n_threads = Int32(clamping: threads)
            p.kernel = kernelName
            return try withUnsafePointer(to: &p) { try body($0) }
        }
    }
}

/// How `Context.setLoras` combines the pair (`lorarar_apply_method`).
public enum ApplyMethod: Sendable {
    /// LoRA.rar coefficients on the merged layers, the other layers summed (the C API's default).
    case hypernet
    /// contentScale * content + styleScale * style.
    case direct
    /// The content LoRA alone; the style may be nil.
    case single

    var cValue: lorarar_apply_method {
        switch self {
        case .hypernet: return LORARAR_APPLY_HYPERNET
        case .direct: return LORARAR_APPLY_DIRECT
        case .single: return LORARAR_APPLY_SINGLE
        }
    }
}

/// The denoising scheduler (`lorarar_scheduler_kind`). (Not named `Scheduler`, which Combine already has.)
public enum SchedulerKind: Sendable {
    case ddim, euler, lcm

    init(_ c: lorarar_scheduler_kind) {
        switch c {
        case LORARAR_SCHEDULER_EULER: self = .euler
        case LORARAR_SCHEDULER_LCM: self = .lcm
        default: self = .ddim
        }
    }

    var cValue: lorarar_scheduler_kind {
        switch self {
        case .ddim: return LORARAR_SCHEDULER_DDIM
        case .euler: return LORARAR_SCHEDULER_EULER
        case .lcm: return LORARAR_SCHEDULER_LCM
        }
    }
}

/// How long `Context.setLoras` took, in milliseconds (`lorarar_merge_timings`).
public struct MergeTimings: Sendable {
    /// Predicting the LoRA.rar coefficients.
    public let hypernetMs: Double
    /// Folding the pair into the LoRA slot's buffers.
    public let foldMs: Double
    public let totalMs: Double

    init(_ c: lorarar_merge_timings) {
        hypernetMs = c.hypernet_ms
        foldMs = c.fold_ms
        totalMs = c.total_ms
    }
}

/// How long a generation took, in milliseconds (`lorarar_generate_timings`).
public struct GenerateTimings: Sendable {
    public let textEncoderMs: Double
    /// All denoising steps.
    public let denoiseMs: Double
    public let stepMsMedian: Double
    public let decodeMs: Double
    public let totalMs: Double

    init(_ c: lorarar_generate_timings) {
        textEncoderMs = c.text_encoder_ms
        denoiseMs = c.denoise_ms
        stepMsMedian = c.step_ms_median
        decodeMs = c.decode_ms
        totalMs = c.total_ms
    }
}

/// What a loaded bundle holds (`lorarar_engine_info`).
public struct EngineInfo: Sendable {
    /// Size of the generated RGB8 images.
    public let imageWidth: Int
    public let imageHeight: Int
    public let latentChannels: Int
    public let latentWidth: Int
    public let latentHeight: Int
    /// The LoRA slot's rank: the content rank plus the style rank must fit.
    public let maxRank: Int
    /// Layers of the LoRA slot.
    public let loraTargetCount: Int
    /// e.g. "xnnpack".
    public let backend: String
    /// e.g. "none", "int8".
    public let quantization: String
    /// Whether the bundle carries the LoRA.rar hypernetwork (`ApplyMethod.hypernet`).
    public let hasHypernet: Bool
    /// Side of the latent tile the VAE decoder takes (`--vae-tile`); 0 when it decodes the whole latent.
    public let vaeTile: Int
    /// The least overlap of neighbouring VAE tiles, in latent pixels; 0 when untiled.
    public let vaeTileOverlap: Int
    /// VAE decoder runs per image: the tiles, or 1 (`DecodeProgress.totalTiles`).
    public let vaeTiles: Int

    /// Bytes of one image: width x height x 3.
    public var imageBytes: Int { imageWidth * imageHeight * 3 }

    init(_ c: lorarar_engine_info) {
        imageWidth = Int(c.image_width)
        imageHeight = Int(c.image_height)
        latentChannels = Int(c.latent_channels)
        latentWidth = Int(c.latent_width)
        latentHeight = Int(c.latent_height)
        maxRank = Int(c.max_rank)
        loraTargetCount = Int(c.num_lora_targets)
        backend = String(cString: c.backend)
        quantization = String(cString: c.quantization)
        hasHypernet = c.has_hypernet != 0
        vaeTile = Int(c.vae_tile)
        vaeTileOverlap = Int(c.vae_tile_overlap)
        vaeTiles = Int(c.vae_tiles)
    }
}

/// One finished denoising step, as the progress callback sees it.
public struct GenerationProgress: Sendable, Equatable {
    /// The step just finished, 1...totalSteps.
    public let step: Int
    public let totalSteps: Int

    public init(step: Int, totalSteps: Int) {
        self.step = step
        self.totalSteps = totalSteps
    }

    /// step / totalSteps.
    public var fraction: Double { totalSteps > 0 ? Double(step) / Double(totalSteps) : 0 }
}

/// One finished run of the VAE decoder (a tile of a tiled decoder, or the whole latent), after the last step.
public struct DecodeProgress: Sendable, Equatable {
    /// The decoder runs done, 1...totalTiles.
    public let tile: Int
    public let totalTiles: Int

    public init(tile: Int, totalTiles: Int) {
        self.tile = tile
        self.totalTiles = totalTiles
    }

    /// tile / totalTiles.
    public var fraction: Double { totalTiles > 0 ? Double(tile) / Double(totalTiles) : 0 }
}
