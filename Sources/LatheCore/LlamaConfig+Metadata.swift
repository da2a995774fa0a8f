/// The typed config and tokenizer read from, and written to, GGUF-vocabulary metadata
/// (formats.md §2.4). Every format stores its model description in these keys inside `ModelGraph`.
extension LlamaConfig {
    /// Reads `general.architecture` and the `<arch>.*` keys; nil when the architecture key is absent,
    /// or when a family other than `llama` lacks Llama's keys (gpt2, phi2, …: files Lathe still
    /// inspects, converts and diffs as containers). A `llama` file must have them.
    public init?(metadata: Metadata, source: String) throws(LatheError) {
        guard let architecture = metadata["general.architecture"]?.stringValue else { return nil }
        let a = architecture
        let required = ["embedding_length", "attention.head_count", "block_count", "feed_forward_length"]
        if a != "llama",
            required.contains(where: { metadata["\(a).\($0)"] == nil })
                || metadata["\(a).attention.layer_norm_rms_epsilon"] == nil
        {
            return nil
        }
        // Counts are GGUF u32s: a negative or larger value is refused here, not trapped on when written.
        func optionalInt(_ key: String) throws(LatheError) -> Int? {
            guard let value = metadata[key] else { return nil }
            guard let int = value.intValue, int >= 0, int <= Int(UInt32.max) else {
                throw .invalidValue(
                    field: "\(source): \(key)", value: value.summary, expected: "an integer from 0 to 4294967295")
            }
            return int
        }
        func int(_ key: String) throws(LatheError) -> Int {
            guard let int = try optionalInt("\(a).\(key)") else { throw .missingField("\(a).\(key)", in: source) }
            return int
        }
        func double(_ key: String) throws(LatheError) -> Double {
            guard let value = metadata["\(a).\(key)"] else { throw .missingField("\(a).\(key)", in: source) }
            guard let double = value.doubleValue else {
                throw .invalidValue(field: "\(source): \(a).\(key)", value: value.summary, expected: "a number")
            }
            return double
        }
        let hidden = try int("embedding_length")
        let heads = try int("attention.head_count")
        let tokenCount = metadata["tokenizer.ggml.tokens"]?.arrayValue?.count ?? 0
        let vocab = try optionalInt("\(a).vocab_size") ?? tokenCount
        var scaling: RopeScaling?
        if let type = metadata["\(a).rope.scaling.type"]?.stringValue, type != "none" {
            scaling = RopeScaling(
                type: type, factor: metadata["\(a).rope.scaling.factor"]?.doubleValue ?? 1,
                originalContextLength: try optionalInt("\(a).rope.scaling.original_context_length"))
        } else if metadata["\(a).rope.scaling.type"] == nil,
            let type = metadata[RopeScaling.lathePrefix + "type"]?.stringValue
        {
            let key = RopeScaling.lathePrefix
            scaling = RopeScaling(
                type: type, factor: metadata[key + "factor"]?.doubleValue ?? 1,
                originalContextLength: try optionalInt(key + "original_context_length"),
                lowFrequencyFactor: metadata[key + "low_freq_factor"]?.doubleValue,
                highFrequencyFactor: metadata[key + "high_freq_factor"]?.doubleValue)
        }
        let rotaryDimensions = try optionalInt("\(a).rope.dimension_count")
        let keyLength = try optionalInt("\(a).attention.key_length")
        self.init(
            architecture: architecture, hiddenSize: hidden, layerCount: try int("block_count"), headCount: heads,
            kvHeadCount: try optionalInt("\(a).attention.head_count_kv") ?? heads,
            headDim: rotaryDimensions ?? keyLength,
            ffnSize: try int("feed_forward_length"),
            normEpsilon: try double("attention.layer_norm_rms_epsilon"),
            ropeBase: metadata["\(a).rope.freq_base"]?.doubleValue ?? 10_000, ropeScaling: scaling,
            vocabSize: vocab, contextLength: try optionalInt("\(a).context_length") ?? 0, tiedEmbeddings: true)
    }

