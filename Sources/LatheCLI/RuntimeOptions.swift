import ArgumentParser
import Foundation
import LatheBuiltins
import LatheCore
import LatheRuntime
import LinearAlgebra

/// Options for commands that run a model.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "Threads (default: OPENBLAS_NUM_THREADS, else every core; more than the cores only slows it).")
    var threads: Int?
    @Flag(
        help: """
            Multiply a packed file's prompts in floats, bit for bit as its simulated model computes them \
            (slower), instead of with the integer GEMM. Checks a packed file against its simulation.
            """)
    var floatPrompts = false

    /// A session over `weights` run as these options say.
    func session(_ weights: LlamaWeights, maxContext: Int, threads: Int) -> LlamaSession {
        let session = LlamaSession(weights: weights, maxContext: maxContext, threads: threads)
        session.integerPrompts = !floatPrompts
        return session
    }

    /// How the threads are used. The session splits all work (GEMM tiles, GEMV row ranges, the packed
    /// kernels, heads) over single-threaded BLAS; OpenBLAS's own threads would spin between calls
    /// and compete. Set once, before any BLAS call.
    enum Workload {
        case batches
        case decoding
    }

    /// The threads a command uses when none are given: OPENBLAS_NUM_THREADS, else every core.
    static var defaultThreadCount: Int {
        ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"].flatMap(Int.init)
            ?? ProcessInfo.processInfo.activeProcessorCount
    }

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    /// Configures BLAS for the workload and returns the session's own thread count.
    func apply(for workload: Workload) throws -> Int {
        let count = threads ?? Self.defaultThreadCount
        guard count >= 1 else { throw UsageError("OPENBLAS_NUM_THREADS must be at least 1") }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        if let threads, threads > cores {
            // The workers wait on each other at every step: with more of them than cores, they wait
            // for a core too (4 threads on 2 cores took twice as long as 2).
            printError(
                "warning: --threads \(threads) is more than this machine's \(cores) cores; it will be slower than \(cores)"
            )
        }
        switch workload {
        case .batches:
            BLAS.threadCount = 1
            return count
        case .decoding:
            BLAS.threadCount = 1
            return count
        }
    }
}

/// Options for commands that score a text.
struct TextOptions: ParsableArguments {
    @Option(help: "The text to evaluate (UTF-8), e.g. data/wikitext-2/wiki.test.raw.") var text: String
    @Option(help: "Tokens per chunk (context length).") var ctx = 512
    @Option(help: "Evaluate at most this many chunks (default: the whole text).") var chunks: Int?
    @Option(help: "llama: score the second half of each chunk (llama-perplexity); all: every token (ResQ).")
    var `protocol`: String = "llama"

    func validate() throws {
        guard ctx >= 4 else { throw ValidationError("--ctx must be at least 4 tokens") }
        if let chunks, chunks < 1 { throw ValidationError("--chunks must be at least 1") }
        guard PerplexityProtocol(rawValue: `protocol`) != nil else {
            throw ValidationError("--protocol must be llama or all")
        }
    }

    /// Positions past the model's trained context score what it was never trained on; allowed, as
    /// llama-perplexity allows it, but said.
    func warnBeyondContext(of config: LlamaConfig, model: String, diagnostics: Diagnostics) {
        guard let trained = config.trainedContext, ctx > trained else { return }
        diagnostics.warning(
            "--ctx \(ctx) is past \(model)'s context length (\(trained)); its positions beyond that were never trained"
        )
    }

    var scoring: PerplexityProtocol {
        get throws {
            guard let value = PerplexityProtocol(rawValue: `protocol`) else {
                throw UsageError("--protocol must be llama or all")
            }
            return value
        }
    }

    /// The whole text tokenized in one call, as llama-perplexity does.
    func tokens(_ tokenizer: BPETokenizer) throws -> [Int] {
        try tokenizer.encodeFile(URL(fileURLWithPath: text), purpose: "text file")
    }
}

/// An error about a model's contents, prefixed with the model's path.
struct ModelError: Error, LocalizedError {
    let path: String
    let underlying: LatheError

    var errorDescription: String? {
        let message = underlying.errorDescription ?? "\(underlying)"
        return message.hasPrefix(path) ? message : "\(path): \(message)"
    }
}

/// A model opened for running: weights decoded once, and its tokenizer.
struct LoadedModel {
    let graph: ModelGraph
    let weights: LlamaWeights
    let tokenizer: BPETokenizer

    init(_ path: String, format: String?, diagnostics: Diagnostics) throws {
        graph = try ModelInput.open(
            URL(fileURLWithPath: path), format: format, options: ReadOptions(diagnostics: diagnostics),
            registry: LatheEnvironment.registry)
        guard let description = graph.tokenizer else {
            throw LatheError.missingField(
                "tokenizer", in: "\(path) (the runtime needs tokenizer.* metadata or tokenizer.json)")
        }
        do {
            tokenizer = try BPETokenizer(description)
            weights = try LlamaWeights(graph, diagnostics: diagnostics)
        } catch let error as LatheError {
            // The model's config and tensors are checked here; say which model (verify loads several).
            throw ModelError(path: path, underlying: error)
        }
    }
}

extension BPETokenizer {
    /// A whole UTF-8 file tokenized in one call (llama-perplexity's way: no BOS added by the text,
    /// control-token spellings read as plain text); `purpose` names the file in the error.
    func encodeFile(_ url: URL, purpose: String) throws -> [Int] {
        // A text may come from a pipe (`--text <(xzcat wiki.xz)`, `/dev/stdin`): read to its end.
        // A regular file is mapped; anything else (a directory, a socket) is refused.
        var status = stat()
        let bytes: [UInt8]
        if stat(url.path, &status) == 0, [S_IFIFO, S_IFCHR].contains(status.st_mode & S_IFMT) {
            guard let handle = FileHandle(forReadingAtPath: url.path), let data = try? handle.readToEnd() else {
                throw LatheError.fileAccess(path: url.path, reason: "cannot read the \(purpose)")
            }
            bytes = [UInt8](data)
        } else {
            do { bytes = try MappedFile.bytes(url) } catch {
                guard case .fileAccess(_, let reason) = error else { throw error }
                throw LatheError.fileAccess(path: url.path, reason: "cannot read the \(purpose): \(reason)")
            }
        }
        // A binary file named by mistake (--text model.gguf) would be scored as replacement characters.
        guard bytes.withUnsafeBufferPointer(UTF8Text.isValid) else {
            throw LatheError.problem(
                url.path, reason: "the \(purpose) is not UTF-8 text (byte \(Self.firstInvalidUTF8(bytes)) is not)")
        }
        return encode(String(decoding: bytes, as: UTF8.self), addSpecial: true, parseSpecial: false)
    }

    /// The offset of the first byte that does not begin a well-formed UTF-8 sequence.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): offset += scalar.count
            case .emptyInput, .error: return offset
            }
        }
    }
}
