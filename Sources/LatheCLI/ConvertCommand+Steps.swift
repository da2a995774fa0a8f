import Foundation
import LatheBuiltins
import LatheCore
import LathePipeline

/// The parts of `convert`'s run that come before and after the conversion itself.
extension Convert {
    /// The recipe, with `--calibration-text` in it, once the options that contradict it are refused.
    func loadRecipe() throws -> Recipe? {
        var loadedRecipe = try recipe.map { try RecipeLibrary.load($0) }
        if let calibrationText {
            guard loadedRecipe?.calibration != nil else {
                throw UsageError("--calibration-text needs a --recipe with a calibration section")
            }
            loadedRecipe?.calibration?.file = calibrationText
        }
        if loadedRecipe != nil, type != nil || !tensorTypes.isEmpty || fallbackType != nil {
            throw UsageError("--recipe decides every encoding; drop --type, --tensor-type and --fallback-type")
        }
        if fallbackType != nil, type == nil, tensorTypes.isEmpty {
            throw UsageError("--fallback-type stands in for the block type --type or --tensor-type chooses; give one")
        }
        return loadedRecipe
    }

    /// A writer's parameters: the recipe output's options for that format, then the command line's
    /// (which win), keeping only the keys the writer reads.
    func writerParameters(for format: String, _ writer: any FormatWriter, recipe: Recipe?) -> [String: String] {
        var commandLine: [String: String] = [:]
        if let maxShardSize { commandLine["max-shard-size"] = String(maxShardSize) }
        if let compress { commandLine["compression"] = compress }
        let fromRecipe = recipe?.outputs.first { $0.format == format }?.options ?? [:]
        return fromRecipe.merging(commandLine) { _, given in given }
            .filter { Swift.type(of: writer).parameterNames.contains($0.key) }
    }

    /// The recipe's further outputs, every destination checked. The output named on the command line
    /// stands for the recipe's first; its further outputs go beside it (same name, their own
    /// extension; one in the named output's format is that output). Every destination is checked
    /// before any work, so none is found taken after the others are written.
    func checkedOutputs(
        formatID: String, outputURL: URL, recipe: Recipe?, diagnostics: Diagnostics
    ) throws -> [(format: String, url: URL)] {
        var extraOutputs: [(format: String, url: URL)] = []
        for extra in (recipe?.outputs ?? []).dropFirst().map(\.format)
        where extra != formatID && !extraOutputs.contains(where: { $0.format == extra }) {
            extraOutputs.append((extra, outputURL.deletingPathExtension().appendingPathExtension(extra)))
        }
        // Said only when the recipe lists several outputs: with one, naming -o for another format is
        // the usual way to choose it (`--recipe resq-w4a4kv4 -o model.lpack`).
        if let outputs = recipe?.outputs, outputs.count > 1, let first = outputs.first?.format,
            first != formatID, !extraOutputs.contains(where: { $0.format == first })
        {
            diagnostics.warning(
                "-o writes \(formatID) in place of the recipe's first output, \(first) (name the output for \(first) to write the recipe's outputs as listed)"
            )
        }
        let inputPath = URL(fileURLWithPath: input).resolvingSymlinksInPath().path
        for (format, url) in [(formatID, outputURL)] + extraOutputs {
            if let other = extraOutputs.first(where: { $0.url.path == url.path && $0.format != format }) {
                throw UsageError(
                    "the \(format) and \(other.format) outputs would both be written to \(url.path); name -o with its format's extension"
                )
            }
            let outputWriter = try LatheEnvironment.registry.writer(format)
            let parameters = writerParameters(for: format, outputWriter, recipe: recipe)
            let kind = Swift.type(of: outputWriter).outputKind(parameters: parameters)
            // Replacing a directory the input lies in would delete the input while it is read.
            if kind == .directory, inputPath.hasPrefix(url.resolvingSymlinksInPath().path + "/") {
                throw LatheError.fileAccess(
                    path: url.path, reason: "holds the input \(input); write the output elsewhere")
            }
            try AtomicOutput.check(url, overwrite: force, kind: kind)
            for leftover in AtomicOutput.leftovers(beside: url) {
                diagnostics.warning(
                    "\(leftover.path) is a temporary of a run that did not finish (killed while writing \(url.lastPathComponent)), or of one still writing it; once none is, delete it to free its space"
                )
            }
        }
        return extraOutputs
    }

    /// What was written: a line per output, or with `--json` one object (the named output's fields
    /// at the top, every output under `outputs`).
    func printSummary(input: String, format: String, reports: [(String, WriteReport)], seconds: Double) {
        guard json else {
            for (format, written) in reports {
                print(
                    "wrote \(written.path) (\(format), \(written.tensorCount) tensors, \(formatBytes(written.bytesWritten)))"
                )
            }
            print(String(format: "done in %.2f s", seconds))
            return
        }
        guard let report = reports.first?.1 else { return }
        printJSON(
            .object([
                ("input", .string(input)), ("output", .string(report.path)), ("format", .string(format)),
                ("files", .array(report.files.map(JSONValue.string))), ("tensors", .int(report.tensorCount)),
                ("bytes", .int(report.bytesWritten)), ("seconds", .number(String(format: "%.3f", seconds))),
                (
                    "outputs",
                    .array(
                        reports.map {
                            .object([
                                ("format", .string($0.0)), ("path", .string($0.1.path)),
                                ("bytes", .int($0.1.bytesWritten)),
                            ])
                        })
                ),
            ]))
    }
}
