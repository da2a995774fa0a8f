import Foundation
import LatheCore
import Testing

/// One damaged input: the corruption class it belongs to, what exactly was done, and the bytes.
struct Corruption {
    var kind: Corruption.Kind
    var detail: String
    var bytes: [UInt8]

    enum Kind: String, CaseIterable {
        case truncation, offsetPastEnd, overlap, hugeCount, wrongType, invalidUTF8, nonFiniteScale, checksum,
            pathEscape
    }
}

/// Little-endian field access on a byte array, for editing files in place.
extension Array where Element == UInt8 {
    func u64(at offset: Int) -> UInt64 { self[offset..<offset + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) } }
    func u32(at offset: Int) -> UInt32 { UInt32(truncatingIfNeeded: u64(at: offset) & 0xFFFF_FFFF) }
    func settingU64(_ value: UInt64, at offset: Int) -> [UInt8] {
        var copy = self
        for i in 0..<8 { copy[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        return copy
    }
    func settingU32(_ value: UInt32, at offset: Int) -> [UInt8] {
        var copy = self
        for i in 0..<4 { copy[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
        return copy
    }
    func setting(_ byte: UInt8, at offset: Int) -> [UInt8] {
        var copy = self
        copy[offset] = byte
        return copy
    }
}

/// The fields of a GGUF file, found by walking it independently of Lathe's reader (GGUF v3 layout,
/// formats.md §2): where each header field ends, and where the fields the corruptions edit live.
struct GGUFLayout {
    struct KeyValue {
        var keyOffset: Int  // the key's u64 length
        var typeOffset: Int
        var type: UInt32
        var arrayCountOffset: Int?
    }
    struct TensorRecord {
        var nameOffset: Int  // the name's u64 length
        var dimsOffset: Int  // n_dims (u32), then the u64 dimensions
        var typeOffset: Int
        var offsetOffset: Int
        var type: UInt32
        var dataOffset: UInt64
    }

    var boundaries: [Int] = []
    var keyValues: [KeyValue] = []
    var tensors: [TensorRecord] = []
    var dataStart = 0

    init(_ bytes: [UInt8]) {
        var at = 4
        func take(_ count: Int) {
            at += count
            boundaries.append(at)
        }
        boundaries.append(4)
        take(4)  // version
        let tensorCount = Int(bytes.u64(at: at))
        take(8)
        let keyCount = Int(bytes.u64(at: at))
        take(8)
        func string() { take(8 + Int(bytes.u64(at: at))) }
        let scalarSizes: [UInt32: Int] = [0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8]
        for _ in 0..<keyCount {
            let keyOffset = at
            string()
            let typeOffset = at
            let type = bytes.u32(at: at)
            take(4)
            var arrayCountOffset: Int?
            if type == 8 {
                string()
            } else if type == 9 {
                let elementType = bytes.u32(at: at)
                take(4)
                arrayCountOffset = at
                let count = Int(bytes.u64(at: at))
                take(8)
                for _ in 0..<count {
                    if elementType == 8 { string() } else { take(scalarSizes[elementType]!) }
                }
            } else {
                take(scalarSizes[type]!)
            }
            keyValues.append(
                KeyValue(
                    keyOffset: keyOffset, typeOffset: typeOffset, type: type,
                    arrayCountOffset: arrayCountOffset))
        }
        for _ in 0..<tensorCount {
            let nameOffset = at
            string()
            let dimsOffset = at
            let dimensions = Int(bytes.u32(at: at))
            take(4)
            for _ in 0..<dimensions { take(8) }
            let typeOffset = at
            let type = bytes.u32(at: at)
            take(4)
            let offsetOffset = at
            let dataOffset = bytes.u64(at: at)
            take(8)
            tensors.append(
                TensorRecord(
                    nameOffset: nameOffset, dimsOffset: dimsOffset, typeOffset: typeOffset,
                    offsetOffset: offsetOffset, type: type, dataOffset: dataOffset))
        }
        dataStart = (at + 31) / 32 * 32
    }
}

/// Damaged copies of valid files, one or more per corruption class the format can suffer.
enum CorruptionGenerator {
    /// From a valid GGUF file whose first Q4_0 tensor gets its scales damaged.
    static func gguf(_ valid: [UInt8]) -> [Corruption] {
        let layout = GGUFLayout(valid)
        var cases: [Corruption] = []
        for cut in layout.boundaries + [layout.dataStart, valid.count - 1] where cut < valid.count {
            cases.append(Corruption(kind: .truncation, detail: "cut at byte \(cut)", bytes: Array(valid.prefix(cut))))
        }
        let last = layout.tensors[layout.tensors.count - 1]
        let second = layout.tensors[1]
        cases += [
            Corruption(
                kind: .offsetPastEnd, detail: "last tensor's offset past the end",
                bytes: valid.settingU64(UInt64(valid.count) * 4, at: last.offsetOffset)),
            Corruption(
                kind: .overlap, detail: "second tensor at the first one's offset",
                bytes: valid.settingU64(layout.tensors[0].dataOffset, at: second.offsetOffset)),
            Corruption(
                kind: .hugeCount, detail: "tensor count 2^60",
                bytes: valid.settingU64(1 << 60, at: 8)),
            Corruption(
                kind: .hugeCount, detail: "key count 2^60",
                bytes: valid.settingU64(1 << 60, at: 16)),
            Corruption(
                kind: .hugeCount, detail: "first key length 2^62",
                bytes: valid.settingU64(1 << 62, at: layout.keyValues[0].keyOffset)),
            Corruption(
                kind: .hugeCount, detail: "first tensor with 2^30 dimensions",
                bytes: valid.settingU32(1 << 30, at: layout.tensors[0].dimsOffset)),
            Corruption(
                kind: .hugeCount, detail: "first tensor's first dimension 2^62",
                bytes: valid.settingU64(1 << 62, at: layout.tensors[0].dimsOffset + 4)),
            Corruption(
                kind: .wrongType, detail: "first key's value type 99",
                bytes: valid.settingU32(99, at: layout.keyValues[0].typeOffset)),
            Corruption(
                kind: .wrongType, detail: "first tensor's ggml type 99",
                bytes: valid.settingU32(99, at: layout.tensors[0].typeOffset)),
            Corruption(
                kind: .wrongType, detail: "first tensor's ggml type 4 (the removed Q4_2)",
                bytes: valid.settingU32(4, at: layout.tensors[0].typeOffset)),
            Corruption(
                kind: .invalidUTF8, detail: "0xFF in the first key",
                bytes: valid.setting(0xFF, at: layout.keyValues[0].keyOffset + 8)),
            Corruption(
                kind: .invalidUTF8, detail: "0xC3 0x28 in the first tensor's name",
                bytes: valid.setting(0xC3, at: second.nameOffset + 8).setting(0x28, at: second.nameOffset + 9)),
        ]
        if let array = layout.keyValues.first(where: { $0.arrayCountOffset != nil }) {
            cases.append(
                Corruption(
                    kind: .hugeCount, detail: "an array of 2^61 elements",
                    bytes: valid.settingU64(1 << 61, at: array.arrayCountOffset!)))
        }
        if let quantized = layout.tensors.first(where: { $0.type == 2 }) {  // Q4_0: d is the block's first 2 bytes
            let block = layout.dataStart + Int(quantized.dataOffset) + 18
            for (name, bits) in [("NaN", UInt16(0x7E00)), ("+Inf", 0x7C00), ("-Inf", 0xFC00)] {
                cases.append(
                    Corruption(
                        kind: .nonFiniteScale, detail: "\(name) scale in a Q4_0 block",
                        bytes: valid.setting(UInt8(bits & 0xFF), at: block).setting(UInt8(bits >> 8), at: block + 1)))
            }
        }
        return cases
    }

    /// From a valid single-file safetensors file with at least two tensors.
    static func safetensors(_ valid: [UInt8]) throws -> [Corruption] {
        let headerLength = Int(valid.u64(at: 0))
        let header = String(decoding: valid[8..<8 + headerLength], as: UTF8.self)
        let data = Array(valid[(8 + headerLength)...])
        /// The file with its JSON header rewritten (length updated, same data).
        func rewritten(_ edit: (String) -> String) -> [UInt8] {
            var text = Array(edit(header.trimmingCharacters(in: .whitespaces)).utf8)
            text += [UInt8](repeating: 0x20, count: (8 - text.count % 8) % 8)
            return [UInt8](repeating: 0, count: 8).settingU64(UInt64(text.count), at: 0) + text + data
        }
        let offsets = #/"data_offsets":\[(\d+),(\d+)\]/#
        let matches = header.matches(of: offsets)
        let (first, second) = (matches[0], matches[1])
        let lastInData = matches.max { Int($0.output.2)! < Int($1.output.2)! }!
        func replacing(_ match: Regex<(Substring, Substring, Substring)>.Match, with text: String) -> (String) -> String
        {
            { $0.replacingCharacters(in: match.range, with: text) }
        }
        var cases: [Corruption] = []
        for cut in [
            4, 8, 8 + headerLength / 2, 8 + headerLength, 8 + headerLength + Int(first.output.2)!, valid.count - 1,
        ] {
            cases.append(Corruption(kind: .truncation, detail: "cut at byte \(cut)", bytes: Array(valid.prefix(cut))))
        }
        cases += [
            Corruption(kind: .hugeCount, detail: "header length 2^62", bytes: valid.settingU64(1 << 62, at: 0)),
            Corruption(
                kind: .hugeCount, detail: "header length past the end",
                bytes: valid.settingU64(UInt64(valid.count), at: 0)),
            Corruption(
                kind: .offsetPastEnd, detail: "last tensor's end past the data",
                bytes: rewritten(
                    replacing(
                        lastInData,
                        with:
                            "\"data_offsets\":[\(Int(lastInData.output.1)! + data.count),\(Int(lastInData.output.2)! + data.count)]"
                    ))),
            Corruption(
                kind: .overlap, detail: "second tensor over the first",
                bytes: rewritten(replacing(second, with: "\"data_offsets\":[\(first.output.1),\(first.output.2)]"))),
            Corruption(
                kind: .hugeCount, detail: "a shape of 2^40 x 2^40",
                bytes: rewritten {
                    $0.replacing(
                        #/"shape":\[[0-9,]*\]/#, with: "\"shape\":[1099511627776,1099511627776]", maxReplacements: 1)
                }),
            Corruption(
                kind: .wrongType, detail: "dtype Q9",
                bytes: rewritten {
                    $0.replacing(#/"dtype":"[A-Z0-9_]+"/#, with: "\"dtype\":\"Q9\"", maxReplacements: 1)
                }),
            Corruption(
                kind: .wrongType, detail: "shape given as a string",
                bytes: rewritten {
                    $0.replacing(#/"shape":\[[0-9,]*\]/#, with: "\"shape\":\"4x4\"", maxReplacements: 1)
                }),
            Corruption(
                kind: .invalidUTF8, detail: "0xFF inside the header",
                bytes: valid.setting(
                    0xFF,
                    at: 8
                        + header.utf8.distance(
                            from: header.utf8.startIndex,
                            to: header.firstRange(of: "model.")!.lowerBound) + 2)),
        ]
        return cases
    }

    /// From a valid lpack file holding a packed matrix named `packed`. Edits of the manifest recompute
    /// its checksum (and edits of a member, the member's), so each damage is found by the check that
    /// is meant to find it, not by the checksum in front of it.
    static func lpack(_ valid: [UInt8], packed: String) throws -> [Corruption] {
        let manifestLength = Int(valid.u64(at: 16))
        let padded = String(decoding: valid[32..<32 + manifestLength], as: UTF8.self)
        let manifest = String(padded.reversed().drop { $0 == " " }.reversed())
        /// The file with its manifest rewritten in the same region (spaces pad it) and re-hashed.
        func rewritten(_ edit: (String) -> String, bytes: [UInt8]? = nil) -> [UInt8] {
            rewrittenBytes({ _ in Array(edit(manifest).utf8) }, bytes: bytes)
        }
        func rewrittenBytes(_ edit: ([UInt8]) -> [UInt8], bytes: [UInt8]? = nil) -> [UInt8] {
            var text = edit(Array(manifest.utf8))
            precondition(text.count <= manifestLength, "the edited manifest must fit its region")
            text += [UInt8](repeating: 0x20, count: manifestLength - text.count)
            var copy = bytes ?? valid
            copy.replaceSubrange(32..<32 + manifestLength, with: text)
            return copy.settingU64(XXHash64.hash(text), at: 24)
        }
        let entry =
            #/\{"name":"([^"]+)","dtype":(?:"[^"]*"|\{[^}]*\}),"shape":\[[0-9,]*\],"offset":(\d+),"length":(\d+),"size":\d+,"compression":"[a-z]+","xxh64":"([0-9a-f]{16})"\}/#
        let entries = manifest.matches(of: entry)
        let target = try #require(entries.first { $0.output.1 == packed }, "the manifest lists \(packed)")
        let (first, second) = (entries[0], entries[1])
        func replacingOffset(
            of match: Regex<(Substring, Substring, Substring, Substring, Substring)>.Match, with value: String
        )
            -> (String) -> String
        {
            { text in
                let range = text.range(of: "\"offset\":\(match.output.2)", range: match.range)!
                return text.replacingCharacters(in: range, with: "\"offset\":\(value)")
            }
        }
        var cases: [Corruption] = []
        for cut in [
            8, 16, 24, 32, 32 + manifestLength / 2, 32 + manifestLength, Int(second.output.2)!, valid.count - 1,
        ] {
            cases.append(Corruption(kind: .truncation, detail: "cut at byte \(cut)", bytes: Array(valid.prefix(cut))))
        }
        // A NaN in the packed matrix's first row scale, with the member's checksum made to match.
        let targetOffset = Int(target.output.2)!
        let damaged = valid.settingU32(Float.nan.bitPattern, at: targetOffset)
        let memberHash = XXHash64.hex(
            XXHash64.hash(Array(damaged[targetOffset..<targetOffset + Int(target.output.3)!])))
        cases += [
            Corruption(kind: .hugeCount, detail: "manifest length 2^62", bytes: valid.settingU64(1 << 62, at: 16)),
            Corruption(
                kind: .offsetPastEnd, detail: "second member past the end",
                bytes: rewritten(replacingOffset(of: second, with: "\(valid.count + 64)"))),
            Corruption(
                kind: .overlap, detail: "second member over the first",
                bytes: rewritten(replacingOffset(of: second, with: String(first.output.2)))),
            Corruption(
                kind: .hugeCount, detail: "first member's length 2^60",
                bytes: rewritten {
                    $0.replacing(
                        "\"length\":\(first.output.3)", with: "\"length\":1152921504606846976", maxReplacements: 1)
                }),
            Corruption(
                kind: .wrongType, detail: "dtype Q9_Z",
                bytes: rewritten {
                    $0.replacing(#/"dtype":"[A-Z0-9_]+"/#, with: "\"dtype\":\"Q9_Z\"", maxReplacements: 1)
                }),
            Corruption(
                kind: .wrongType, detail: "compression lz4",
                bytes: rewritten {
                    $0.replacing("\"compression\":\"none\"", with: "\"compression\":\"lz4\"", maxReplacements: 1)
                }),
            Corruption(
                kind: .invalidUTF8, detail: "0xFF inside the manifest",
                bytes: rewrittenBytes {
                    $0.replacingFirst(Array("\"lpack\"".utf8), with: Array("\"lp".utf8) + [0xFF] + Array("ck\"".utf8))
                }),
            Corruption(
                kind: .nonFiniteScale, detail: "NaN row scale in \(packed)",
                bytes: rewritten({ $0.replacing(String(target.output.4), with: memberHash) }, bytes: damaged)),
            Corruption(
                kind: .checksum, detail: "a flipped byte in a member",
                bytes: valid.setting(valid[targetOffset + 40] ^ 0x10, at: targetOffset + 40)),
            Corruption(
                kind: .checksum, detail: "a flipped byte in the manifest",
                bytes: valid.setting(valid[40] ^ 0x01, at: 40)),
        ]
        return cases
    }

    /// Tar archives whose members try to leave the extraction directory; `marker` names the file each
    /// would create outside it.
    static func escapingArchives(marker: String) -> [Corruption] {
        [
            ("../\(marker)", "a member path with ..", UstarMember.file),
            ("/tmp/\(marker)", "an absolute member path", .file),
            ("model/../../\(marker)", "a path that climbs out through a directory", .file),
        ].map { path, detail, kind in
            Corruption(kind: .pathEscape, detail: detail, bytes: Ustar.archive([(path, kind, Array("escaped".utf8))]))
        } + [
            Corruption(
                kind: .pathEscape, detail: "a symlink out of the root, then a file through it",
                bytes: Ustar.archive([
                    ("link", .symlink("../.."), []), ("link/\(marker)", .file, Array("escaped".utf8)),
                ]))
        ]
    }
}

enum UstarMember {
    case file
    case symlink(String)
}

/// Raw ustar archives (POSIX.1-1988 headers), built byte by byte so that they can hold what Lathe's
/// own archive writer refuses to write.
enum Ustar {
    static func archive(_ members: [(path: String, kind: UstarMember, data: [UInt8])]) -> [UInt8] {
        var bytes: [UInt8] = []
        for member in members {
            var header = [UInt8](repeating: 0, count: 512)
            func put(_ text: String, at offset: Int) { for (i, b) in text.utf8.enumerated() { header[offset + i] = b } }
            func octal(_ value: Int, at offset: Int, width: Int) {
                put(
                    String(repeating: "0", count: width - 1 - String(value, radix: 8).count) + String(value, radix: 8),
                    at: offset)
            }
            put(member.path, at: 0)
            octal(0o644, at: 100, width: 8)
            octal(0, at: 108, width: 8)
            octal(0, at: 116, width: 8)
            octal(member.data.count, at: 124, width: 12)
            octal(0, at: 136, width: 12)
            switch member.kind {
            case .file: header[156] = UInt8(ascii: "0")
            case .symlink(let target):
                header[156] = UInt8(ascii: "2")
                put(target, at: 157)
            }
            put("ustar\u{0}00", at: 257)
            put("        ", at: 148)
            let sum = header.reduce(0) { $0 + Int($1) }
            put(
                String(repeating: "0", count: 6 - String(sum, radix: 8).count) + String(sum, radix: 8) + "\u{0} ",
                at: 148)
            bytes += header + member.data
            bytes += [UInt8](repeating: 0, count: (512 - member.data.count % 512) % 512)
        }
        return bytes + [UInt8](repeating: 0, count: 1024)
    }
}

extension Array where Element == UInt8 {
    /// The array with the first occurrence of `pattern` replaced (it must be there).
    func replacingFirst(_ pattern: [UInt8], with replacement: [UInt8]) -> [UInt8] {
        let start = (0...(count - pattern.count)).first { Array(self[$0..<$0 + pattern.count]) == pattern }!
        var copy = self
        copy.replaceSubrange(start..<start + pattern.count, with: replacement)
        return copy
    }
}
