import Foundation

/// The architecture facts of a Llama-family model that every format and the runtime agree on.
public struct LlamaConfig: Hashable, Sendable, Codable {
    /// RoPE frequency scaling, as HF's `rope_scaling` describes it.
    public struct RopeScaling: Hashable, Sendable, Codable {
        /// `linear`, `llama3`, `yarn`, … (the HF `rope_type`).
        public var type: String
        public var factor: Double
        public var originalContextLength: Int?
        public var lowFrequencyFactor: Double?
        public var highFrequencyFactor: Double?

        public init(
            type: String, factor: Double, originalContextLength: Int? = nil, lowFrequencyFactor: Double? = nil,
            highFrequencyFactor: Double? = nil
        ) {
            self.type = type
            self.factor = factor
            self.originalContextLength = originalContextLength
            self.lowFrequencyFactor = lowFrequencyFactor
            self.highFrequencyFactor = highFrequencyFactor
        }

        /// The types llama.cpp's loader reads from `<arch>.rope.scaling.type`; it aborts on any other.
        public static let llamaCppTypes: Set<String> = ["linear", "yarn", "longrope"]

        /// Where the metadata keeps a scaling llama.cpp has no key for (`llama3`, `dynamic`).
        public static let lathePrefix = "lathe.rope_scaling."

        /// The tensor llama.cpp reads llama3's divisors from (GGUF only; HF derives them from the config).
        public static let frequencyTensor = "rope_freqs.weight"

        /// For `llama3`, what each RoPE frequency θᵢ = base^(−2i/d), i < d/2, is divided by: 1 for
        /// wavelengths shorter than original context / high factor, `factor` for those longer than
        /// original / low factor, and between them 1 / ((1 − s)/factor + s), s rising linearly from 0
        /// to 1 in original / wavelength. llama.cpp carries these as the tensor `rope_freqs.weight`.
        /// Nil for other types.
        public func frequencyDivisors(headDim: Int, base: Double) -> [Double]? {
            // A head of more than 65,536 dimensions is no model; a hostile header could ask for 2³².
            guard type == "llama3", headDim >= 2, headDim <= 1 << 16 else { return nil }
            let original = Double(originalContextLength ?? 8192)
            let (low, high) = (lowFrequencyFactor ?? 1, highFrequencyFactor ?? 4)
            return (0..<(headDim / 2)).map { i in
                let frequency = Foundation.pow(base, -2 * Double(i) / Double(headDim))
                let wavelength = 2 * Double.pi / frequency
                if wavelength < original / high { return 1 }
                if wavelength > original / low { return factor }
                let smooth = (original / wavelength - low) / (high - low)
                return 1 / ((1 - smooth) / factor + smooth)
            }
        }
    }

    public var architecture: String
    public var hiddenSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var ffnSize: Int
    public var normEpsilon: Double
    public var ropeBase: Double
    public var ropeScaling: RopeScaling?
    public var vocabSize: Int
    public var contextLength: Int
    public var tiedEmbeddings: Bool

    public init(
        architecture: String = "llama", hiddenSize: Int, layerCount: Int, headCount: Int, kvHeadCount: Int,
        headDim: Int? = nil, ffnSize: Int, normEpsilon: Double, ropeBase: Double, ropeScaling: RopeScaling? = nil,
        vocabSize: Int, contextLength: Int, tiedEmbeddings: Bool
    ) {
        self.architecture = architecture
        self.hiddenSize = hiddenSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim ?? (headCount > 0 ? hiddenSize / headCount : 0)
        self.ffnSize = ffnSize
        self.normEpsilon = normEpsilon
        self.ropeBase = ropeBase
        self.ropeScaling = ropeScaling
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.tiedEmbeddings = tiedEmbeddings
    }

