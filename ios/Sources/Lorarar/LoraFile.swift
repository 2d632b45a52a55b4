import CLorarar
import Foundation

/// The layers a LoRA may target, with their shapes, read from a diffusers UNet folder (`config.json` +
/// `diffusion_pytorch_model.safetensors`, or a pipeline folder with a `unet/` subfolder). Immutable; freed on deinit.
public final class BaseModel: @unchecked Sendable {
    let handle: OpaquePointer
    public let path: String

    /// Opens a UNet folder (`lorarar_base_open_unet`).
    public init(unetDirectory path: String) throws {
        var out: OpaquePointer?
        try LorararError.check(lorarar_base_open_unet(path, &out))
        guard let h = out else { throw LorararError(status: .internalError, message: "\(path): no handle") }
        handle = h
        self.path = path
    }

    /// Number of target layers (2-D weights and 1x1 convolutions).
    public var layerCount: Int { Int(lorarar_base_num_layers(handle)) }

    /// Writes `outDirectory`: this UNet folder with the adapter fused into its weights (same dtypes and shards),
    /// built beside it and renamed into place (`lorarar_fuse_unet_dir`). Every adapter layer is checked against the
    /// base weights before anything is written.
    public func writeFused(_ adapter: Adapter, to outDirectory: String, params: FuseParams = FuseParams()) throws {
        let status = params.withCParams { p in lorarar_fuse_unet_dir(handle, adapter.handle, outDirectory, p) }
        try LorararError.check(status)
    }

    deinit { lorarar_base_free(handle) }
}

/// A LoRA: a `.safetensors` file (peft / diffusers, legacy diffusers, kohya / A1111) or a folder holding
/// `adapter_model.safetensors` (+ `adapter_config.json`) or `pytorch_lora_weights.safetensors`, memory-mapped.
/// Immutable and thread-safe; its format and layers are read once at load; unmapped on deinit (an `Adapter` merged
/// from it keeps its own mapping).
public final class LoraFile: @unchecked Sendable {
    let handle: OpaquePointer
    public let path: String
    /// "peft", "diffusers-legacy" or "kohya".
    public let format: String
    /// The UNet layers, sorted by module path.
    public let layers: [LayerInfo]
    /// Text-encoder tensors in the file: reported, not applied.
    public let textEncoderTensorCount: Int

    /// Loads a LoRA (`lorarar_lora_load`).
    /// - Parameters:
    ///   - base: the model to map names onto and check shapes against; nil maps names from the diffusers vocabulary
    ///     and the SD 1.x / SDXL block layout. Used while loading only.
    ///   - checkValues: scan every factor for NaN / Inf while loading.
    /// - Throws: `LorararError` `.notFound` ("`<path>: no such file`"), `.invalidFile` ("`<path>: file is empty`"),
    ///   `.unsupported` (LoHa, LoKr, DoRA...: never half-applied)...
    public convenience init(path: String, base: BaseModel? = nil, checkValues: Bool = true) throws {
        var params = lorarar_lora_load_default_params()
        params.base = base?.handle
        params.check_values = checkValues ? 1 : 0
        var out: OpaquePointer?
        let status = withExtendedLifetime(base) { lorarar_lora_load(path, &params, &out) }
        try self.init(status: status, handle: out, path: path)
    }

    /// Loads a LoRA from the bytes of a `.safetensors` file (an asset, a download;
    /// `lorarar_lora_load_from_memory`). The bytes are copied.
    /// - Parameters:
    ///   - name: stands for the path in error messages and `path` (e.g. the asset's name).
    ///   - adapterConfigJSON: the peft adapter_config.json that goes with an adapter_model.safetensors, or nil.
    public convenience init(
        data: Data, name: String, adapterConfigJSON: String? = nil, base: BaseModel? = nil, checkValues: Bool = true
    ) throws {
        var params = lorarar_lora_load_default_params()
        params.base = base?.handle
        params.check_values = checkValues ? 1 : 0
        var out: OpaquePointer?
        let status = withExtendedLifetime(base) {
            data.withUnsafeBytes { bytes in
                lorarar_lora_load_from_memory(bytes.baseAddress, bytes.count, name, adapterConfigJSON, &params, &out)
            }
        }
        try self.init(status: status, handle: out, path: name)
    }

    private init(status: lorarar_status, handle out: OpaquePointer?, path: String) throws {
        try LorararError.check(status)
        guard let h = out else { throw LorararError(status: .internalError, message: "\(path): no handle") }
        let layers: [LayerInfo]
        do {
            layers = try LayerInfo.list(count: Int(lorarar_lora_num_layers(h))) { lorarar_lora_layer(h, $0, $1) }
        } catch {
            lorarar_lora_free(h)
            throw error
        }
        handle = h
        self.path = path
        self.layers = layers
        format = String(cString: lorarar_lora_format(h))
        textEncoderTensorCount = Int(lorarar_lora_num_text_encoder_tensors(h))
    }

    deinit { lorarar_lora_free(handle) }
}

/// Per-layer merge coefficients (m_content, m_style), one pair per input column, as the LoRA.rar hypernetwork or
/// ZipLoRA produce them (`lorarar_coeffs`). Fill it on one task, then share it.
public final class Coefficients: @unchecked Sendable {
    let handle: OpaquePointer

    /// An empty set.
    public init() throws {
        var out: OpaquePointer?
        try LorararError.check(lorarar_coeffs_create(&out))
        guard let h = out else { throw LorararError(status: .internalError, message: "no handle") }
        handle = h
    }

    /// Reads a coefficients file (safetensors with `<module>.content` and `<module>.style` vectors).
    public init(path: String) throws {
        var out: OpaquePointer?
        try LorararError.check(lorarar_coeffs_load(path, &out))
        guard let h = out else { throw LorararError(status: .internalError, message: "\(path): no handle") }
        handle = h
    }

    /// Sets one layer's vectors (copied), replacing earlier ones; both hold in_features values.
    public func set(module: String, content: [Float], style: [Float]) throws {
        guard content.count == style.count else {
            throw LorararError.argument(
                "content and style coefficients differ in length (\(content.count) vs \(style.count))")
        }
        try LorararError.check(lorarar_coeffs_set(handle, module, content, style, content.count))
    }

    public func save(to path: String) throws {
        try LorararError.check(lorarar_coeffs_save(handle, path))
    }

    deinit { lorarar_coeffs_free(handle) }
}
