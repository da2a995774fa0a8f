import Compression
import Foundation
import LatheTestSupport
import Testing

/// A minimal ustar writer, independent of libarchive, for crafting hostile archives.
func tarBytes(_ members: [(name: String, type: UInt8, link: String, data: [UInt8])]) -> [UInt8] {
    var out: [UInt8] = []
    for member in members {
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ string: String, at offset: Int, width: Int) {
            for (i, byte) in string.utf8.prefix(width).enumerated() { header[offset + i] = byte }
        }
        func octal(_ value: Int, width: Int) -> String {
            let digits = String(value, radix: 8)
            return String(repeating: "0", count: width - 1 - digits.count) + digits
        }
        put(member.name, at: 0, width: 100)
        put(octal(0o644, width: 8), at: 100, width: 7)
        put(octal(0, width: 8), at: 108, width: 7)
        put(octal(0, width: 8), at: 116, width: 7)
        put(octal(member.data.count, width: 12), at: 124, width: 11)
        put(octal(0, width: 12), at: 136, width: 11)
        header[156] = member.type
        put(member.link, at: 157, width: 100)
        put("ustar", at: 257, width: 6)
        put("00", at: 263, width: 2)
        for i in 148..<156 { header[i] = 0x20 }
        let checksum = header.reduce(0) { $0 + Int($1) }
        put(octal(checksum, width: 7), at: 148, width: 6)
        out += header + member.data
        out += [UInt8](repeating: 0, count: (512 - member.data.count % 512) % 512)
    }
    return out + [UInt8](repeating: 0, count: 1024)
}

