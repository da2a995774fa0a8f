/// The pre-tokenizers llama.cpp applies before BPE (formats.md §4.4), as hand-written scanners over
/// code points rather than regular expressions, so their behaviour on every Unicode category is exact.
enum PreTokenizer {
    case gpt2
    /// SmolLM2: every numeric code point becomes its own piece, then the GPT-2 rules.
    case smollm
    /// Llama 3 (`llama-bpe`): one pattern, numbers in runs of up to three.
    case llama3

    /// Nil for a pre-tokenizer this file does not implement (`qwen2`, `deepseek-llm`, …): running one
    /// with GPT-2's rules would tokenize differently from llama.cpp without a word.
    init?(name: String?) {
        switch name {
        case "smollm": self = .smollm
        case "llama-bpe": self = .llama3
        case nil, "default", "gpt-2", "gpt2": self = .gpt2
        default: return nil
        }
    }

    func split(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var pieces: [Range<Int>] = [0..<scalars.count]
        if self == .smollm { pieces = pieces.flatMap { Self.splitNumbers(scalars, $0) } }
        let scan = self == .llama3 ? Self.scanLlama3 : Self.gpt2
        return pieces.flatMap { scan(scalars, $0) }.map { range in
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars[range])
            return String(view)
        }
    }

    // MARK: - Character classes (Unicode general categories, White_Space)

    /// Whether llama.cpp's character tables know `c`: they are Unicode 15.1 (its unicode-data.cpp), so
    /// a code point assigned since (Garay, more Egyptian hieroglyphs, … in 16.0) is unassigned there,
    /// an "other" character to the scanners, whatever this platform's newer tables call it.
    static func isKnownToLlamaCpp(_ c: Unicode.Scalar) -> Bool {
        guard let age = c.properties.age else { return false }
        return (age.major, age.minor) <= (15, 1)
    }

    static func isLetter(_ c: Unicode.Scalar) -> Bool {
        guard isKnownToLlamaCpp(c) else { return false }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ c: Unicode.Scalar) -> Bool {
        guard isKnownToLlamaCpp(c) else { return false }
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// Neither whitespace, letter nor number (punctuation, symbols, marks, unassigned code points).
    static func isOther(_ c: Unicode.Scalar) -> Bool { !isWhitespace(c) && !isLetter(c) && !isNumber(c) }

    /// The 25 White_Space code points.
    static func isWhitespace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: true
        default: false
        }
    }

    // MARK: - Scanners

    /// `\p{N}`: each numeric code point alone; the text between them kept as pieces.
    static func splitNumbers(_ s: [Unicode.Scalar], _ range: Range<Int>) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        var start = range.lowerBound
        for i in range where isNumber(s[i]) {
            if start < i { pieces.append(start..<i) }
            pieces.append(i..<(i + 1))
            start = i + 1
        }
        if start < range.upperBound { pieces.append(start..<range.upperBound) }
        return pieces
    }

    /// GPT-2's `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, scanned by hand
    /// as llama.cpp does; positions outside the piece count as nothing.
    static func gpt2(_ s: [Unicode.Scalar], _ range: Range<Int>) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        var i = range.lowerBound
        let end = range.upperBound
        func at(_ j: Int) -> Unicode.Scalar? { j < end ? s[j] : nil }
        while i < end {
            let c = s[i]
            // Contractions (case-sensitive).
            if c == "'", let next = at(i + 1) {
                if ["s", "t", "m", "d"].contains(next) {
                    pieces.append(i..<(i + 2))
                    i += 2
                    continue
                }
                if let third = at(i + 2),
                    (next == "r" && third == "e") || (next == "v" && third == "e") || (next == "l" && third == "l")
                {
                    pieces.append(i..<(i + 3))
                    i += 3
                    continue
                }
            }
            let c2 = c == " " ? at(i + 1) : c
            let lead = c == " " ? 1 : 0
            if let c2 {
                let runClass: ((Unicode.Scalar) -> Bool)?
                if isLetter(c2) {
                    runClass = isLetter
                } else if isNumber(c2) {
                    runClass = isNumber
                } else if !isWhitespace(c2) {
                    runClass = Self.isOther
                } else {
                    runClass = nil
                }
                if let runClass {
                    var j = i + lead
                    while j < end, runClass(s[j]) { j += 1 }
                    pieces.append(i..<j)
                    i = j
                    continue
                }
            }
            let j = whitespaceEnd(s, from: i, end: end)
            pieces.append(i..<j)
            i = j
        }
        return pieces
    }

    /// Where `\s+(?!\S)|\s+` (or, matching neither, one character) ends from `i`: a whitespace run
    /// followed by something else inside the piece leaves its last character to prefix that; a run
    /// that reaches the end is taken whole. Both scanners end with it.
    static func whitespaceEnd(_ s: [Unicode.Scalar], from i: Int, end: Int) -> Int {
        var n = 0
        while i + n < end, isWhitespace(s[i + n]) { n += 1 }
        return n > 1 && i + n < end ? i + n - 1 : i + max(n, 1)
    }

    /// Llama 3's `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
    /// \s*[\r\n]+|\s+(?!\S)|\s+`, scanned by hand as llama.cpp does; positions outside the piece
    /// count as nothing.
    static func scanLlama3(_ s: [Unicode.Scalar], _ range: Range<Int>) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        var i = range.lowerBound
        let end = range.upperBound
        func at(_ j: Int) -> Unicode.Scalar? { j < end ? s[j] : nil }
        func isNewline(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }
        /// A code point lowercased as llama.cpp's contraction check does (one scalar to one).
        func lower(_ c: Unicode.Scalar?) -> Unicode.Scalar? {
            guard let c else { return nil }
            let lowered = c.properties.lowercaseMapping.unicodeScalars
            return lowered.count == 1 ? lowered.first : c
        }
        func take(_ j: Int) {
            pieces.append(i..<j)
            i = j
        }
        while i < end {
            let c = s[i]
            // Contractions, in any case.
            if c == "'", let next = lower(at(i + 1)) {
                if ["s", "t", "m", "d"].contains(next) {
                    take(i + 2)
                    continue
                }
                if let third = lower(at(i + 2)),
                    (next == "r" && third == "e") || (next == "v" && third == "e") || (next == "l" && third == "l")
                {
                    take(i + 3)
                    continue
                }
            }
            // One optional character that is not a newline or number, then a run of letters.
            if !isNewline(c), !isNumber(c), isLetter(c) || at(i + 1).map(isLetter) == true {
                var j = i + 1
                while j < end, isLetter(s[j]) { j += 1 }
                take(j)
                continue
            }
            // One to three numbers.
            if isNumber(c) {
                var j = i + 1
                while j < end, j - i < 3, isNumber(s[j]) { j += 1 }
                take(j)
                continue
            }
            // An optional space, a run of other characters, then any newlines.
            let lead = c == " " ? 1 : 0
            if let c2 = at(i + lead), isOther(c2) {
                var j = i + lead
                while j < end, isOther(s[j]) { j += 1 }
                while j < end, isNewline(s[j]) { j += 1 }
                take(j)
                continue
            }
            // Whitespace through its last newline (`\s*[\r\n]+`); else as GPT-2 takes it.
            var j = i
            var afterNewline = 0
            while j < end, isWhitespace(s[j]) {
                if isNewline(s[j]) { afterNewline = j + 1 }
                j += 1
            }
            take(afterNewline > 0 ? afterNewline : whitespaceEnd(s, from: i, end: end))
        }
        return pieces
    }
}
