import Foundation
import LatheCore

/// Byte-level BPE tokenization as llama.cpp runs it (formats.md §4): special-token partition, the
/// model's pre-tokenizer, merges by rank (leftmost first on ties), and silently dropped bytes that
/// the vocabulary lacks.
public final class BPETokenizer: @unchecked Sendable {
    public let description: TokenizerDescription
    private let idOf: [String: Int]
    private let ranks: [String: [String: Int]]
    private let preTokenizer: PreTokenizer
    /// Control, user-defined and unknown tokens, longest text first.
    private let specials: [(id: Int, text: String, type: Int32)]
    // Per pre-token cache, shared by every caller: the lock makes the tokenizer safe to use from
    // several tasks at once (the other state is immutable).
    private var cache: [String: [Int]] = [:]
    private let cacheLock = NSLock()

    public init(_ description: TokenizerDescription) throws {
        guard description.model == "gpt2" else {
            throw LatheError.notImplemented(
                capability: "the '\(description.model)' tokenizer",
                detail: "only byte-level BPE (gpt2) vocabularies are supported")
        }
        self.description = description
        var idOf: [String: Int] = [:]
        // llama.cpp refuses a vocabulary that spells two tokens alike (text could not say which), but
        // first renames each empty token `[EMPTY_<id>]`: no text reaches those, so they stay unmapped.
        for (id, token) in description.tokens.enumerated() where !token.isEmpty {
            if let first = idOf[token] {
                throw LatheError.invalidValue(
                    field: "tokenizer tokens", value: "'\(token.escapingControlCharacters)' at ids \(first) and \(id)",
                    expected: "each token spelled once")
            }
            idOf[token] = id
        }
        self.idOf = idOf
        var ranks: [String: [String: Int]] = [:]
        for (rank, merge) in description.merges.enumerated() {
            // Split at the first space that is not at position 0.
            guard let space = merge.dropFirst().firstIndex(of: " ") else { continue }
            let left = String(merge[..<space])
            let right = String(merge[merge.index(after: space)...])
            if ranks[left]?[right] == nil { ranks[left, default: [:]][right] = rank }
        }
        self.ranks = ranks
        guard let preTokenizer = PreTokenizer(name: description.preTokenizer) else {
            throw LatheError.notImplemented(
                capability: "the '\(description.preTokenizer ?? "")' pre-tokenizer",
                detail: "the runtime splits text as gpt-2, smollm and llama-bpe do")
        }
        self.preTokenizer = preTokenizer
        specials = description.tokenTypes.enumerated()
            .filter { [2, 3, 4].contains($0.element) && !description.tokens[$0.offset].isEmpty }
            .map { (id: $0.offset, text: description.tokens[$0.offset], type: $0.element) }
            .sorted { $0.text.utf8.count > $1.text.utf8.count }
    }

    /// The token every evaluation window starts with, for a model that asks for BOS (llama-perplexity
    /// writes it over each chunk's first token); nil for one that does not.
    public var windowStart: Int? { description.addBOS ? description.bosTokenID : nil }

    /// Token ids for `text`. `addSpecial` adds BOS/EOS as the model asks; `parseSpecial` recognises
    /// control tokens written in the text (user-defined tokens are always recognised).
    public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = false) -> [Int] {
        var ids: [Int] = []
        if addSpecial, description.addBOS, let bos = description.bosTokenID { ids.append(bos) }
        for fragment in partition(text, parseSpecial: parseSpecial) {
            switch fragment {
            case .special(let id): ids.append(id)
            case .text(let raw):
                for piece in preTokenizer.split(raw) { ids += encodePiece(piece) }
            }
        }
        return ids
    }

    /// The text of `ids` (control tokens included as their text unless `skipSpecial`).
    public func decode(_ ids: [Int], skipSpecial: Bool = false) -> String {
        String(decoding: bytes(ids, skipSpecial: skipSpecial), as: UTF8.self)
    }

    /// The bytes `ids` stand for; a character may span several tokens, so streams decode bytes.
    public func bytes(_ ids: [Int], skipSpecial: Bool = false) -> [UInt8] {
        var bytes: [UInt8] = []
        for id in ids where id >= 0 && id < description.tokens.count {
            let type = id < description.tokenTypes.count ? description.tokenTypes[id] : 1
            if type == 3 {
                if !skipSpecial { bytes += Array(description.tokens[id].utf8) }
                continue
            }
            bytes += ByteLevelAlphabet.decode(description.tokens[id])
        }
        return bytes
    }

    private enum Fragment {
        case text(String)
        case special(Int)
    }

    private func partition(_ text: String, parseSpecial: Bool) -> [Fragment] {
        var fragments: [Fragment] = [.text(text)]
        for special in specials where parseSpecial || special.type == 4 {
            var next: [Fragment] = []
            for fragment in fragments {
                guard case .text(let raw) = fragment, raw.contains(special.text) else {
                    next.append(fragment)
                    continue
                }
                var rest = Substring(raw)
                while let range = rest.range(of: special.text) {
                    if range.lowerBound > rest.startIndex { next.append(.text(String(rest[..<range.lowerBound]))) }
                    next.append(.special(special.id))
                    rest = rest[range.upperBound...]
                }
                if !rest.isEmpty { next.append(.text(String(rest))) }
            }
            fragments = next
        }
        return fragments
    }

    private func encodePiece(_ piece: String) -> [Int] {
        if let cached = cacheLock.withLock({ cache[piece] }) { return cached }
        let encoded = ByteLevelAlphabet.encode(piece.utf8)
        // llama.cpp's llama-bpe takes a pre-token that is itself in the vocabulary whole, before any
        // merge (its `ignore_merges`): Llama 3's merges do not always rebuild such tokens.
        if preTokenizer == .llama3, let id = idOf[encoded] {
            cacheLock.withLock { cache[piece] = [id] }
            return [id]
        }
        var symbols = encoded.unicodeScalars.map { String($0) }
        while symbols.count > 1 {
            var best: (rank: Int, index: Int)?
            for i in 0..<(symbols.count - 1) {
                if let rank = ranks[symbols[i]]?[symbols[i + 1]], best == nil || rank < best!.rank {
                    best = (rank, i)
                }
            }
            guard let (_, index) = best else { break }
            symbols[index] += symbols[index + 1]
            symbols.remove(at: index + 1)
        }
        var ids: [Int] = []
        for symbol in symbols {
            if let id = idOf[symbol] {
                ids.append(id)
            } else {
                // llama.cpp then looks up each byte of the symbol's text as a one-byte token; only
                // ASCII can match, so a byte symbol missing from the vocabulary is silently dropped.
                for byte in symbol.utf8 where byte < 0x80 {
                    if let id = idOf[String(Unicode.Scalar(byte))] { ids.append(id) }
                }
            }
        }
        cacheLock.withLock { cache[piece] = ids }
        return ids
    }
}
