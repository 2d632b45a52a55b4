import Foundation
import XCTest

@testable import Lorarar

/// The engine; skipped unless LORARAR_TEST_BUNDLE names a bundle exported with `--backend xnnpack`.
final class EngineTests: XCTestCase {
    var dir: URL!
    var engine: Engine!
    var context: Context!
    var content: LoraFile!
    var style: LoraFile!

    override func setUpWithError() throws {
        guard let bundle = ProcessInfo.processInfo.environment["LORARAR_TEST_BUNDLE"], !bundle.isEmpty else {
            throw XCTSkip("no bundle: set LORARAR_TEST_BUNDLE=DIR")
        }
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorarar-swift-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        engine = try Engine(bundlePath: bundle, threads: 2)
        context = try engine.makeContext()
        let rank = max(1, engine.info.maxRank / 2)
        content = try LoraFile(
            path: try TestFiles.writeSlotLora(in: dir, name: "c.safetensors", bundle: bundle, rank: rank, seed: 10))
        style = try LoraFile(
            path: try TestFiles.writeSlotLora(in: dir, name: "s.safetensors", bundle: bundle, rank: rank, seed: 10_000))
    }

    override func tearDownWithError() throws {
        if let dir = dir { try? FileManager.default.removeItem(at: dir) }
    }

    private func params(_ steps: Int) -> GenerateParams {
        GenerateParams(prompt: "a sks dog in zwz style", steps: steps, seed: 7)
    }

    func testInfo() {
        let info = engine.info
        XCTAssertGreaterThan(info.imageWidth, 0)
        XCTAssertEqual(info.imageBytes, info.imageWidth * info.imageHeight * 3)
        XCTAssertGreaterThan(info.maxRank, 0)
        XCTAssertGreaterThan(info.loraTargetCount, 0)
        XCTAssertFalse(info.backend.isEmpty)
    }

    func testDecodeProgressFollowsTheSteps() throws {
        let info = engine.info
        XCTAssertEqual(info.vaeTiles > 1, info.vaeTile > 0)
        let events = Log<String>()
        let a = try context.generateBlocking(
            params(2),
            progress: { p in
                events.append("step \(p.step)/\(p.totalSteps)")
                return true
            },
            decodeProgress: { p in
                events.append("tile \(p.tile)/\(p.totalTiles)")
                return true
            })
        XCTAssertEqual(
            events.all, ["step 1/2", "step 2/2"] + (1...info.vaeTiles).map { "tile \($0)/\(info.vaeTiles)" })
        XCTAssertEqual(a.rgb, try context.generateBlocking(params(2)).rgb)
        XCTAssertThrowsError(try context.generateBlocking(params(2), decodeProgress: { _ in false })) { error in
            XCTAssertEqual((error as? LorararError)?.status, .cancelled)
        }
    }

    func testGeneratesDeterministicallyWithProgress() async throws {
        try engine.checkLora(content)
        try context.setLoras(content: content, style: style, method: engine.info.hasHypernet ? .hypernet : .direct)
        let steps = Log<GenerationProgress>()
        let a = try await context.generate(params(3)) { progress in
            steps.append(progress)
            return true
        }
        XCTAssertEqual(steps.all, (1...3).map { GenerationProgress(step: $0, totalSteps: 3) })
        XCTAssertEqual(a.rgb.count, engine.info.imageBytes)
        XCTAssertGreaterThan(a.timings.totalMs, 0)
        let b = try context.generateBlocking(params(3))
        XCTAssertEqual(a.rgb, b.rgb, "same seed, same image")

        // DIRECT through the context equals the same merge loaded with setAdapter.
        try context.setLoras(content: content, style: style, method: .direct, contentScale: 0.8, styleScale: 0.6)
        let direct = try await context.generate(params(2))
        try context.setAdapter(
            try Adapter.merge(content: content, style: style, params: MergeParams(contentScale: 0.8, styleScale: 0.6)))
        let viaAdapter = try await context.generate(params(2))
        XCTAssertEqual(direct.rgb, viaAdapter.rgb)
        try context.clearLoras()
        let baseOnly = try await context.generate(params(2))
        XCTAssertNotEqual(direct.rgb, baseOnly.rgb)
    }

