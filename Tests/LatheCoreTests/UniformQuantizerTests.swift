import LatheCore
import Testing

@Suite("Uniform quantizers (hand-computed examples)")
struct UniformQuantizerTests {
    func asymmetric(_ values: [Float], bits: Int, includeZero: Bool, clip: Float = 1) -> [Float] {
        var x = values
        x.withUnsafeMutableBufferPointer {
            UniformQuantizer.asymmetric(
                $0.baseAddress!, count: $0.count, bits: bits, includeZero: includeZero, clip: clip)
        }
        return x
    }

    @Test("asymmetric 2-bit: range with zero, scale (hi − lo)/3, integer zero point (exact)")
    func asymmetricWithZero() {
        // lo = 0 (zero included), hi = 3: s = 1, z = 0; 1.5 and 2.5 round half to even → 2, 2.
        #expect(asymmetric([0.5, 1.5, 2.5, 3], bits: 2, includeZero: true) == [0, 2, 2, 3])
        // lo = −1, hi = 2: s = 1, z = 1; −0.5 → round(−0.5) = −0 → code 1 → 0.
        #expect(asymmetric([-1, -0.5, 0.5, 2], bits: 2, includeZero: true) == [-1, 0, 0, 2])
    }

    @Test("asymmetric without zero uses [min, max]; with zero the range widens (exact)")
    func rangeWithoutZero() {
        // [2, 5] in 2 bits: s = 1, z = round(−2) = −2; 3.5 → round(3.5) = 4 (even).
        #expect(asymmetric([2, 3.5, 5, 4.4], bits: 2, includeZero: false) == [2, 4, 5, 4])
        // With zero: [0, 5], s = 5/3; 2 → round(1.2) = 1 → 5/3.
        let widened = asymmetric([2, 5], bits: 2, includeZero: true)
        #expect(widened[0] == Float(5) / 3 && widened[1] == 5)
    }

    @Test("clipping shrinks the range; values beyond it saturate (exact)")
    func clipping() {
        // [0, 4] · 0.75 = [0, 3]: s = 1; 4 saturates at code 3.
        #expect(asymmetric([0, 1, 4], bits: 2, includeZero: true, clip: 0.75) == [0, 1, 3])
    }

    @Test("an all-zero row uses the range [−1, 1]; a constant group without zero is left exact")
    func degenerateRanges() {
        #expect(asymmetric([0, 0, 0], bits: 4, includeZero: true) == [0, 0, 0])
        #expect(asymmetric([0.3, 0.3], bits: 4, includeZero: false) == [0.3, 0.3])
    }

    @Test("symmetric 4-bit: levels −8…7, round half to even (exact)")
    func symmetric() {
        var x: [Float] = [2.5, -2.5, 3.5, 100, -100, 0.4]
        x.withUnsafeMutableBufferPointer {
            UniformQuantizer.symmetric($0.baseAddress!, count: $0.count, bits: 4, scale: 1)
        }
        #expect(x == [2, -2, 4, 7, -8, 0])
        #expect(UniformQuantizer.symmetricScale(maxMagnitude: 7, bits: 4) == 1)
        #expect(UniformQuantizer.symmetricScale(maxMagnitude: 0, bits: 8) == Float(1e-5) / 127)
    }

    @Test("an activation quantizer gives the low part and the high tail of each group their own scales (exact)")
    func groupsAndTails() {
        // Two groups of 4; each group's last value is its high part (8 bit), the first three 2 bit.
        let quantizer = ActivationQuantizer(bits: 2, highBits: 8, highCount: 1, groupSize: 4, includeZero: false)
        var x: [Float] = [0, 1, 3, 0.123, 10, 11, 13, -7]
        x.withUnsafeMutableBufferPointer { quantizer.apply($0.baseAddress!, rows: 1, width: 8) }
        // [0, 1, 3]: s = 1 → 0, 1, 3; a one-value high part is constant, kept exact.
        // [10, 11, 13]: s = 1, z = −10 → exact.
        #expect(x == [0, 1, 3, 0.123, 10, 11, 13, -7])
        var y: [Float] = [0, 1.5, 3, 0.5, 0.25]
        let whole = ActivationQuantizer(bits: 2, highBits: 2, highCount: 2, includeZero: true)
        y.withUnsafeMutableBufferPointer { whole.apply($0.baseAddress!, rows: 1, width: 5) }
        // Low [0, 1.5, 3]: s = 1, 1.5 → 2. High [0.5, 0.25] with zero: [0, 0.5], s = 1/6 → 0.5, 0.25 → 1.5 → 2 → 1/3.
        #expect(y[0...2] == [0, 2, 3])
        #expect(y[3] == 0.5 && abs(y[4] - Float(1) / 3) < 1e-7)
    }

    @Test("quantization schemes round-trip through metadata and reject widths they cannot split")
    func schemeRecord() throws {
        var scheme = QuantizationScheme()
        scheme.activations["attn_input"] = ActivationQuantizer(bits: 4, highCount: 72, includeZero: true)
        scheme.keys = ActivationQuantizer(bits: 4, highCount: 8, groupSize: 64, includeZero: true)
        scheme.queryKeyBits = 8
        var metadata = Metadata()
        try scheme.store(in: &metadata)
        #expect(try QuantizationScheme(metadata: metadata) == scheme)
        #expect(throws: LatheError.self) {
            try ActivationQuantizer(bits: 4, highCount: 8, groupSize: 60, includeZero: true).validate(
                width: 64 * 3, field: "keys")
        }
    }
}

@Suite("Process memory")
struct ProcessMemoryTests {
    @Test("the peak resident size is known on Linux and at least the current size")
    func peakResident() throws {
        #if os(Linux)
            let now = try #require(ProcessMemory.residentBytes())
            let peak = try #require(ProcessMemory.peakResidentBytes())  // read second: it only grows
            #expect(peak >= now && now > 1 << 20)
        #endif
    }
}
