/// The unused `[PADn]` tokens GGUF adds up to the embedding's rows, as llama.cpp's converter pads a
/// vocabulary smaller than its matrix (HF models often round the matrix up). One rule for the
/// writer that adds them and the comparisons that look past them.
extension TokenizerDescription {
    /// llama.cpp's UNUSED token type.
    public static let unusedTokenType: Int32 = 5

    /// Pads the token list to `count` with `[PADn]` tokens of the unused type (the others keep their
    /// types, or NORMAL when there were none); returns how many were added.
    @discardableResult
    public mutating func pad(toCount count: Int) -> Int {
        let existing = tokens.count
        guard existing < count else { return 0 }
        if tokenTypes.count != existing { tokenTypes = [Int32](repeating: 1, count: existing) }
        tokenTypes += [Int32](repeating: Self.unusedTokenType, count: count - existing)
        tokens += (existing..<count).map(Self.paddingToken)
        return count - existing
    }

    /// The tokenizer without trailing `[PADn]` tokens (of the unused type, when it has types).
    public var unpadded: TokenizerDescription {
        var result = self
        while let last = result.tokens.last, last == Self.paddingToken(result.tokens.count - 1),
            result.tokenTypes.count != result.tokens.count || result.tokenTypes.last == Self.unusedTokenType
        {
            result.tokens.removeLast()
            if result.tokenTypes.count > result.tokens.count { result.tokenTypes.removeLast() }
        }
        return result
    }

    static func paddingToken(_ id: Int) -> String { "[PAD\(id)]" }
}
