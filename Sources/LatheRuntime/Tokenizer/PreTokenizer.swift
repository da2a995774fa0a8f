/// The pre-tokenizers llama.cpp applies before BPE (formats.md §4.4), as hand-written scanners over
/// code points rather than regular expressions, so their behaviour on every Unicode category is exact.
enum PreTokenizer {
    case gpt2
    /// SmolLM2: every numeric code point becomes its own piece, then the GPT-2 rules.
    case smollm

    init(name: String?) {
        self = name == "smollm" ? .smollm : .gpt2
    }

    func split(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var pieces: [Range<Int>] = [0..<scalars.count]
        if self == .smollm { pieces = pieces.flatMap { Self.splitNumbers(scalars, $0) } }
        return pieces.flatMap { Self.gpt2(scalars, $0) }.map { range in
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars[range])
            return String(view)
        }
    }

    // MARK: - Character classes (Unicode general categories, White_Space)

    static func isLetter(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
        default: false
        }
    }

    static func isNumber(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: true
        default: false
        }
    }

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
                let runClass: ((Unicode.Scalar) -> Bool)? =
                    isLetter(c2)
                    ? isLetter
                    : isNumber(c2)
                        ? isNumber : !isWhitespace(c2) ? { !isWhitespace($0) && !isLetter($0) && !isNumber($0) } : nil
                if let runClass {
                    var j = i + lead
                    while j < end, runClass(s[j]) { j += 1 }
                    pieces.append(i..<j)
                    i = j
                    continue
                }
            }
            var n = 0
            while i + n < end, isWhitespace(s[i + n]) { n += 1 }
            if n > 1, i + n < end {
                pieces.append(i..<(i + n - 1))
                i += n - 1
            } else if n > 0 {
                pieces.append(i..<(i + n))
                i += n
            } else {
                pieces.append(i..<(i + 1))
                i += 1
            }
        }
        return pieces
    }
}
