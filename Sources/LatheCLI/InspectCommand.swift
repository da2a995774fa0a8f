import ArgumentParser
import Foundation
import LatheBuiltins
import LatheCore

/// `lathe inspect`: what is in a checkpoint.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a checkpoint's format, architecture, tokenizer and tensors.",
        discussion: """
            PATH may be a GGUF file, a safetensors file or index, a Hugging Face directory, an lpack file, or a \
            .tar, .tar.zst or .zip archive holding one. Shapes are printed outermost dimension first (PyTorch \
            order; GGUF's ne reversed). GGUF files are shown with their own tensor names unless --hf-names is \
            given. lpack matrices show as PACKED<bit widths>x<scale slots per row>, with z when they carry zero \
            points and h when their scales are F16 (formats/packed/SPEC.md).
            """
    )

    @Argument(help: "A model file, HF directory or archive.") var path: String
    @Flag(help: "List every tensor.") var tensors = false
    @Flag(help: "List every metadata key with its type and value.") var metadata = false
    @Flag(help: "Show GGUF tensors under Lathe's canonical (Hugging Face) names.") var hfNames = false
    @Flag(help: "Print JSON instead of text.") var json = false
    @OptionGroup var input: InputOptions

    func run() throws {
        let printer = StderrDiagnostics(verbose: input.verbose)
        let options = ReadOptions(diagnostics: printer.diagnostics, naming: hfNames ? .huggingface : .gguf)
        let graph = try ModelInput.open(
            URL(fileURLWithPath: path), format: input.format, options: options, registry: LatheEnvironment.registry)
        let summary = try ModelSummary(graph)
        if json {
            printJSON(summary.json(tensors: tensors, metadata: metadata ? graph.metadata : nil))
        } else {
            print(summary.text(tensors: tensors, metadata: metadata ? graph.metadata : nil))
        }
    }
}

/// The facts `inspect` reports, computed once for both renderings.
struct ModelSummary {
    let graph: ModelGraph
    let bytes: Int
    let elements: Int
    let dtypeCounts: [(String, Int)]

    init(_ graph: ModelGraph) throws {
        self.graph = graph
        (bytes, elements) = try graph.totals()
        var counts: [String: Int] = [:]
        for tensor in graph.tensors { counts["\(tensor.info.dtype)", default: 0] += 1 }
        dtypeCounts = counts.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
    }

    var bitsPerWeight: Double { elements == 0 ? 0 : Double(bytes) * 8 / Double(elements) }

    func text(tensors showTensors: Bool, metadata: Metadata?) -> String {
        var lines = [
            "Model:      \(graph.source)",
            "Format:     \(graph.sourceFormat)\(graph.metadata["general.name"]?.stringValue.map { " — \($0)" } ?? "")",
        ]
        if let c = graph.config {
            lines.append(
                "Config:     \(c.architecture), \(c.layerCount) layers, hidden \(c.hiddenSize), \(c.headCount) heads × \(c.headDim) "
                    + "(\(c.kvHeadCount) KV), FFN \(c.ffnSize), vocab \(c.vocabSize), context \(c.trainedContext.map(String.init) ?? "unknown")"
            )
            lines.append(
                "            RMS eps \(Float(c.normEpsilon)), RoPE base \(Float(c.ropeBase))\(c.ropeScaling.map { ", RoPE scaling \($0.type) ×\($0.factor)" } ?? ""), "
                    + (c.tiedEmbeddings ? "tied embeddings" : "separate output head"))
        } else {
            lines.append(
                "Config:     none "
                    + (graph.metadata["general.architecture"]?.stringValue.map {
                        "('\($0)' is not a Llama-family model: shown as a container of tensors)"
                    } ?? "(no architecture metadata)"))
        }
        if let t = graph.tokenizer {
            let specials = [
                ("bos", t.bosTokenID), ("eos", t.eosTokenID), ("unk", t.unknownTokenID), ("pad", t.paddingTokenID),
            ]
            .compactMap { name, id in id.map { "\(name) \($0) \(token(t, $0))" } }.joined(separator: ", ")
            lines.append(
                "Tokenizer:  \(t.model)\(t.preTokenizer.map { " (pre \($0))" } ?? ""), \(t.tokens.count) tokens, \(t.merges.count) merges; \(specials)"
            )
        } else {
            lines.append("Tokenizer:  none")
        }
        lines.append("Metadata:   \(graph.metadata.count) keys")
        if let text = graph.metadata["lathe.manifest"]?.stringValue, let manifest = try? JSONValue.parse(text) {
            let recipe = manifest["recipe"]
            let inputs = (manifest["inputs"]?.arrayValue ?? []).map {
                "\($0["name"]?.stringValue ?? "?") sha256 \(($0["sha256"]?.stringValue ?? "").prefix(12))…"
            }
            lines.append(
                "Manifest:   recipe \(recipe?["name"]?.stringValue ?? "?") (\(recipe?["source"]?.stringValue ?? "?")), Lathe \(manifest["lathe_version"]?.stringValue ?? "?"), "
                    + "seed \(manifest["seed"].map { $0.serialized() } ?? "?"); input \(inputs.joined(separator: ", "))"
            )
        }
        lines.append(
            "Tensors:    \(graph.tensors.count) (\(dtypeCounts.map { "\($0.1) \($0.0)" }.joined(separator: ", "))), "
                + "\(elements) weights, \(formatBytes(bytes)), \(String(format: "%.3f", bitsPerWeight)) bits/weight")
        if let metadata {
            lines.append("")
            for (key, value) in metadata { lines.append("  \(key) [\(value.type)] = \(value.summary)") }
        }
        if showTensors {
            lines.append("")
            // Columns as wide as their longest entry: packed encodings read like PACKED4/8x2. Names
            // are escaped here already so that the width counts what is printed.
            let names = graph.tensors.map(\.name.escapingControlCharacters)
            let width = names.map(\.terminalWidth).max() ?? 0
            let dtypeWidth = max(8, 1 + (graph.tensors.map { "\($0.info.dtype)".count }.max() ?? 0))
            let shapeWidth = max(16, 1 + (graph.tensors.map { "\($0.info.shape)".count }.max() ?? 0))
            for (tensor, name) in zip(graph.tensors, names) {
                let bytes = (try? tensor.info.byteCount()) ?? 0
                lines.append(
                    "  " + name.padded(toColumns: width + 2)
                        + "\(tensor.info.dtype)".padded(toColumns: dtypeWidth)
                        + "\(tensor.info.shape)".padded(toColumns: shapeWidth)
                        + "\(bytes)")
            }
        }
        // Every string above may come from the file: none may drive the terminal.
        return lines.map(\.escapingControlCharacters).joined(separator: "\n")
    }

