import Foundation
import XCTest

@testable import Lorarar

/// Deterministic test values (SplitMix64), the same on every platform.
struct TestRandom {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` values in [-0.4, 0.4).
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var r = TestRandom(seed: seed)
        return (0..<count).map { _ in Float(Int64(r.next() >> 44) - (1 << 19)) / Float(1 << 20) * 0.8 }
    }
}

/// A tensor to write as F32.
struct TestTensor {
    let name: String
    let shape: [Int]
    let values: [Float]
}

enum TestFiles {
    static let q = "mid_block.attentions.0.transformer_blocks.0.attn1.to_q"
    static let k = "mid_block.attentions.0.transformer_blocks.0.attn1.to_k"

    /// Safetensors bytes: u64 little-endian header length, JSON header padded to 8 bytes, F32 data.
    static func safetensors(_ tensors: [TestTensor]) -> Data {
        var header = "{"
        var offset = 0
        for (i, t) in tensors.enumerated() {
            let bytes = 4 * t.values.count
            let shape = t.shape.map(String.init).joined(separator: ",")
            header += (i == 0 ? "" : ",")
                + "\"\(t.name)\":{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        header += "}"
        while (header.utf8.count + 8) % 8 != 0 { header += " " }
        var data = Data()
        var length = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        for t in tensors {
            for v in t.values {
                var bits = v.bitPattern.littleEndian
                withUnsafeBytes(of: &bits) { data.append(contentsOf: $0) }
            }
        }
        return data
    }

    /// One layer's factors: A (rank x in) with `seed`, B (out x rank) with `seed + 1`.
    static func layer(_ module: String, rank: Int, inFeatures: Int, outFeatures: Int, seed: UInt64) -> [TestTensor] {
        [
            TestTensor(
                name: "unet.\(module).lora_A.weight", shape: [rank, inFeatures],
                values: TestRandom.values(rank * inFeatures, seed: seed)),
            TestTensor(
                name: "unet.\(module).lora_B.weight", shape: [outFeatures, rank],
                values: TestRandom.values(outFeatures * rank, seed: seed + 1)),
        ]
    }

    /// A peft LoRA: Q 16 -> 16 with seeds (seed, seed + 1), K 24 -> 16 with seeds (seed + 7, seed + 8).
    static func writePeftLora(in dir: URL, name: String, seed: UInt64, rank: Int) throws -> String {
        let tensors =
            layer(q, rank: rank, inFeatures: 16, outFeatures: 16, seed: seed)
            + layer(k, rank: rank, inFeatures: 24, outFeatures: 16, seed: seed + 7)
        let url = dir.appendingPathComponent(name)
        try safetensors(tensors).write(to: url)
        return url.path
    }

    /// A peft LoRA over every layer of a bundle's LoRA slot (manifest.json's lora_slot.layers).
    static func writeSlotLora(in dir: URL, name: String, bundle: String, rank: Int, seed: UInt64) throws -> String {
        let manifest = try Data(contentsOf: URL(fileURLWithPath: bundle).appendingPathComponent("manifest.json"))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: manifest) as? [String: Any])
        let slot = try XCTUnwrap(json["lora_slot"] as? [String: Any])
        let layers = try XCTUnwrap(slot["layers"] as? [[String: Any]])
        var tensors: [TestTensor] = []
        for (i, l) in layers.enumerated() {
            let module = try XCTUnwrap(l["module"] as? String)
            let inFeatures = try XCTUnwrap(l["in_features"] as? Int)
            let outFeatures = try XCTUnwrap(l["out_features"] as? Int)
            tensors += layer(
                module, rank: rank, inFeatures: inFeatures, outFeatures: outFeatures, seed: seed + UInt64(2 * i))
        }
        let url = dir.appendingPathComponent(name)
        try safetensors(tensors).write(to: url)
        return url.path
    }
}

/// dW = sum over the parts of scale * B A, in double (B out x rank, A rank x in, row-major).
func deltaW(outFeatures: Int, inFeatures: Int, parts: [(a: [Float], b: [Float], rank: Int, scale: Double)]) -> [Double] {
    var dw = [Double](repeating: 0, count: outFeatures * inFeatures)
    for p in parts {
        for o in 0..<outFeatures {
            for j in 0..<inFeatures {
                var sum = 0.0
                for r in 0..<p.rank { sum += Double(p.b[o * p.rank + r]) * Double(p.a[r * inFeatures + j]) }
                dw[o * inFeatures + j] += p.scale * sum
            }
        }
    }
    return dw
}

/// Expects `body` to throw LorararError with exactly this status and message.
func assertLorararError(
    _ status: LorararError.Status, _ message: String, file: StaticString = #filePath, line: UInt = #line,
    _ body: () throws -> Void
) {
    do {
        try body()
        XCTFail("expected LorararError(\(status)): \(message)", file: file, line: line)
    } catch let error as LorararError {
        XCTAssertEqual(error.status, status, file: file, line: line)
        XCTAssertEqual(error.message, message, file: file, line: line)
    } catch {
        XCTFail("expected LorararError, got \(error)", file: file, line: line)
    }
}
