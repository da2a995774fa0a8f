import Foundation

/// A GGUF file that cannot be read or written, with the file and the field at fault.
public struct GGUFError: Error, Equatable, LocalizedError {
    public var path: String
    /// The key, tensor or header field involved (`tensor 'blk.0.attn_q.weight'`, `key 'general.alignment'`).
    public var field: String
    public var problem: String

    public init(path: String, field: String, problem: String) {
        self.path = path
        self.field = field
        self.problem = problem
    }

    public var errorDescription: String? { "\(path): \(field): \(problem)" }
}