    private func token(_ t: TokenizerDescription, _ id: Int) -> String {
        id >= 0 && id < t.tokens.count ? "'\(t.tokens[id])'" : "(out of range)"
    }

    func json(tensors showTensors: Bool, metadata: Metadata?) -> JSONValue {
        var fields: [(key: String, value: JSONValue)] = [
            ("path", .string(graph.source)), ("format", .string(graph.sourceFormat)),
            ("tensor_count", .int(graph.tensors.count)), ("total_bytes", .int(bytes)),
            ("total_elements", .int(elements)),
            ("bits_per_weight", .number(String(format: "%.4f", bitsPerWeight))),
            ("dtype_counts", .object(dtypeCounts.map { ($0.0, .int($0.1)) })),
            ("metadata_key_count", .int(graph.metadata.count)),
        ]
        if let c = graph.config {
            fields.append(
                (
                    "config",
                    .object([
                        ("architecture", .string(c.architecture)), ("layers", .int(c.layerCount)),
                        ("hidden_size", .int(c.hiddenSize)),
                        ("heads", .int(c.headCount)), ("kv_heads", .int(c.kvHeadCount)), ("head_dim", .int(c.headDim)),
                        ("ffn_size", .int(c.ffnSize)), ("vocab_size", .int(c.vocabSize)),
                        ("context_length", c.trainedContext.map(JSONValue.int) ?? .null),
                        ("norm_eps", .number("\(Float(c.normEpsilon))")),
                        ("rope_base", .number("\(Float(c.ropeBase))")),
                        ("tied_embeddings", .bool(c.tiedEmbeddings)),
                    ])
                ))
        }
        if let t = graph.tokenizer {
            fields.append(
                (
                    "tokenizer",
                    .object([
                        ("model", .string(t.model)), ("pre", t.preTokenizer.map(JSONValue.string) ?? .null),
                        ("tokens", .int(t.tokens.count)), ("merges", .int(t.merges.count)),
                        ("bos", t.bosTokenID.map(JSONValue.int) ?? .null),
                        ("eos", t.eosTokenID.map(JSONValue.int) ?? .null),
                    ])
                ))
        }
        // The provenance manifest a recipe output records, as the object it is (the text shows its summary).
        if let text = graph.metadata["lathe.manifest"]?.stringValue, let manifest = try? JSONValue.parse(text) {
            fields.append(("manifest", manifest))
        }
        if let metadata {
            fields.append(
                (
                    "metadata",
                    .object(
                        metadata.map { entry -> (key: String, value: JSONValue) in
                            var described: [(key: String, value: JSONValue)] = [
                                ("type", .string("\(entry.value.type)"))
                            ]
                            if case .array(let element, _) = entry.value {
                                described.append(("element", .string("\(element)")))
                            }
                            described.append(("value", entry.value.plainJSON))
                            return (entry.key, .object(described))
                        })
                ))
        }
        if showTensors {
            fields.append(
                (
                    "tensors",
                    .array(
                        graph.tensors.map { tensor in
                            .object([
                                ("name", .string(tensor.name)), ("dtype", .string("\(tensor.info.dtype)")),
                                ("shape", .array(tensor.info.shape.dimensions.map(JSONValue.int))),
                                ("bytes", .int((try? tensor.info.byteCount()) ?? 0)),
                            ])
                        })
                ))
        }
        return .object(fields)
    }
}
