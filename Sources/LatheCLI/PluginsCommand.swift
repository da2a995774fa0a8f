import ArgumentParser
import Foundation
import LatheBuiltins
import LatheCore

/// `lathe plugins`: what formats and passes this build knows.
struct Plugins: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the registered format readers, writers and passes.",
        discussion: """
            Each line shows the kind, the id used in commands and recipes, and what it does. Reader and \
            writer ids go to --from and --to; pass ids are a recipe step's `pass`.

            Examples:
              lathe plugins
              lathe plugins --json
            """
    )

    @Flag(help: "Print a JSON array instead of a table.")
    var json = false

    func run() throws {
        print(Self.render(LatheEnvironment.registry.entries, json: json))
    }

    static func render(_ entries: [Registry.Entry], json: Bool) -> String {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            return (try? encoder.encode(entries)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
        }
        var lines: [String] = []
        for kind in [Registry.Entry.Kind.reader, .writer, .pass] {
            let title = ["reader": "Format readers", "writer": "Format writers", "pass": "Passes"][kind.rawValue] ?? ""
            lines.append("\(title):")
            let rows = entries.filter { $0.kind == kind }
            if rows.isEmpty { lines.append("  (none registered yet)") }
            let width = rows.map(\.id.terminalWidth).max() ?? 0
            for row in rows {
                lines.append("  " + row.id.padded(toColumns: width + 2) + row.summary)
            }
        }
        return lines.joined(separator: "\n")
    }
}