@Suite("Archives")
struct ArchiveTests {
    func makeTree(_ root: URL) throws {
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("model/sub"), withIntermediateDirectories: true)
        try Data("{\"hidden_size\": 576}".utf8).write(to: root.appendingPathComponent("model/config.json"))
        try Data((0..<70_000).map { UInt8(truncatingIfNeeded: $0 * 7) }).write(
            to: root.appendingPathComponent("model/sub/weights.bin"))
    }

    @Test("tar, tar.zst and zip round trips keep every file byte for byte", arguments: ArchiveFormat.allCases)
    func roundTrip(format: ArchiveFormat) throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("source")
        try makeTree(source)
        let archive = work.appendingPathComponent("bundle.\(format.rawValue)")
        try Archive.create(archive, format: format, fromDirectory: source)
        #expect(ArchiveFormat(fileName: archive.lastPathComponent) == format)

        let listed = try Archive.list(archive)
        #expect(listed.contains(ArchiveMember(path: "model/config.json", kind: .file, size: 20)))
        let out = work.appendingPathComponent("out")
        try Archive.extract(archive, to: out)
        for file in ["model/config.json", "model/sub/weights.bin"] {
            let original = try Data(contentsOf: source.appendingPathComponent(file))
            let restored = try Data(contentsOf: out.appendingPathComponent(file))
            #expect(original == restored, "\(file) differs after the \(format) round trip")
        }
    }

    @Test("a zip member whose CRC does not match its data is refused, naming the member")
    func damagedZipMember() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("source")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        // Incompressible bytes (a linear congruential stream), so deflate stores them as they are.
        var state: UInt32 = 12_345
        let payload = Data(
            (0..<4096).map { _ in
                state = state &* 1_664_525 &+ 1_013_904_223
                return UInt8(state >> 24)
            })
        try payload.write(to: source.appendingPathComponent("m.gguf"))
        let archive = work.appendingPathComponent("damaged.zip")
        try Archive.create(archive, format: .zip, fromDirectory: source)
        var bytes = [UInt8](try Data(contentsOf: archive))
        // The payload's bytes are stored or deflated; flip one inside the member's data either way.
        let data = try #require(bytes.firstRange(of: Array(payload.prefix(64))))
        bytes[data.lowerBound + 10] ^= 0x01
        try Data(bytes).write(to: archive)
        #expect {
            try Archive.extract(archive, to: work.appendingPathComponent("out"))
        } throws: { error in
            let message = (error as? CompressionError)?.errorDescription ?? ""
            return message.contains(archive.path) && message.contains("member 'm.gguf'") && message.contains("CRC")
        }
    }

    @Test("extraction skips the files `include` refuses, and names the member when one cannot be written")
    func selectiveExtraction() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("source")
        try makeTree(source)
        let archive = work.appendingPathComponent("bundle.tar")
        try Archive.create(archive, format: .tar, fromDirectory: source)
        let out = work.appendingPathComponent("out")
        let extracted = try Archive.extract(archive, to: out) { $0.hasSuffix(".json") }
        #expect(extracted.contains("model/config.json") && !extracted.contains("model/sub/weights.bin"))
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("model/config.json").path))
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("model/sub/weights.bin").path))
        // A hard link to a skipped file is skipped with it (its data was never written).
        let linked = work.appendingPathComponent("linked.tar")
        try Data(
            tarBytes([
                ("LICENSE.txt", UInt8(ascii: "0"), "", [1]), ("LICENSE", UInt8(ascii: "1"), "LICENSE.txt", []),
                ("m.json", UInt8(ascii: "0"), "", [2]),
            ])
        ).write(to: linked)
        #expect(
            try Archive.extract(linked, to: work.appendingPathComponent("linked")) { $0.hasSuffix(".json") } == [
                "m.json"
            ])
        // A file and then a directory below a file of the same name: the second cannot be made.
        let clash = work.appendingPathComponent("clash.tar")
        try Data(tarBytes([("m.gguf", UInt8(ascii: "0"), "", [1, 2]), ("m.gguf/x", UInt8(ascii: "0"), "", [3])]))
            .write(to: clash)
        #expect {
            try Archive.extract(clash, to: work.appendingPathComponent("scratch"))
        } throws: { error in
            let message = (error as? CompressionError)?.errorDescription ?? ""
            return message.hasPrefix(clash.path + ": member 'm.gguf/x': cannot extract it")
                && !message.contains(work.appendingPathComponent("scratch").path)
        }
    }

    @Test(
        "a wanted name that links to a skipped file brings that file (an HF cache's blobs); a repeated name takes the last data"
    )
    func linksToSkippedFiles() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let archive = work.appendingPathComponent("cache.tar")
        let (symbolic, hard) = (UInt8(ascii: "2"), UInt8(ascii: "1"))
        try Data(
            tarBytes([
                ("./blobs/aaa", UInt8(ascii: "0"), "", Array("weights".utf8)),
                ("blobs/bbb", UInt8(ascii: "0"), "", Array("config".utf8)),
                ("blobs/ccc", UInt8(ascii: "0"), "", Array("unwanted".utf8)),
                ("blobs/ddd", UInt8(ascii: "0"), "", Array("hard".utf8)),
                ("snap/main/model.gguf", symbolic, "../../blobs/aaa", []),
                // Through a chain of links, the last one named like a wanted file or not.
                ("snap/main/link", symbolic, "../../blobs/bbb", []),
                ("snap/main/config.json", symbolic, "link", []),
                ("snap/main/README", symbolic, "../../blobs/ccc", []),
                ("other.json", hard, "blobs/ddd", []),
                // A symbolic link and a hard link reaching a file through a skipped hard link.
                ("blobs/eee", UInt8(ascii: "0"), "", Array("chained".utf8)),
                ("blobs/fff", hard, "blobs/eee", []),
                ("via-symlink.gguf", symbolic, "blobs/fff", []),
                ("via-hard.json", hard, "blobs/fff", []),
                ("twice.json", UInt8(ascii: "0"), "", Array("first".utf8)),
                ("twice.json", UInt8(ascii: "0"), "", Array("second".utf8)),
            ])
        ).write(to: archive)
        let out = work.appendingPathComponent("out")
        let extracted = try Archive.extract(archive, to: out) { $0.hasSuffix(".gguf") || $0.hasSuffix(".json") }
        func read(_ path: String) throws -> String {
            try String(contentsOf: out.appendingPathComponent(path), encoding: .utf8)
        }
        #expect(try read("snap/main/model.gguf") == "weights")
        #expect(try read("snap/main/config.json") == "config")
        #expect(try read("other.json") == "hard")
        #expect(try read("twice.json") == "second")
        #expect(try read("via-symlink.gguf") == "chained" && read("via-hard.json") == "chained")
        // The file only an unwanted name reaches is still left out.
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("blobs/ccc").path))
        #expect(!extracted.contains("blobs/ccc") && extracted.contains("./blobs/aaa"))
        // A link of a file's name is refused as one line naming the member, not the scratch path.
        let clash = work.appendingPathComponent("clash.tar")
        try Data(tarBytes([("a.json", UInt8(ascii: "0"), "", [1]), ("a.json", symbolic, "b", [])])).write(to: clash)
        #expect {
            try Archive.extract(clash, to: work.appendingPathComponent("scratch-out"))
        } throws: { error in
            let message = (error as? CompressionError)?.errorDescription ?? ""
            return message.contains("member 'a.json': cannot make the link")
                && !message.contains("scratch-out")
        }
    }

    @Test("a FIFO is refused as not a regular file instead of waited on")
    func fifo() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let fifo = work.appendingPathComponent("pipe.tar")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        #expect(throws: CompressionError.archive(path: fifo.path, reason: "not a regular file")) {
            try Archive.list(fifo)
        }
    }

    @Test("a '../evil' member is refused and nothing is written outside the root")
    func refusesDotDot() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let archive = work.appendingPathComponent("evil.tar")
        try Data(tarBytes([("../evil", UInt8(ascii: "0"), "", Array("pwned".utf8))])).write(to: archive)
        let out = work.appendingPathComponent("out")
        #expect(
            throws: CompressionError.unsafeMember(
                archive: archive.path, member: "../evil", reason: "'..' component escapes the root")
        ) { try Archive.extract(archive, to: out) }
        #expect(!FileManager.default.fileExists(atPath: work.appendingPathComponent("evil").path))
    }

    @Test(
        "absolute paths and escaping links are refused",
        arguments: [
            ("ABSOLUTE", UInt8(ascii: "0"), ""),  // an absolute path into the test's directory, outside `out`
            ("link", UInt8(ascii: "2"), "../../etc/passwd"),
            ("dir/link", UInt8(ascii: "2"), "/etc/passwd"),
        ])
    func refusesEscapes(member: (String, UInt8, String)) throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let archive = work.appendingPathComponent("evil.tar")
        let escaped = work.appendingPathComponent("escaped")
        let name = member.0 == "ABSOLUTE" ? escaped.path : member.0
        try Data(tarBytes([(name, member.1, member.2, [])])).write(to: archive)
        #expect(throws: CompressionError.self) { try Archive.extract(archive, to: work.appendingPathComponent("out")) }
        #expect(!FileManager.default.fileExists(atPath: escaped.path))
    }

    @Test(
        "links that each stay inside cannot be chained out of the root",
        arguments: [
            // d/s is the root; d/s/t would be the root's parent; a file through it escapes.
            (
                "through a link",
                [("d/", "5", ""), ("d/s", "2", ".."), ("d/s/t", "2", ".."), ("d/s/t/escaped", "0", "")]
            ),
            // A target that walks through a link, even one that comes later in the archive.
            ("a target through a later link", [("a", "2", "d/s/../escaped"), ("d/", "5", ""), ("d/s", "2", "..")]),
            // A hard link to a symbolic link is the same link elsewhere: "../.." from the root escapes.
            (
                "a hard link to a link",
                [("a/", "5", ""), ("a/b/", "5", ""), ("a/b/l", "2", "../.."), ("l2", "1", "a/b/l")]
            ),
            ("a member over a link", [("x", "2", "."), ("x", "0", "")]),
            // "/" then a prepended mark is still a "/" to the file system: paths are cut at bytes.
            (
                "a component ending in U+0600",
                [
                    ("d/", "5", ""), ("d/s\u{600}", "2", ".."), ("d/s\u{600}/t\u{600}", "2", ".."),
                    ("d/s\u{600}/t\u{600}/escaped", "0", ""),
                ]
            ),
            // "./" is no directory level: "./x -> .." points at the root's parent.
            ("a dot component", [("./x", "2", ".."), ("./x/escaped", "0", "")]),
            // link(2) on a directory is refused, and FileManager would copy it, links and all.
            ("a hard link to a directory", [("a/", "5", ""), ("a/b/", "5", ""), ("x", "1", "a/b")]),
        ] as [(String, [(String, String, String)])])
    func refusesChainedLinks(label: String, members: [(String, String, String)]) throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let archive = work.appendingPathComponent("chain.tar")
        try Data(
            tarBytes(
                members.map { ($0.0, UInt8(ascii: Unicode.Scalar($0.1)!), $0.2, $0.1 == "0" ? Array("x".utf8) : []) })
        ).write(to: archive)
        let out = work.appendingPathComponent("root/out")
        #expect(throws: CompressionError.self, "\(label)") { try Archive.extract(archive, to: out) }
        #expect(throws: CompressionError.self, "\(label), listing") { try Archive.list(archive) }
        #expect(!FileManager.default.fileExists(atPath: work.appendingPathComponent("root/escaped").path))
        #expect(!FileManager.default.fileExists(atPath: work.appendingPathComponent("escaped").path))
    }

    @Test("a link that stays inside the root is extracted")
    func keepsInnerLink() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let archive = work.appendingPathComponent("ok.tar")
        try Data(
            tarBytes([
                ("a/file", UInt8(ascii: "0"), "", Array("hello".utf8)),
                ("a/b/link", UInt8(ascii: "2"), "../file", []),
            ])
        ).write(to: archive)
        let out = work.appendingPathComponent("out")
        try Archive.extract(archive, to: out)
        #expect(try String(contentsOf: out.appendingPathComponent("a/b/link"), encoding: .utf8) == "hello")
    }

    @Test("a file that is not an archive gives an error naming it")
    func notAnArchive() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let bogus = work.appendingPathComponent("bogus.tar")
        try Data(repeating: 0x41, count: 1000).write(to: bogus)
        #expect {
            try Archive.list(bogus)
        } throws: { error in
            (error as? CompressionError)?.errorDescription?.hasPrefix(bogus.path) == true
        }
    }
}
