import LatheCore
import Testing

/// `UTF8Text` against the standard library's strict decoder, `String(validating:as:)`, as the oracle.
@Suite("UTF-8 validation")
struct UTF8TextTests {
    private func agrees(_ bytes: [UInt8]) -> Bool {
        let expected = String(validating: bytes, as: UTF8.self)
        return UTF8Text.string(bytes) == expected
            && bytes.withUnsafeBytes { UTF8Text.isValid($0) } == (expected != nil)
    }

    @Test("every sequence of one and two bytes; every lead and second byte before third bytes at each class edge")
    func exhaustiveShortSequences() {
        var failures: [[UInt8]] = []
        for a in 0...255 {
            if !agrees([UInt8(a)]) { failures.append([UInt8(a)]) }
            for b in 0...255 where !agrees([UInt8(a), UInt8(b)]) { failures.append([UInt8(a), UInt8(b)]) }
        }
        let thirds: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xF0, 0xFF]
        for a in 0xC0...0xFF {
            for b in 0...255 {
                for c in thirds where !agrees([UInt8(a), UInt8(b), c]) {
                    failures.append([UInt8(a), UInt8(b), c])
                }
            }
        }
        #expect(failures.isEmpty, "first disagreements: \(failures.prefix(5))")
    }

    @Test("four-byte forms at the edges of their ranges, and invalid bytes after ASCII runs of every length")
    func edgesAndRuns() {
        let fourByte: [[UInt8]] = [
            [0xF0, 0x90, 0x80, 0x80], [0xF0, 0x8F, 0xBF, 0xBF], [0xF4, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80],
            [0xF3, 0xBF, 0xBF, 0xBF], [0xF5, 0x80, 0x80, 0x80], [0xF1, 0x80, 0x80, 0x7F], [0xF1, 0x80, 0x80],
            [0xED, 0x9F, 0xBF], [0xED, 0xA0, 0x80], [0xE0, 0x9F, 0xBF], [0xC1, 0xBF],
        ]
        for sequence in fourByte { #expect(agrees(sequence), "\(sequence)") }
        // The eight-byte ASCII scan must stop at, and then judge, a lead or stray byte at any offset.
        for run in 0...24 {
            for tail: [UInt8] in [
                [0x80], [0xC4, 0xA0], [0xC4], [0xE2, 0x82, 0xAC], [0xFF], [0xF0, 0x9F, 0x98, 0x80],
            ] {
                let bytes = [UInt8](repeating: 0x61, count: run) + tail + [UInt8](repeating: 0x62, count: run % 9)
                #expect(agrees(bytes), "\(run) ASCII bytes then \(tail)")
            }
        }
    }

    @Test("random byte strings biased towards well-formed text")
    func randomStrings() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            // SplitMix64.
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let pieces: [[UInt8]] = [
            Array("Ġthe".utf8), Array("日本".utf8), Array("😀".utf8), [0x80], [0xC3], [0xE0, 0x80], [0xF4, 0x90],
            Array("abcdefghij".utf8),
        ]
        var disagreements = 0
        for _ in 0..<20_000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int(next() % 6) { bytes += pieces[Int(next() % UInt64(pieces.count))] }
            if !agrees(bytes) { disagreements += 1 }
        }
        #expect(disagreements == 0)
    }
}

@Suite("Escaping control characters")
struct ControlEscapeTests {
    @Test("line breaks, tabs, ESC, DEL and C1 controls become escapes; other text, non-ASCII included, is kept")
    func escapes() {
        #expect("plain Ġthe 日本 😀".escapingControlCharacters == "plain Ġthe 日本 😀")
        #expect("a\nError: forged".escapingControlCharacters == #"a\nError: forged"#)
        #expect("\r\t".escapingControlCharacters == #"\r\t"#)
        #expect("x\u{1B}]0;t\u{07}\u{1B}[2J".escapingControlCharacters == #"x\u{1B}]0;t\u{7}\u{1B}[2J"#)
        #expect("\u{7F}\u{85}\u{9F}\u{A0}".escapingControlCharacters == #"\u{7F}\u{85}\u{9F}"# + "\u{A0}")
        // Escaping is idempotent: the escapes themselves hold no control characters.
        let once = "a\n\u{1B}b".escapingControlCharacters
        #expect(once.escapingControlCharacters == once)
    }
}
