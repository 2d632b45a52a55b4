import CLorarar

/// How `Adapter.merge` combines a content and a style LoRA (`lorarar_merge_params`).
public struct MergeParams: Sendable {
    public enum Method: Sendable {
        /// contentScale * content + styleScale * style.
        case direct
        /// Per-column coefficients (layers without any are summed).
        case columns(Coefficients)
    }

    public var method: Method
    public var contentScale: Float
    public var styleScale: Float

    /// Defaults: `lorarar_merge_default_params()` (direct, both scales 1).
    public init(method: Method = .direct, contentScale: Float? = nil, styleScale: Float? = nil) {
        let d = lorarar_merge_default_params()
        self.method = method
        self.contentScale = contentScale ?? d.content_scale
        self.styleScale = styleScale ?? d.style_scale
    }
}

/// A folded adapter: the merge of a content and a style LoRA, itself a LoRA of rank r_content + r_style per layer
/// (`lorarar_adapter`). Merging records the parts (microseconds); factors are materialised only when asked for.
/// It keeps the LoRAs' files mapped. Immutable and thread-safe; freed on deinit.
public final class Adapter: @unchecked Sendable {
    let handle: OpaquePointer
    /// Rank is the folded rank, alpha == rank, scale == 1 (scales live in A').
    public let layers: [LayerInfo]

    private init(taking h: OpaquePointer) throws {
        do {
            layers = try LayerInfo.list(count: Int(lorarar_adapter_num_layers(h))) { lorarar_adapter_layer(h, $0, $1) }
        } catch {
            lorarar_adapter_free(h)
            throw error
        }
        handle = h
    }

    /// Merges a pair (`lorarar_merge`).
    public static func merge(content: LoraFile, style: LoraFile, params: MergeParams = MergeParams()) throws -> Adapter {
        var p = lorarar_merge_default_params()
        p.content_scale = params.contentScale
        p.style_scale = params.styleScale
        var coefficients: Coefficients?
        switch params.method {
        case .direct:
            p.method = LORARAR_MERGE_DIRECT
        case .columns(let c):
            p.method = LORARAR_MERGE_COLUMNS
            p.coeffs = c.handle
            coefficients = c
        }
        var out: OpaquePointer?
        let status = withExtendedLifetime(coefficients) { lorarar_merge(content.handle, style.handle, &p, &out) }
        try LorararError.check(status)
        guard let h = out else { throw LorararError(status: .internalError, message: "no handle") }
        return try Adapter(taking: h)
    }

    /// An adapter of a single LoRA at `scale` (`lorarar_adapter_from_lora`).
    public convenience init(lora: LoraFile, scale: Float = 1) throws {
        var out: OpaquePointer?
        try LorararError.check(lorarar_adapter_from_lora(lora.handle, scale, &out))
        guard let h = out else { throw LorararError(status: .internalError, message: "no handle") }
        try self.init(taking: h)
    }

    /// Layer `index`'s A' (rank x in_features) and B' (out_features x rank), float32, row-major.
    public func materialize(layer index: Int) throws -> (a: [Float], b: [Float]) {
        guard layers.indices.contains(index) else { throw LorararError.argument("layer index out of range") }
        let l = layers[index]
        var a = [Float](repeating: 0, count: l.rank * l.inFeatures)
        var b = [Float](repeating: 0, count: l.outFeatures * l.rank)
        try materialize(layer: index, a: &a, b: &b)
        return (a, b)
    }

    /// Writes layer `index`'s factors into caller arrays of exactly rank x in_features and out_features x rank.
    public func materialize(layer index: Int, a: inout [Float], b: inout [Float]) throws {
        guard index >= 0 else { throw LorararError.argument("layer index out of range") }
        let status = a.withUnsafeMutableBufferPointer { ap in
            b.withUnsafeMutableBufferPointer { bp in
                lorarar_adapter_materialize(handle, index, ap.baseAddress, ap.count, bp.baseAddress, bp.count)
            }
        }
        try LorararError.check(status)
    }

    /// Writes the adapter as a standard LoRA (diffusers / peft keys and metadata), atomically.
    public func save(to path: String, dtype: DType = .f16) throws {
        try LorararError.check(lorarar_adapter_save(handle, path, dtype.cValue))
    }

    /// Fuses layer `module` into a float32 weight in place, W += scale * B' A' (`lorarar_fuse_weights`).
    /// - Parameter weight: row-major `outFeatures x inFeatures`; its count must be exactly that.
    /// - Throws: `.notFound` when the adapter has no such layer, `.invalidArgument` when the shape is not the layer's.
    public func fuse(
        module: String, into weight: inout [Float], outFeatures: Int, inFeatures: Int,
        params: FuseParams = FuseParams()
    ) throws {
        try Self.checkWeightCount(weight.count, outFeatures: outFeatures, inFeatures: inFeatures)
        let status = params.withCParams { p in
            weight.withUnsafeMutableBytes { buffer in
                lorarar_fuse_weights(
                    handle, module, buffer.baseAddress, LORARAR_DTYPE_F32, Int64(outFeatures), Int64(inFeatures), p)
            }
        }
        try LorararError.check(status)
    }

    /// Fuses layer `module` into a half-precision weight in place, given as bit patterns: `.f16` (IEEE binary16) or
    /// `.bf16` (the upper half of a float32). Otherwise as the float32 version.
    public func fuse(
        module: String, into weight: inout [UInt16], dtype: DType, outFeatures: Int, inFeatures: Int,
        params: FuseParams = FuseParams()
    ) throws {
        guard dtype != .f32 else {
            throw LorararError.argument("a [UInt16] weight holds F16 or BF16 values, not F32")
        }
        try Self.checkWeightCount(weight.count, outFeatures: outFeatures, inFeatures: inFeatures)
        let status = params.withCParams { p in
            weight.withUnsafeMutableBytes { buffer in
                lorarar_fuse_weights(
                    handle, module, buffer.baseAddress, dtype.cValue, Int64(outFeatures), Int64(inFeatures), p)
            }
        }
        try LorararError.check(status)
    }

    /// `lorarar_fuse_weights` takes no buffer size and writes outFeatures x inFeatures elements: checked here.
    private static func checkWeightCount(_ count: Int, outFeatures: Int, inFeatures: Int) throws {
        guard outFeatures > 0, inFeatures > 0 else {
            throw LorararError.argument("out_features and in_features must be positive")
        }
        let (product, overflow) = outFeatures.multipliedReportingOverflow(by: inFeatures)
        guard !overflow, product == count else {
            throw LorararError.argument(
                "weight holds \(count) values, not out_features x in_features (\(outFeatures) x \(inFeatures))")
        }
    }

    deinit { lorarar_adapter_free(handle) }
}
