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

struct Inspect: PendingCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a checkpoint's format, architecture, tokenizer and tensors.")
    static let capability = "the GGUF and safetensors readers (formats capability)"

    @Argument(help: "A model file, HF directory or archive.") var path: String
    @Flag(help: "List every tensor.") var tensors = false
    @Flag(help: "Print JSON.") var json = false
}

struct Convert: PendingCommand {
    static let configuration = CommandConfiguration(abstract: "Convert a checkpoint between formats and encodings.")
    static let capability = "the GGUF and safetensors writers (formats capability)"

    @Argument(help: "The input model.") var input: String
    @Option(name: .shortAndLong, help: "The output path.") var output: String
    @Option(help: "Output format: gguf, safetensors or hf.") var to: String?
    @Option(help: "Tensor encoding: f32, f16, bf16, q8_0, q4_0, q4_k, …") var type: String?
    @Flag(help: "Overwrite an existing output.") var force = false
}

struct Diff: PendingCommand {
    static let configuration = CommandConfiguration(abstract: "Compare two checkpoints, across formats.")
    static let capability = "the GGUF and safetensors readers (formats capability)"

    @Argument(help: "The first model.") var first: String
    @Argument(help: "The second model.") var second: String
    @Flag(help: "Print JSON.") var json = false
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
