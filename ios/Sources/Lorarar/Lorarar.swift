import CLorarar

/// Library-wide values. (Not named `Lorarar`: a type named like its module breaks `Lorarar.X` qualification.)
///
/// Threads: `LoraFile`, `Adapter`, `BaseModel`, `Coefficients` (once filled) and `Engine` are immutable and may be
/// shared between threads and tasks. A `Context` holds one LoRA pair and scratch memory: make one per concurrent
/// generation; its calls run one at a time on its own serial queue, except `cancel()`.
public enum LorararLibrary {
    /// The library version, e.g. "0.1.0".
    public static var version: String { String(cString: lorarar_version()) }

    /// `LORARAR_API_VERSION` of the linked library.
    public static var apiVersion: Int { Int(lorarar_api_version()) }

    /// `LORARAR_API_VERSION` of the header these bindings were compiled against.
    public static let headerAPIVersion = Int(LORARAR_API_VERSION)

    /// The C API's short name of a status ("invalid file", ...).
    public static func statusString(_ status: LorararError.Status) -> String {
        String(cString: lorarar_status_string(lorarar_status(rawValue: numericCast(status.rawValue))))
    }
}
