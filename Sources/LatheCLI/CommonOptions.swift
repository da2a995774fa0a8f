import ArgumentParser
import Foundation
import LatheBuiltins
import LatheCore
import PassExternal

/// Prints library diagnostics on stderr: warnings always, progress only for work that runs longer than
/// two seconds (then every two seconds, and its completion), and informational lines only when asked.
/// `@unchecked Sendable`: its mutable state is only touched under the lock.
final class StderrDiagnostics: @unchecked Sendable {
    private let verbose: Bool
    private let lock = NSLock()
    private var lastProgress = Date()
    private var printedProgress = false

    init(verbose: Bool) { self.verbose = verbose }

    var diagnostics: Diagnostics {
        Diagnostics { [self] event in self.handle(event) }
    }

    private func handle(_ event: DiagnosticEvent) {
        lock.lock()
        defer { lock.unlock() }
        switch event.severity {
        case .warning: printError("warning: \(oneLine(event.message))")
        case .info: if verbose { printError(oneLine(event.message)) }
        case .progress:
            let now = Date()
            let due = now.timeIntervalSince(lastProgress) >= 2 || (event.fraction == 1 && printedProgress)
            guard verbose || due else { return }
            lastProgress = now
            printedProgress = event.fraction != 1
            let stage = event.stage.map { "\($0.rawValue)" } ?? "working"
            let percent = event.fraction.map { String(format: " %3.0f%%", $0 * 100) } ?? ""
            printError("[\(stage)\(percent)] \(oneLine(event.message))")
        }
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// A message for stderr as one line: control characters escaped (a name read from a file must not
/// forge a second line or drive the terminal) and at most 2,000 characters.
func oneLine(_ message: String) -> String {
    let escaped = message.escapingControlCharacters
    return escaped.count > 2000 ? String(escaped.prefix(1997)) + "…" : escaped
}

/// The message for an error that ends a command. Foundation's file errors print as
/// `Error Domain=NSCocoaErrorDomain Code=516 "…" UserInfo={…}`: those give the file and the system's
/// reason instead ("wf: cannot create it: File exists").
func errorMessage(_ error: any Error) -> String {
    let nsError = error as NSError
    guard nsError.domain == NSCocoaErrorDomain, !(error is LatheError) else {
        return LatheCommand.message(for: error)
    }
    let path = (nsError.userInfo[NSFilePathErrorKey] as? String) ?? (nsError.userInfo[NSURLErrorKey] as? URL)?.path
    let reason =
        systemReason(of: error)
        ?? nsError.localizedDescription.replacingOccurrences(of: "The operation could not be completed. ", with: "")
    return path.map { "\($0): \(reason)" } ?? reason
}

/// Options every command that reads a model shares.
struct InputOptions: ParsableArguments {
    @Option(
        name: .customLong("from"),
        help: "Force the input format (gguf, safetensors, lpack, hf) instead of detecting it.")
    var format: String?

    @Flag(name: .shortAndLong, help: "Print informational messages on stderr.")
    var verbose = false
}

/// Prints a value as pretty JSON on stdout.
func printJSON(_ value: JSONValue) {
    print(value.prettyPrinted())
}

extension JSONValue {
    /// Indented JSON for people and scripts.
    func prettyPrinted(indent: String = "") -> String {
        let inner = indent + "  "
        switch self {
        case .array(let values) where !values.isEmpty:
            return "[\n" + values.map { inner + $0.prettyPrinted(indent: inner) }.joined(separator: ",\n")
                + "\n\(indent)]"
        case .object(let entries) where !entries.isEmpty:
            return "{\n"
                + entries.map {
                    inner + JSONValue.string($0.key).serialized() + ": " + $0.value.prettyPrinted(indent: inner)
                }
                .joined(separator: ",\n") + "\n\(indent)}"
        default:
            return serialized()
        }
    }
}

/// Human-readable byte counts (MiB with two decimals above 1 MiB).
func formatBytes(_ bytes: Int) -> String {
    if bytes >= 1 << 20 { return String(format: "%.2f MiB", Double(bytes) / Double(1 << 20)) }
    if bytes >= 1 << 10 { return String(format: "%.1f KiB", Double(bytes) / 1024) }
    return "\(bytes) B"
}

extension String {
    /// The columns a terminal gives the string: two for an East Asian wide or fullwidth character
    /// or an emoji, one for any other character (a grapheme cluster: combining accents add none).
    var terminalWidth: Int {
        reduce(0) { width, character in
            width + (character.unicodeScalars.first.map(Self.isWide) == true ? 2 : 1)
        }
    }

    /// The string followed by spaces up to `columns` terminal columns (`padding(toLength:)` counts
    /// UTF-16 units, so a name with CJK or decomposed accents pushed its row's columns out of line).
    func padded(toColumns columns: Int) -> String {
        self + String(repeating: " ", count: max(0, columns - terminalWidth))
    }

    private static let wideRanges: [ClosedRange<UInt32>] = [
        0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF,
        0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60, 0xFFE0...0xFFE6, 0x1F300...0x1F64F,
        0x1F680...0x1F6FF, 0x1F900...0x1F9FF, 0x1FA70...0x1FAFF, 0x20000...0x3FFFD,
    ]

    private static func isWide(_ scalar: Unicode.Scalar) -> Bool {
        wideRanges.contains { $0.contains(scalar.value) }
    }
}

/// "1 chunk", "2 chunks": a count with its noun in the right number (English plurals in -s).
func counted(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }

/// Programs a recipe's `external` steps may run: none unless named here.
struct ExternalPassOptions: ParsableArguments {
    @Option(
        name: .customLong("allow-external"),
        help: ArgumentHelp(
            "Let the recipe's `external` steps run this program (repeatable; as the step's command names it).",
            valueName: "program"))
    var programs: [String] = []

    func apply() { programs.forEach(ExternalPass.allowedPrograms.allow) }
}

/// A wrong combination of options found while a command runs: one line and exit status 1. (A
/// `ValidationError` thrown there would print the root command's usage, not the subcommand's; checks
/// that need no work run in `validate()` and keep ArgumentParser's usage error.)
struct UsageError: Error, LocalizedError {
    let message: String

    init(_ message: String) { self.message = message }

    var errorDescription: String? { message }
}