    func testPackedWeightCacheGivesTheSameImage() async throws {
        let bundle = ProcessInfo.processInfo.environment["LORARAR_TEST_BUNDLE"]!
        try context.setLoras(content: content, style: style, method: .direct)
        let want = try context.generateBlocking(params(2))
        let cache = dir.appendingPathComponent("packed")
        try FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
        for _ in 0..<2 {  // the first load writes the packed weights, the second maps them
            let cached = try Engine(bundlePath: bundle, threads: 2, packedCacheDir: cache.path)
            let c = try cached.makeContext()
            try c.setLoras(content: content, style: style, method: .direct)
            XCTAssertEqual(try c.generateBlocking(params(2)).rgb, want.rgb)
        }
        let written = try FileManager.default.contentsOfDirectory(atPath: cache.path)
        XCTAssertFalse(written.isEmpty)
        XCTAssertTrue(written.allSatisfy { $0.hasPrefix("lorarar-") && $0.hasSuffix(".xnnpack") })
    }

    func testProgressCallbackCancels() async throws {
        do {
            _ = try await context.generate(params(5)) { $0.step < 2 }
            XCTFail("expected a cancelled generation")
        } catch let error as LorararError {
            XCTAssertEqual(error.status, .cancelled)
            XCTAssertEqual(error.message, "generation cancelled")
        }
        _ = try await context.generate(params(1))  // usable afterwards
    }

    func testCancelFromAnotherThread() async throws {
        let context = self.context!
        do {
            _ = try await context.generate(params(50)) { progress in
                if progress.step == 1 { DispatchQueue.global().async { context.cancel() } }
                Thread.sleep(forTimeInterval: 0.05)
                return true
            }
            XCTFail("expected a cancelled generation")
        } catch let error as LorararError {
            XCTAssertEqual(error.status, .cancelled)
        }
    }

    func testTaskCancellationThrowsCancellationError() async throws {
        let context = self.context!
        let started = Log<GenerationProgress>()
        let long = params(50)
        let task = Task {
            try await context.generate(long) { progress in
                started.append(progress)
                Thread.sleep(forTimeInterval: 0.05)
                return true
            }
        }
        while started.all.isEmpty { try await Task.sleep(nanoseconds: 10_000_000) }
        task.cancel()
        do {
            _ = try await task.value
            XCTFail("expected CancellationError")
        } catch is CancellationError {
            XCTAssertLessThan(started.all.count, 50)
        }
    }

    func testCallingTheContextFromItsOwnCallbackThrows() async throws {
        let context = self.context!
        let inner = ErrorBox()
        _ = try await context.generate(params(1)) { _ in
            do { try context.clearLoras() } catch { inner.set(error) }
            return true
        }
        let error = try XCTUnwrap(inner.error as? LorararError)
        XCTAssertEqual(error.message, "a Context's methods cannot be called from its own progress callback")
    }

    func testBadParameters() async throws {
        for (p, message) in [
            (GenerateParams(prompt: "x", steps: 0), "steps must be 1..1000"),
            (GenerateParams(prompt: "x", steps: 1, guidance: .nan), "guidance must be finite"),
        ] {
            do {
                _ = try await context.generate(p)
                XCTFail("expected \(message)")
            } catch let error as LorararError {
                XCTAssertEqual(error.status, .invalidArgument)
                XCTAssertEqual(error.message, message)
            }
        }
    }
}

/// A thread-safe list (of progress reports, of event descriptions).
final class Log<Element>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Element] = []

    func append(_ item: Element) {
        lock.lock()
        items.append(item)
        lock.unlock()
    }

    var all: [Element] {
        lock.lock()
        defer { lock.unlock() }
        return items
    }
}

/// Carries an error out of a callback.
final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Error?

    func set(_ e: Error) {
        lock.lock()
        value = e
        lock.unlock()
    }

    var error: Error? {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}
