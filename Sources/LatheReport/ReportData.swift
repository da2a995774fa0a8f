import LatheCore

/// Everything a verification report shows, as plain data: the HTML is one view of it, the JSON
/// (`--json`, and embedded in the HTML) another.
public struct VerificationReport: Codable, Sendable, Equatable {
    public struct Distribution: Codable, Sendable, Equatable {
        public var mean: Double
        public var median: Double
        public var p99: Double
        public var max: Double
        /// Lower edge of each bin (the first is 0) and the count in it.
        public var binEdges: [Double]
        public var counts: [Int]

        public init(mean: Double, median: Double, p99: Double, max: Double, binEdges: [Double], counts: [Int]) {
            self.mean = mean
            self.median = median
            self.p99 = p99
            self.max = max
            self.binEdges = binEdges
            self.counts = counts
        }
    }

    /// One model's size, overall and by class of tensor.
    public struct ModelSummary: Codable, Sendable, Equatable {
        public struct TensorClass: Codable, Sendable, Equatable {
            public var name: String
            public var weights: Int
            public var bytes: Int
            public var encodings: [String]
            public var bitsPerWeight: Double { weights == 0 ? 0 : Double(bytes * 8) / Double(weights) }
        }

        public var path: String
        public var format: String
        public var weights: Int
        public var bytes: Int
        public var classes: [TensorClass]
        /// The provenance manifest (`lathe.manifest`), when the model has one.
        public var provenance: String?

        public var bitsPerWeight: Double { weights == 0 ? 0 : Double(bytes * 8) / Double(weights) }

        /// Sizes from a graph's tensor headers (nothing is decoded).
        public init(_ graph: ModelGraph) throws {
            path = graph.source
            format = graph.sourceFormat
            var classes: [String: TensorClass] = [:]
            var order: [String] = []
            (weights, bytes) = (0, 0)
            for tensor in graph.tensors {
                let name = Self.tensorClass(tensor.name)
                let count = try tensor.info.shape.elementCount()
                let size = try tensor.info.byteCount()
                if classes[name] == nil {
                    classes[name] = TensorClass(name: name, weights: 0, bytes: 0, encodings: [])
                    order.append(name)
                }
                classes[name]!.weights += count
                classes[name]!.bytes += size
                let encoding = "\(tensor.info.dtype)"
                if !classes[name]!.encodings.contains(encoding) { classes[name]!.encodings.append(encoding) }
                weights += count
                bytes += size
            }
            self.classes = order.compactMap { classes[$0] }
            provenance = graph.metadata["lathe.manifest"]?.stringValue
        }

        public init(path: String, format: String, weights: Int, bytes: Int, classes: [TensorClass], provenance: String?)
        {
            self.path = path
            self.format = format
            self.weights = weights
            self.bytes = bytes
            self.classes = classes
            self.provenance = provenance
        }

        /// The class a tensor's size is reported under, from its HF or GGUF name.
        public static func tensorClass(_ name: String) -> String {
            if name.contains("_proj.") || name.contains("attn_q.") || name.contains("attn_k.")
                || name.contains("attn_v.") || name.contains("attn_output.")
                || name.contains("ffn_")
                    && !name.contains("norm")
            {
                return "decoder linear layers"
            }
            if name.contains("embed_tokens") || name.hasPrefix("token_embd") { return "token embedding" }
            if name.hasPrefix("lm_head") || name == "output.weight" { return "output head" }
            if name.contains("norm") { return "norms" }
            return "other (rotations, records)"
        }
    }

    /// One basis site's eigenvalue spectrum (descending) and how many top directions stay high precision.
    public struct Spectrum: Codable, Sendable, Equatable {
        public var site: String
        public var eigenvalues: [Double]
        public var highRank: Int

        public init(site: String, eigenvalues: [Double], highRank: Int) {
            self.site = site
            self.eigenvalues = eigenvalues
            self.highRank = highRank
        }

        /// Share of the total variance the high-precision directions keep.
        public var keptShare: Double {
            let total = eigenvalues.reduce(0, +)
            return total > 0 ? eigenvalues.prefix(highRank).reduce(0, +) / total : 0
        }
    }

    public var title: String
    public var base: ModelSummary
    public var candidate: ModelSummary
    public var text: String
    public var scoring: String
    public var context: Int
    public var chunks: Int
    public var scoredTokens: Int
    public var kl: Distribution
    public var topOneAgreement: Double
    public var basePerplexity: Double
    public var candidatePerplexity: Double
    public var layerErrors: [Double]
    public var spectra: [Spectrum]

    public var perplexityRatio: Double { candidatePerplexity / basePerplexity }

    public init(
        title: String, base: ModelSummary, candidate: ModelSummary, text: String, scoring: String, context: Int,
        chunks: Int, scoredTokens: Int, kl: Distribution, topOneAgreement: Double, basePerplexity: Double,
        candidatePerplexity: Double, layerErrors: [Double], spectra: [Spectrum] = []
    ) {
        self.title = title
        self.base = base
        self.candidate = candidate
        self.text = text
        self.scoring = scoring
        self.context = context
        self.chunks = chunks
        self.scoredTokens = scoredTokens
        self.kl = kl
        self.topOneAgreement = topOneAgreement
        self.basePerplexity = basePerplexity
        self.candidatePerplexity = candidatePerplexity
        self.layerErrors = layerErrors
        self.spectra = spectra
    }
}
