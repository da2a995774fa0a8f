import Foundation

/// A safetensors file or HF directory that cannot be read or written. `rule` names the check that
/// failed, using the reference implementation's error names where one exists.
public struct SafetensorsError: Error, Equatable, LocalizedError {
    public enum Rule: String, Sendable {
        case headerTooSmall = "HeaderTooSmall"
        case headerTooLarge = "HeaderTooLarge"
        case invalidHeaderLength = "InvalidHeaderLength"
        case invalidHeader = "InvalidHeader"
        case invalidHeaderDeserialization = "InvalidHeaderDeserialization"
        case duplicateKey = "DuplicateKey"
        case unknownDType = "UnknownDType"
        case invalidOffset = "InvalidOffset"
        case validationOverflow = "ValidationOverflow"
        case misalignedSlice = "MisalignedSlice"
        case tensorInvalidInfo = "TensorInvalidInfo"
        case metadataIncompleteBuffer = "MetadataIncompleteBuffer"
        case invalidIndex = "InvalidIndex"
        case invalidConfig = "InvalidConfig"
        case unsupported = "Unsupported"
    }

    public var path: String
    public var rule: Rule
    /// The tensor, key or field involved.
    public var field: String
    public var problem: String

    public init(path: String, rule: Rule, field: String, problem: String) {
        self.path = path
        self.rule = rule
        self.field = field
        self.problem = problem
    }

    public var errorDescription: String? { "\(path): \(field): \(problem)" }
}
