import LatheCore

/// HF `config.json` ↔ `LlamaConfig` (formats.md §1.6).
enum HFConfig {
    static func llamaConfig(from json: JSONValue, path: String) throws -> LlamaConfig {
        func int(_ key: String, default fallback: Int? = nil) throws -> Int {
            if let value = json[key], value != .null {
                // GGUF stores these as u32: anything outside is refused here rather than trapped on later.
                guard let int = value.intValue, int >= 0, int <= Int(UInt32.max) else {
                    throw SafetensorsError(
                        path: path, rule: .invalidConfig, field: key,
                        problem: "must be an integer from 0 to 4294967295, got \(value.serialized())")
                }
                return int
            }
            guard let fallback else {
                throw SafetensorsError(path: path, rule: .invalidConfig, field: key, problem: "missing")
            }
            return fallback
        }
        // Optional fields: absent or null takes the default, but a value of the wrong type is an
        // error (a quoted "500000" for rope_theta must not become the default 10000).
        func present(_ object: JSONValue, _ key: String) -> JSONValue? {
            guard let value = object[key], value != .null else { return nil }
            return value
        }
        func number(_ object: JSONValue, _ key: String, field: String? = nil) throws -> Double? {
            guard let value = present(object, key) else { return nil }
            guard let number = value.doubleValue, number.isFinite else {
                throw SafetensorsError(
                    path: path, rule: .invalidConfig, field: field ?? key,
                    problem: "must be a finite number, got \(value.serialized())")
            }
            return number
        }
        func string(_ object: JSONValue, _ key: String, field: String? = nil) throws -> String? {
            guard let value = present(object, key) else { return nil }
            guard let text = value.stringValue else {
                throw SafetensorsError(
                    path: path, rule: .invalidConfig, field: field ?? key,
                    problem: "must be a string, got \(value.serialized())")
            }
            return text
        }
        func bool(_ key: String) throws -> Bool? {
            guard let value = present(json, key) else { return nil }
            guard let flag = value.boolValue else {
                throw SafetensorsError(
                    path: path, rule: .invalidConfig, field: key,
                    problem: "must be true or false, got \(value.serialized())")
            }
            return flag
        }
        let modelType = try string(json, "model_type") ?? "llama"
        guard ["llama", "mistral"].contains(modelType) else {
            throw SafetensorsError(
                path: path, rule: .unsupported, field: "model_type",
                problem: "'\(modelType)' is not a Llama-family model")
        }
        for (key, expected) in [("hidden_act", "silu")] {
            if let value = try string(json, key), value != expected {
                throw SafetensorsError(
                    path: path, rule: .unsupported, field: key,
                    problem: "'\(value)' is not supported (only \(expected))")
            }
        }
        // A null `rope_parameters` is absent: the top-level rope_theta then applies.
        let rope = present(json, "rope_parameters") ?? json
        let hidden = try int("hidden_size")
        let heads = try int("num_attention_heads")
        var scaling: LlamaConfig.RopeScaling?
        // Newer configs fold the scaling into `rope_parameters`, with `rope_type` "default" for none.
        let folded: JSONValue? = present(json, "rope_parameters").flatMap { parameters in
            guard let type = parameters["rope_type"]?.stringValue, type != "default" else { return nil }
            return parameters
        }
        if let object = present(json, "rope_scaling") ?? folded {
            guard case .object = object else {
                throw SafetensorsError(
                    path: path, rule: .invalidConfig, field: "rope_scaling",
                    problem: "must be an object, got \(object.serialized())")
            }
            let type =
                try string(object, "rope_type", field: "rope_scaling.rope_type")
                ?? string(object, "type", field: "rope_scaling.type") ?? "linear"
            // transformers spells "no scaling" as rope_type "default" (older files: "none").
            if type != "default", type != "none" {
                scaling = LlamaConfig.RopeScaling(
                    type: type, factor: try number(object, "factor", field: "rope_scaling.factor") ?? 1,
                    originalContextLength: object["original_max_position_embeddings"]?.intValue,
                    lowFrequencyFactor: try number(object, "low_freq_factor", field: "rope_scaling.low_freq_factor"),
                    highFrequencyFactor: try number(
                        object, "high_freq_factor", field: "rope_scaling.high_freq_factor"))
            }
        }
        return LlamaConfig(
            architecture: "llama", hiddenSize: hidden, layerCount: try int("num_hidden_layers"), headCount: heads,
            kvHeadCount: try int("num_key_value_heads", default: heads),
            headDim: try int("head_dim", default: hidden / max(heads, 1)),
            ffnSize: try int("intermediate_size"), normEpsilon: try number(json, "rms_norm_eps") ?? 1e-6,
            ropeBase: try number(rope, "rope_theta") ?? 10_000, ropeScaling: scaling,
            vocabSize: try int("vocab_size", default: 32_000),
            contextLength: try int("max_position_embeddings", default: 2048),
            tiedEmbeddings: try bool("tie_word_embeddings") ?? false)
    }

