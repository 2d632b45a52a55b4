import Foundation
import XCTest

@testable import Lorarar

/// The LoRA side of the bindings; needs only liblorarar (LORARAR_LIB_DIR, see README.md).
final class LorararTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorarar-swift-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    func testVersions() {
        XCTAssertEqual(LorararLibrary.apiVersion, LorararLibrary.headerAPIVersion)
        XCTAssertNotNil(LorararLibrary.version.range(of: #"^\d+\.\d+\.\d+$"#, options: .regularExpression))
        XCTAssertEqual(LorararLibrary.statusString(.unsupported), "unsupported")
        XCTAssertEqual(LorararLibrary.statusString(.cancelled), "cancelled")
    }

    func testDefaultsComeFromTheCApi() {
        let p = GenerateParams()
        XCTAssertEqual(p.prompt, "")
        XCTAssertEqual(p.negativePrompt, "")
        XCTAssertEqual(p.steps, 25)
        XCTAssertEqual(p.guidance, 5)
        XCTAssertEqual(p.scheduler, .ddim)
        XCTAssertEqual(p.seed, 0)
        let f = FuseParams()
        XCTAssertEqual(f, FuseParams(scale: 1, threads: 0, kernel: "auto"))
        let m = MergeParams()
        XCTAssertEqual(m.contentScale, 1)
        XCTAssertEqual(m.styleScale, 1)
    }

    func testLoadsPeftLayersSortedByModule() throws {
        let path = try TestFiles.writePeftLora(in: dir, name: "content.safetensors", seed: 1, rank: 4)
        let lora = try LoraFile(path: path)
        XCTAssertEqual(lora.format, "peft")
        XCTAssertEqual(lora.path, path)
        XCTAssertEqual(lora.textEncoderTensorCount, 0)
        XCTAssertEqual(lora.layers.map(\.module), [TestFiles.k, TestFiles.q])
        let q = lora.layers[1]
        XCTAssertEqual(q.rank, 4)
        XCTAssertEqual(q.inFeatures, 16)
        XCTAssertEqual(q.outFeatures, 16)
        XCTAssertEqual(lora.layers[0].inFeatures, 24)
        XCTAssertEqual(q.alpha, 4)  // no alpha in the file: alpha = rank
        XCTAssertEqual(q.scale, 1)
        XCTAssertFalse(q.alphaInFile)
    }

    func testLoadsFromDataAsFromTheFile() throws {
        let path = try TestFiles.writePeftLora(in: dir, name: "content.safetensors", seed: 1, rank: 4)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let fromFile = try LoraFile(path: path)
        let fromData = try LoraFile(data: data, name: "asset:content")
        XCTAssertEqual(fromData.path, "asset:content")
        XCTAssertEqual(fromData.layers.map(\.module), fromFile.layers.map(\.module))
        XCTAssertEqual(fromData.layers.map(\.scale), fromFile.layers.map(\.scale))
        let withConfig = try LoraFile(data: data, name: "asset:content", adapterConfigJSON: #"{"r": 4, "lora_alpha": 2}"#)
        XCTAssertEqual(withConfig.layers[0].scale, 0.5)
        assertLorararError(.invalidFile, "asset:empty: file is empty") { _ = try LoraFile(data: Data(), name: "asset:empty") }
    }

    func testErrorsNameTheFile() throws {
        let missing = dir.appendingPathComponent("nope.safetensors").path
        assertLorararError(.notFound, "\(missing): no such file") { _ = try LoraFile(path: missing) }
        let empty = dir.appendingPathComponent("empty.safetensors")
        try Data().write(to: empty)
        assertLorararError(.invalidFile, "\(empty.path): file is empty") { _ = try LoraFile(path: empty.path) }
        let pickle = dir.appendingPathComponent("lora.bin")
        try Data("PK\u{3}\u{4} zip".utf8).write(to: pickle)
        assertLorararError(
            .unsupported, "\(pickle.path): a PyTorch pickle, not safetensors; convert it to .safetensors first"
        ) { _ = try LoraFile(path: pickle.path) }
        let noBundle = dir.appendingPathComponent("no-bundle").path
        assertLorararError(.notFound, "\(noBundle): not a folder") { _ = try Engine(bundlePath: noBundle) }
        assertLorararError(.notFound, "\(dir.path): no manifest.json (not a bundle, or an unfinished export)") {
            _ = try Engine(bundlePath: dir.path)
        }
    }

    func testMergesAsTheFormulaSays() throws {
        let content = try LoraFile(path: try TestFiles.writePeftLora(in: dir, name: "c.safetensors", seed: 1, rank: 4))
        let style = try LoraFile(path: try TestFiles.writePeftLora(in: dir, name: "s.safetensors", seed: 2, rank: 2))
        let merged = try Adapter.merge(
            content: content, style: style, params: MergeParams(contentScale: 0.75, styleScale: -2))
        XCTAssertEqual(merged.layers.map(\.rank), [6, 6])
        XCTAssertEqual(merged.layers[1].alpha, 6)
        XCTAssertEqual(merged.layers[1].scale, 1)
        // Q: A' = [0.75 A_c ; -2 A_s], B' = [B_c, B_s].
        let (a, b) = try merged.materialize(layer: 1)
        let ac = TestRandom.values(4 * 16, seed: 1)
        let bc = TestRandom.values(16 * 4, seed: 2)
        let asv = TestRandom.values(2 * 16, seed: 2)
        let bs = TestRandom.values(16 * 2, seed: 3)
        for i in 0..<64 { XCTAssertEqual(a[i], ac[i] * 0.75, accuracy: 1e-7) }
        for i in 0..<32 { XCTAssertEqual(a[64 + i], asv[i] * -2, accuracy: 1e-7) }
        for o in 0..<16 {
            XCTAssertEqual(Array(b[o * 6..<o * 6 + 4]), Array(bc[o * 4..<o * 4 + 4]))
            XCTAssertEqual(Array(b[o * 6 + 4..<o * 6 + 6]), Array(bs[o * 2..<o * 2 + 2]))
        }

        // Column coefficients on Q.
        let coefficients = try Coefficients()
        let mc = (0..<16).map { Float($0 + 1) / 8 }
        let ms = (0..<16).map { 1 - Float($0) / 32 }
        try coefficients.set(module: TestFiles.q, content: mc, style: ms)
        let columns = try Adapter.merge(content: content, style: style, params: MergeParams(method: .columns(coefficients)))
        let (a2, _) = try columns.materialize(layer: 1)
        for r in 0..<6 {
            for j in 0..<16 {
                let expected = r < 4 ? ac[r * 16 + j] * mc[j] : asv[(r - 4) * 16 + j] * ms[j]
                XCTAssertEqual(a2[r * 16 + j], expected, accuracy: 1e-7)
            }
        }

        assertLorararError(.invalidArgument, "layer index out of range") { _ = try merged.materialize(layer: 2) }
        assertLorararError(.invalidArgument, "content and style coefficients differ in length (16 vs 15)") {
            try coefficients.set(module: TestFiles.q, content: mc, style: Array(ms.dropLast()))
        }
    }

    func testSavesAndReloads() throws {
        let content = try LoraFile(path: try TestFiles.writePeftLora(in: dir, name: "c.safetensors", seed: 1, rank: 4))
        let style = try LoraFile(path: try TestFiles.writePeftLora(in: dir, name: "s.safetensors", seed: 2, rank: 2))
        let merged = try Adapter.merge(content: content, style: style)
        let out = dir.appendingPathComponent("merged.safetensors").path
        try merged.save(to: out, dtype: .f32)
        let back = try LoraFile(path: out)
        XCTAssertEqual(back.layers.map(\.rank), [6, 6])
        XCTAssertTrue(back.layers[1].alphaInFile)
        let reloaded = try Adapter(lora: back, scale: 1)
        let original = try merged.materialize(layer: 1)
        let again = try reloaded.materialize(layer: 1)
        XCTAssertEqual(original.a, again.a)
        XCTAssertEqual(original.b, again.b)
    }

    func testFusesAsTheFormulaSays() throws {
        let content = try LoraFile(path: try TestFiles.writePeftLora(in: dir, name: "c.safetensors", seed: 1, rank: 4))
        let style = try LoraFile(path: try TestFiles.writePeftLora(in: dir, name: "s.safetensors", seed: 2, rank: 2))
        let merged = try Adapter.merge(content: content, style: style)
        let base = TestRandom.values(16 * 16, seed: 11)
        let dw = deltaW(
            outFeatures: 16, inFeatures: 16,
            parts: [
                (TestRandom.values(4 * 16, seed: 1), TestRandom.values(16 * 4, seed: 2), 4, 1),
                (TestRandom.values(2 * 16, seed: 2), TestRandom.values(16 * 2, seed: 3), 2, 1),
            ])
        for kernel in ["auto", "scalar"] {
            var w = base
            try merged.fuse(module: TestFiles.q, into: &w, outFeatures: 16, inFeatures: 16,
                            params: FuseParams(scale: 0.5, kernel: kernel))
            for i in 0..<w.count {
                XCTAssertEqual(Double(w[i]), Double(base[i]) + 0.5 * dw[i], accuracy: 1e-5, "\(kernel) [\(i)]")
            }
        }
        var w = base
        assertLorararError(.notFound, "the adapter has no layer \"up_blocks.0.x\"") {
            try merged.fuse(module: "up_blocks.0.x", into: &w, outFeatures: 16, inFeatures: 16)
        }
        assertLorararError(.invalidArgument, "weight holds 256 values, not out_features x in_features (16 x 15)") {
            try merged.fuse(module: TestFiles.q, into: &w, outFeatures: 16, inFeatures: 15)
        }
        assertLorararError(.invalidArgument, "unknown kernel \"sse9\" (auto, scalar, avx2, neon)") {
            try merged.fuse(module: TestFiles.q, into: &w, outFeatures: 16, inFeatures: 16,
                            params: FuseParams(kernel: "sse9"))
        }
        XCTAssertEqual(w, base)
    }
}
