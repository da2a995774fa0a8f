import Foundation

/// Options every reader understands.
public struct ReadOptions: Sendable {
    public var diagnostics: Diagnostics
    /// The layout to present tensors in; `gguf` only matters for GGUF files (see `TensorNaming`).
    public var naming: TensorNaming

    public init(diagnostics: Diagnostics = .silent, naming: TensorNaming = .huggingface) {
        self.diagnostics = diagnostics
        self.naming = naming
    }
}

/// Options every writer understands; format-specific settings travel in `parameters`.
public struct WriteOptions: Sendable {
    public var overwrite: Bool
    public var diagnostics: Diagnostics
    /// Format-specific settings (`"alignment": "32"`, …), validated by the writer.
    public var parameters: [String: String]

    public init(overwrite: Bool = false, diagnostics: Diagnostics = .silent, parameters: [String: String] = [:]) {
        self.overwrite = overwrite
        self.diagnostics = diagnostics
        self.parameters = parameters
    }
}

/// What a writer produced.
public struct WriteReport: Sendable, Codable, Equatable {
    public var path: String
    public var files: [String]
    public var bytesWritten: Int
    public var tensorCount: Int

    public init(path: String, files: [String], bytesWritten: Int, tensorCount: Int) {
        self.path = path
        self.files = files
        self.bytesWritten = bytesWritten
        self.tensorCount = tensorCount
    }
}

/// A format that can be read. Readers parse headers eagerly and map payloads lazily.
public protocol FormatReader: Sendable {
    /// The stable id used on the command line and in recipes (`gguf`, `safetensors`, …).
    static var formatID: String { get }
    /// One line for `lathe plugins`.
    static var summary: String { get }
    /// Whether `url` (with its first bytes in `prefix`) looks like this format.
    static func sniff(_ url: URL, prefix: [UInt8]) -> Bool

    init()
    func read(_ url: URL, options: ReadOptions) throws -> ModelGraph
}

/// A format that can be written. Writers stream tensor by tensor and publish atomically.
public protocol FormatWriter: Sendable {
    static var formatID: String { get }
    static var summary: String { get }
    /// Whether the format can store tensors of this type.
    static func supports(_ dtype: DType) -> Bool

    /// The keys of `WriteOptions.parameters` the writer reads (a recipe output's `options`); any
    /// other key is refused at plan time rather than ignored.
    static var parameterNames: [String] { get }
    /// Refuses values the writer could not use, so a recipe fails at plan time, not after its passes.
    static func validate(parameters: [String: String]) throws(LatheError)
    /// Whether the writer makes one file or a directory with these parameters (what `--force` may
    /// replace at the destination, `AtomicOutput.check`).
    static func outputKind(parameters: [String: String]) -> AtomicOutput.Kind
    /// The encoding the format would rather store a tensor in than the one it has, losslessly (GGUF:
    /// F32 for half-precision vectors, which llama.cpp's CPU kernels need), or nil. `lathe convert`
    /// applies it unless a `--tensor-type` rule names the tensor, and `lathe plan` counts it.
    static func preferredType(for info: TensorInfo) -> DType?
    /// The file name extension that names this format (`gguf`), or nil for a writer whose output is
    /// not one file of its own kind (a directory). `lathe convert -o` picks the writer by it.
    static var fileExtension: String? { get }

    init()
    func write(_ graph: ModelGraph, to url: URL, options: WriteOptions) throws -> WriteReport
}

extension FormatWriter {
    public static var parameterNames: [String] { [] }
    public static func validate(parameters: [String: String]) throws(LatheError) {}
    public static func outputKind(parameters: [String: String]) -> AtomicOutput.Kind { .file }
    public static func preferredType(for info: TensorInfo) -> DType? { nil }
    public static var fileExtension: String? { nil }
}