    /// The `torch_dtype` of a model whose matrices are mostly `dtype` (transformers loads in float32
    /// when the key is absent, so a BF16 model would double in memory), or nil for other encodings.
    static func torchDType(_ graph: ModelGraph) -> String? {
        switch graph.majorityMatrixEncoding {
        case .f32: return "float32"
        case .f16: return "float16"
        case .bf16: return "bfloat16"
        default: return nil
        }
    }

    /// `config.json` for `config`: the original file's entries (when kept) with the mapped fields updated.
    static func json(
        for config: LlamaConfig, original: JSONValue?, tokenizer: TokenizerDescription?, torchDType: String? = nil
    ) -> JSONValue {
        func number(_ value: Double) -> JSONValue {
            // Values that came from f32 GGUF keys print in their shortest f32 spelling (1e-05, not 9.99…e-06).
            let single = Float(value)
            return .number(Double(single) == value ? "\(single)" : "\(value)")
        }
        var fields: [(key: String, value: JSONValue)] = [
            ("architectures", .array([.string("LlamaForCausalLM")])), ("model_type", .string("llama")),
            ("hidden_size", .int(config.hiddenSize)), ("intermediate_size", .int(config.ffnSize)),
            ("num_hidden_layers", .int(config.layerCount)), ("num_attention_heads", .int(config.headCount)),
            ("num_key_value_heads", .int(config.kvHeadCount)), ("head_dim", .int(config.headDim)),
            ("rms_norm_eps", number(config.normEpsilon)), ("rope_theta", number(config.ropeBase)),
            ("max_position_embeddings", .int(config.contextLength)), ("vocab_size", .int(config.vocabSize)),
            ("tie_word_embeddings", .bool(config.tiedEmbeddings)), ("hidden_act", .string("silu")),
        ]
        if let scaling = config.ropeScaling {
            var object: [(key: String, value: JSONValue)] = [
                ("rope_type", .string(scaling.type)), ("factor", number(scaling.factor)),
            ]
            if let original = scaling.originalContextLength {
                object.append(("original_max_position_embeddings", .int(original)))
            }
            if let low = scaling.lowFrequencyFactor { object.append(("low_freq_factor", number(low))) }
            if let high = scaling.highFrequencyFactor { object.append(("high_freq_factor", number(high))) }
            fields.append(("rope_scaling", .object(object)))
        } else {
            fields.append(("rope_scaling", .null))
        }
        if let torchDType {
            // transformers 4.56 and later write "dtype"; a file that has only that key keeps its spelling.
            let key = original?["dtype"] != nil && original?["torch_dtype"] == nil ? "dtype" : "torch_dtype"
            fields.append((key, .string(torchDType)))
        }
        if let tokenizer {
            if let bos = tokenizer.bosTokenID { fields.append(("bos_token_id", .int(bos))) }
            if let eos = tokenizer.eosTokenID { fields.append(("eos_token_id", .int(eos))) }
        }
        guard var merged = original?.objectValue else { return .object(fields) }
        for (key, value) in fields {
            // Keep the original spelling when it means the same number (1e-05 vs 1e-5).
            if let index = merged.firstIndex(where: { $0.key == key }) {
                if case .number(let old) = merged[index].value, case .number(let new) = value,
                    Double(old) == Double(new)
                {
                    continue
                }
                if key == "eos_token_id", merged[index].value.arrayValue != nil { continue }
                merged[index].value = value
            } else {
                merged.append((key, value))
            }
        }
        return .object(merged)
    }
}
