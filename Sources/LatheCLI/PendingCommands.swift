import ArgumentParser
import LatheCore

/// A command whose capability has not been built yet: it parses its arguments (so `--help` is
/// already right) and then says plainly what is missing instead of pretending to work.
protocol PendingCommand: ParsableCommand {
    static var capability: String { get }
}

extension PendingCommand {
    func run() throws {
        throw LatheError.notImplemented(
            capability: "`lathe \(Self._commandName)`", detail: "it arrives with \(Self.capability)")
    }
}

struct Plan: PendingCommand {
    static let configuration = CommandConfiguration(abstract: "Show what a recipe would do, without doing it.")
    static let capability = "the pipeline graph and recipes"

    @Argument(help: "The recipe file.") var recipe: String
    @Argument(help: "The input model.") var input: String
}