    /// Writes the config into `metadata` with the exact key types llama.cpp checks (u32, f32).
    public func store(in metadata: inout Metadata) {
        let a = architecture
        metadata["general.architecture"] = .string(a)
        metadata["\(a).context_length"] = .uint32(UInt32(contextLength))
        metadata["\(a).embedding_length"] = .uint32(UInt32(hiddenSize))
        metadata["\(a).feed_forward_length"] = .uint32(UInt32(ffnSize))
        metadata["\(a).block_count"] = .uint32(UInt32(layerCount))
        metadata["\(a).attention.head_count"] = .uint32(UInt32(headCount))
        metadata["\(a).attention.head_count_kv"] = .uint32(UInt32(kvHeadCount))
        metadata["\(a).rope.freq_base"] = .float32(Float(ropeBase))
        metadata["\(a).attention.layer_norm_rms_epsilon"] = .float32(Float(normEpsilon))
        metadata["\(a).vocab_size"] = .uint32(UInt32(vocabSize))
        metadata["\(a).rope.dimension_count"] = .uint32(UInt32(headDim))
        if headDim != hiddenSize / max(headCount, 1) {
            metadata["\(a).attention.key_length"] = .uint32(UInt32(headDim))
            metadata["\(a).attention.value_length"] = .uint32(UInt32(headDim))
        }
        // Lathe's own llama3 keys are written afresh below, or not at all.
        for key in metadata.keys where key.hasPrefix(RopeScaling.lathePrefix) { metadata[key] = nil }
        if let scaling = ropeScaling, RopeScaling.llamaCppTypes.contains(scaling.type) {
            metadata["\(a).rope.scaling.type"] = .string(scaling.type)
            metadata["\(a).rope.scaling.factor"] = .float32(Float(scaling.factor))
            if let original = scaling.originalContextLength {
                metadata["\(a).rope.scaling.original_context_length"] = .uint32(UInt32(original))
            }
        } else if let scaling = ropeScaling {
            // llama.cpp aborts on a scaling type it does not know (`dynamic`, say), and takes llama3's
            // from the tensor `rope_freqs.weight` (written beside); the parameters go in Lathe's keys,
            // for the way back.
            for stale in ["type", "factor", "original_context_length"] { metadata["\(a).rope.scaling.\(stale)"] = nil }
            let key = RopeScaling.lathePrefix
            metadata[key + "type"] = .string(scaling.type)
            metadata[key + "factor"] = .float64(scaling.factor)
            if let original = scaling.originalContextLength {
                metadata[key + "original_context_length"] = .uint32(UInt32(original))
            }
            if let low = scaling.lowFrequencyFactor { metadata[key + "low_freq_factor"] = .float64(low) }
            if let high = scaling.highFrequencyFactor { metadata[key + "high_freq_factor"] = .float64(high) }
        }
    }
}

extension TokenizerDescription {
    /// Reads the `tokenizer.*` keys; nil when there is no vocabulary. A special token id must name
    /// a token, except that a negative one (some converters write −1 for "none") means none; a token
    /// type must fit GGUF's i32.
    public init?(metadata: Metadata, source: String) throws(LatheError) {
        guard let model = metadata["tokenizer.ggml.model"]?.stringValue,
            let tokens = metadata["tokenizer.ggml.tokens"]?.arrayValue
        else { return nil }
        var types: [Int32] = []
        for (index, value) in (metadata["tokenizer.ggml.token_type"]?.arrayValue ?? []).enumerated() {
            guard let type = value.intValue.flatMap({ Int32(exactly: $0) }) else {
                throw .invalidValue(
                    field: "\(source): tokenizer.ggml.token_type[\(index)]", value: value.summary,
                    expected: "a 32-bit token type")
            }
            types.append(type)
        }
        func tokenID(_ name: String) throws(LatheError) -> Int? {
            let key = "tokenizer.ggml.\(name)_token_id"
            guard let value = metadata[key] else { return nil }
            guard let id = value.intValue, id < tokens.count else {
                throw .invalidValue(
                    field: "\(source): \(key)", value: value.summary, expected: "a token id below \(tokens.count)")
            }
            return id >= 0 ? id : nil
        }
        self.init(
            model: model, preTokenizer: metadata["tokenizer.ggml.pre"]?.stringValue,
            tokens: tokens.map { $0.stringValue ?? "" }, tokenTypes: types,
            merges: (metadata["tokenizer.ggml.merges"]?.arrayValue ?? []).map { $0.stringValue ?? "" },
            bosTokenID: try tokenID("bos"), eosTokenID: try tokenID("eos"), unknownTokenID: try tokenID("unknown"),
            paddingTokenID: try tokenID("padding"),
            // llama.cpp's default when the key is absent depends on the pre-tokenizer (formats.md §4.1).
            addBOS: metadata["tokenizer.ggml.add_bos_token"]?.boolValue
                ?? (metadata["tokenizer.ggml.pre"]?.stringValue == "llama-bpe"),
            addSpacePrefix: metadata["tokenizer.ggml.add_space_prefix"]?.boolValue ?? false,
            chatTemplate: metadata["tokenizer.chat_template"]?.stringValue)
    }

    /// Writes the tokenizer keys (types as gguf-py writes them).
    public func store(in metadata: inout Metadata) {
        metadata["tokenizer.ggml.add_space_prefix"] = .bool(addSpacePrefix)
        metadata["tokenizer.ggml.add_bos_token"] = .bool(addBOS)
        metadata["tokenizer.ggml.model"] = .string(model)
        if let preTokenizer { metadata["tokenizer.ggml.pre"] = .string(preTokenizer) }
        metadata["tokenizer.ggml.tokens"] = .array(.string, tokens.map { .string($0) })
        if !tokenTypes.isEmpty { metadata["tokenizer.ggml.token_type"] = .array(.int32, tokenTypes.map { .int32($0) }) }
        if !merges.isEmpty { metadata["tokenizer.ggml.merges"] = .array(.string, merges.map { .string($0) }) }
        for (key, value) in [
            ("bos", bosTokenID), ("eos", eosTokenID), ("unknown", unknownTokenID), ("padding", paddingTokenID),
        ] {
            if let value { metadata["tokenizer.ggml.\(key)_token_id"] = .uint32(UInt32(value)) }
        }
        if let chatTemplate { metadata["tokenizer.chat_template"] = .string(chatTemplate) }
    }
}
