import CLorarar
import Foundation

/// What every failed call throws: the C API's status and its one-line message (`lorarar_last_error()`,
/// "`<path>: <what is wrong>`" where a file is at fault). The bindings' own checks use `.invalidArgument`.
/// A generation stopped by Task cancellation throws `CancellationError` instead.
public struct LorararError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `lorarar_status` without `LORARAR_OK`.
    public enum Status: Int, Sendable {
        case invalidArgument = 1  // the caller passed something unusable
        case invalidFile = 2  // a file is malformed
        case unsupported = 3  // well-formed, but a kind the engine does not apply
        case notFound = 4  // a file, tensor or target layer is missing
        case io = 5  // the OS failed to read or write
        case outOfMemory = 6
        case cancelled = 7  // Context.cancel() or the progress callback stopped a generation
        case internalError = 8
    }

    public let status: Status
    public let message: String

    public init(status: Status, message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { "LorararError(\(status)): \(message)" }

    /// Throws the status of a C call with the library's message; call it on the thread that made the call (the
    /// message is per thread) before calling the library again.
    static func check(_ status: lorarar_status) throws {
        if status == LORARAR_OK { return }
        let message = String(cString: lorarar_last_error())
        throw LorararError(status: Status(rawValue: Int(status.rawValue)) ?? .internalError, message: message)
    }

    static func argument(_ message: String) -> LorararError {
        LorararError(status: .invalidArgument, message: message)
    }
}

extension LorararError: LocalizedError {
    public var errorDescription: String? { message }
}
