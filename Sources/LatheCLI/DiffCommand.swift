import ArgumentParser
import Foundation
import LatheBuiltins
import LatheCore

/// `lathe diff`: two checkpoints compared, across formats.
struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two checkpoints, across formats.",
        discussion: """
            Both models are read in Lathe's canonical layout, so a GGUF file and its safetensors conversion compare \
            tensor by tensor. Reported: metadata keys added, removed or changed (except the keys that only describe \
            a file's encoding or provenance: general.file_type, general.quantization_version, general.alignment, \
            lathe.manifest; and the source files a conversion carries along, lathe.hf.* and \
            tokenizer.huggingface.json, which are compared by content when both models have them (keys in any \
            order, numbers by value, merges as pairs or strings) and listed, not counted, when only one does, \
            since the config and tokenizer comparisons cover their content); tokenizer differences (not the \
            unused [PADn] tokens GGUF adds up to the embedding's rows); tensors \
            present in one only or with another shape; and for every shared tensor the relative L2 error \
            ‖b − a‖ / ‖a‖ and the largest absolute difference after dequantization (one tensor at a time).

            Exit status, as diff(1)'s: 0 when the models are identical, 1 when they differ, 2 when they could \
            not be compared (a file missing or unreadable).
            """
    )

    @Argument(help: "The first (reference) model.") var first: String
    @Argument(help: "The second model.") var second: String
    @Flag(help: "Print JSON instead of text.") var json = false
    @Flag(help: "List every shared tensor, not only those that differ.") var all = false
    @OptionGroup var input: InputOptions

    func run() throws {
        do {
            try compare()
        } catch let exit as ExitCode {
            throw exit
        } catch {
            // A script tells "they differ" (1) from "could not compare" (2).
            printError("Error: \(oneLine(errorMessage(error)))")
            throw ExitCode(2)
        }
    }

    func compare() throws {
        let printer = StderrDiagnostics(verbose: input.verbose)
        let options = ReadOptions(diagnostics: printer.diagnostics)
        let a = try ModelInput.open(
            URL(fileURLWithPath: first), format: input.format, options: options, registry: LatheEnvironment.registry)
        let b = try ModelInput.open(
            URL(fileURLWithPath: second), format: input.format, options: options, registry: LatheEnvironment.registry)
        let report = try ModelComparison(a, b, diagnostics: printer.diagnostics)
        if json {
            printJSON(report.json(all: all))
        } else {
            print(report.text(all: all))
        }
        if !report.identical { throw ExitCode(1) }
    }
}
