/// A coarse stage of a long-running job, for progress reporting.
public enum ConversionStage: String, Sendable, Codable {
    case reading, planning, calibrating, transforming, quantizing, writing, verifying, evaluating
}

/// One progress or diagnostic event. Library code reports through `Diagnostics`, never `print`;
/// the CLI decides how to show events (stderr lines, JSON, nothing).
public struct DiagnosticEvent: Sendable, Equatable {
    public enum Severity: String, Sendable, Codable {
        case progress, info, warning
    }
    public var severity: Severity
    public var stage: ConversionStage?
    /// Completed fraction in 0…1 when known.
    public var fraction: Double?
    public var message: String

    public init(severity: Severity, stage: ConversionStage? = nil, fraction: Double? = nil, message: String) {
        self.severity = severity
        self.stage = stage
        self.fraction = fraction
        self.message = message
    }
}

/// The callback library code reports through.
public struct Diagnostics: Sendable {
    private let handler: @Sendable (DiagnosticEvent) -> Void

    public init(_ handler: @escaping @Sendable (DiagnosticEvent) -> Void) { self.handler = handler }

    /// Drops every event.
    public static let silent = Diagnostics { _ in }

    public func report(_ event: DiagnosticEvent) { handler(event) }

    public func progress(_ stage: ConversionStage, fraction: Double? = nil, _ message: String) {
        handler(DiagnosticEvent(severity: .progress, stage: stage, fraction: fraction, message: message))
    }

    public func info(_ message: String) { handler(DiagnosticEvent(severity: .info, message: message)) }

    public func warning(_ message: String) { handler(DiagnosticEvent(severity: .warning, message: message)) }
}
