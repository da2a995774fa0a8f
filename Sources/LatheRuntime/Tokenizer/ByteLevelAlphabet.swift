/// GPT-2's byte-to-unicode alphabet: every byte as one code point, so BPE can run on characters
/// (formats.md §4.2). Printable bytes map to themselves; the other 68 bytes, in increasing order, to
/// U+0100…U+0143.
enum ByteLevelAlphabet {
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 0x100
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            if printable {
                table[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                table[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (byte, scalar) in byteToScalar.enumerated() { map[scalar.value] = UInt8(byte) }
        return map
    }()

    /// The UTF-8 bytes of `text` spelled in the alphabet.
    static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var scalars = String.UnicodeScalarView()
        for byte in bytes { scalars.append(byteToScalar[Int(byte)]) }
        return String(scalars)
    }

    /// The bytes a token's text stands for (characters outside the alphabet are kept as UTF-8).
    static func decode(_ token: String) -> [UInt8] {
        var bytes: [UInt8] = []
        for scalar in token.unicodeScalars {
            if let byte = scalarToByte[scalar.value] {
                bytes.append(byte)
            } else {
                bytes.append(contentsOf: String(scalar).utf8)
            }
        }
        return bytes
    }
}