    /// Checks the relations the runtime relies on; the message names the offending field.
    ///
    /// Each size also has a ceiling far above any real model's (the largest have about 130 layers,
    /// 128 heads, 16 Ki hidden, 53 Ki FFN and 256 Ki tokens), so that a damaged or hostile header
    /// cannot make a pass loop over 2³¹ layers or a product of two sizes overflow.
    public func validate() throws(LatheError) {
        // Each field with the keys that carry it (GGUF's, then config.json's), so the message says what to fix.
        let a = architecture
        let sizes: [(field: String, value: Int, ceiling: Int)] = [
            ("hidden size (\(a).embedding_length, hidden_size)", hiddenSize, 1 << 20),
            ("layer count (\(a).block_count, num_hidden_layers)", layerCount, 1 << 12),
            ("head count (\(a).attention.head_count, num_attention_heads)", headCount, 1 << 12),
            ("KV head count (\(a).attention.head_count_kv, num_key_value_heads)", kvHeadCount, 1 << 12),
            ("head dim (hidden size / head count, or head_dim)", headDim, 1 << 12),
            ("FFN size (\(a).feed_forward_length, intermediate_size)", ffnSize, 1 << 22),
            ("vocab size (the token list, or vocab_size)", vocabSize, 1 << 24),
        ]
        for (field, value, ceiling) in sizes where value <= 0 || value > ceiling {
            // An absent key reads as 0: say so, since the file shows nothing wrong to the eye.
            throw .invalidValue(
                field: field, value: "\(value)",
                expected: value < 0
                    ? "a positive integer"
                    : value == 0 ? "a positive integer (is the key missing?)" : "at most \(ceiling)")
        }
        // 0 is an unknown context length (the readers take the key as optional; only a warning past
        // the trained context uses it).
        guard (0...(1 << 24)).contains(contextLength) else {
            throw .invalidValue(
                field: "context length (\(a).context_length, max_position_embeddings)", value: "\(contextLength)",
                expected: "0 (unknown) to \(1 << 24)")
        }
        guard headCount % kvHeadCount == 0 else {
            throw .invalidValue(
                field: "KV head count", value: "\(kvHeadCount)", expected: "a divisor of the head count \(headCount)")
        }
        guard headDim % 2 == 0 else {
            throw .invalidValue(field: "head dim", value: "\(headDim)", expected: "an even number (RoPE rotates pairs)")
        }
        for (field, value) in [("norm epsilon", normEpsilon), ("RoPE base", ropeBase)]
        where !(value > 0 && value.isFinite) {
            throw .invalidValue(field: field, value: "\(value)", expected: "a positive finite number")
        }
    }

    /// The context the model was trained for; nil when the file does not say (`contextLength` 0).
    public var trainedContext: Int? { contextLength > 0 ? contextLength : nil }

    /// Number of query heads that share one KV head.
    public var groupSize: Int { headCount / kvHeadCount }
}

/// The tokenizer a model file carries, in GGUF's vocabulary (HF's tokenizer.json maps onto it).
public struct TokenizerDescription: Hashable, Sendable {
    /// `gpt2` (byte-level BPE), `llama` (SentencePiece), …
    public var model: String
    /// The pre-tokenizer name (`smollm`, `llama-bpe`, …).
    public var preTokenizer: String?
    public var tokens: [String]
    /// Token types (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    public var tokenTypes: [Int32]
    public var merges: [String]
    public var bosTokenID: Int?
    public var eosTokenID: Int?
    public var unknownTokenID: Int?
    public var paddingTokenID: Int?
    public var addBOS: Bool
    public var addSpacePrefix: Bool
    public var chatTemplate: String?

    public init(
        model: String, preTokenizer: String? = nil, tokens: [String], tokenTypes: [Int32] = [], merges: [String] = [],
        bosTokenID: Int? = nil, eosTokenID: Int? = nil, unknownTokenID: Int? = nil, paddingTokenID: Int? = nil,
        addBOS: Bool = false, addSpacePrefix: Bool = false, chatTemplate: String? = nil
    ) {
        self.model = model
        self.preTokenizer = preTokenizer
        self.tokens = tokens
        self.tokenTypes = tokenTypes
        self.merges = merges
        self.bosTokenID = bosTokenID
        self.eosTokenID = eosTokenID
        self.unknownTokenID = unknownTokenID
        self.paddingTokenID = paddingTokenID
        self.addBOS = addBOS
        self.addSpacePrefix = addSpacePrefix
        self.chatTemplate = chatTemplate
    }
}
