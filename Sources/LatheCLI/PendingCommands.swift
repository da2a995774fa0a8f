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

struct Run: PendingCommand {
    static let configuration = CommandConfiguration(abstract: "Run a recipe on a model and write the result.")
    static let capability = "the pipeline graph and recipes"

    @Argument(help: "The recipe file.") var recipe: String
    @Argument(help: "The input model.") var input: String
    @Option(name: .shortAndLong, help: "The output path.") var output: String
}

struct Eval: PendingCommand {
    static let configuration = CommandConfiguration(abstract: "Measure a model's perplexity on a text.")
    static let capability = "the reference runtime"

    @Argument(help: "The model.") var model: String
}

struct Verify: PendingCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare a converted model against its original: perplexity, KL divergence, top-1 agreement.")
    static let capability = "the reference runtime and verifier"

    @Argument(help: "The original model.") var reference: String
    @Argument(help: "The converted model.") var candidate: String
}
