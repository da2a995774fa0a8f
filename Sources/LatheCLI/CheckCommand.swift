import ArgumentParser
import Foundation
import LatheBuiltins
import LatheCore

/// `lathe check`: is this file intact?
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a model file: its structure, its checksums (lpack), and optionally every value.",
        discussion: """
            Every format's header rules are applied as when reading, and a Llama config is checked against the \
            tensors (its layers, its embedding's shape, and no more tokens than the embedding has rows). An \
            lpack file is checked further: \
            its manifest and each member against their XXH64 checksums (a flipped byte is reported with the \
            tensor it hit), each zstd member inflated to its size, the padding between members zero and \
            nothing after the last, as the writer leaves them. --values also decodes every tensor and \
            reports NaN or infinite values.

            Exit status: 0 when intact, 1 with one line naming the damage otherwise. With --json, standard \
            output holds a JSON object either way: "intact" is false and "error" says why when the file is damaged.

            Example:
              lathe check smollm2-resq.lpack --values
            """
    )

    @Argument(help: "The model (file, HF directory or archive).") var model: String
    @Flag(help: "Decode every tensor and count non-finite values.") var values = false
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var input: InputOptions

    func run() throws {
        let report: IntegrityReport
        do {
            report = try ModelIntegrity.check(
                URL(fileURLWithPath: model), format: input.format, values: values, registry: LatheEnvironment.registry)
        } catch {
            // A script reads the verdict from stdout; the error line still goes to stderr.
            if json {
                printJSON(
                    .object([
                        ("path", .string(model)), ("intact", .bool(false)), ("error", .string(errorMessage(error))),
                    ]))
            }
            throw error
        }
        if json {
            printJSON(
                .object([
                    ("path", .string(report.path)), ("intact", .bool(report.nonFinite.isEmpty)),
                    ("format", .string(report.format)),
                    ("tensors", .int(report.tensors)), ("checksummed", .int(report.checksummed)),
                    ("checked_bytes", .int(report.checkedBytes)),
                    // null when the values were not decoded (without --values): not checked is not "none found".
                    (
                        "non_finite",
                        values
                            ? .object(report.nonFinite.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })
                            : .null
                    ),
                ]))
        } else {
            let checksums =
                report.checksummed > 0
                ? "\(report.checksummed) checksums verified over \(formatBytes(report.checkedBytes))"
                : "no stored checksums in \(report.format)"
            print("\(report.path): \(report.format), \(report.tensors) tensors, \(checksums)")
            if values, report.nonFinite.isEmpty { print("  every value is finite") }
            for (name, count) in report.nonFinite.sorted(by: { $0.key < $1.key }) {
                print("  \(name): \(count) non-finite values")
            }
        }
        if !report.nonFinite.isEmpty { throw ExitCode.failure }
    }
}
