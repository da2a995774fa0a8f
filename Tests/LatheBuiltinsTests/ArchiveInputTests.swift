import ArgumentParser
import Compression
import FormatGGUF
import Foundation
import LatheBuiltins
import LatheCore
import LatheRuntime
import LatheTestSupport
import Testing

@testable import LatheCLI

/// Models inside .tar, .tar.zst and .zip archives, and HF caches.
@Suite("Archived inputs")
struct ArchiveInputTests {
    @Test("archives: a model file or HF directory inside .tar, .tar.zst and .zip", arguments: ArchiveFormat.allCases)
    func archives(format: ArchiveFormat) throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let graph = try TinyModel.graph()
        let fileDir = work.appendingPathComponent("file")
        try FileManager.default.createDirectory(at: fileDir, withIntermediateDirectories: true)
        _ = try GGUFWriter().write(graph, to: fileDir.appendingPathComponent("tiny.gguf"), options: WriteOptions())
        let hfDir = work.appendingPathComponent("hf")
        _ = try LatheBuiltins.registry.writer("hf").write(graph, to: hfDir, options: WriteOptions())
        for (name, directory) in [("file", fileDir), ("hf", hfDir)] {
            let archive = work.appendingPathComponent("\(name).\(format.rawValue)")
            try Archive.create(archive, format: format, fromDirectory: directory)
            let opened = try ModelInput.open(archive)
            #expect(Set(opened.tensorNames) == Set(graph.tensorNames), "\(name) in \(format)")
            #expect(
                try TensorCodec.decode(opened.tensor(named: "model.norm.weight"))
                    == TensorCodec.decode(graph.tensor(named: "model.norm.weight")))
        }
        // An archive named otherwise is recognised enough to say how to name it.
        let renamed = work.appendingPathComponent("renamed-\(format.rawValue).bin")
        try FileManager.default.copyItem(at: work.appendingPathComponent("file.\(format.rawValue)"), to: renamed)
        let expected = format == .tarZstd ? "looks like a zstd stream" : "looks like a \(format.rawValue) archive"
        #expect {
            try ModelInput.open(renamed)
        } throws: { error in
            (error as? LatheError)?.errorDescription?.contains(expected) == true
        }
        // Two models in one archive is ambiguous.
        try FileManager.default.copyItem(
            at: fileDir.appendingPathComponent("tiny.gguf"), to: fileDir.appendingPathComponent("other.gguf"))
        let two = work.appendingPathComponent("two.\(format.rawValue)")
        try Archive.create(two, format: format, fromDirectory: fileDir)
        #expect(throws: LatheError.self) { try ModelInput.open(two) }
        // A damaged model inside: the message names the archive and the member, not the scratch
        // directory it was extracted to (gone by the time anyone reads it).
        let damaged = work.appendingPathComponent("damaged")
        try FileManager.default.createDirectory(at: damaged, withIntermediateDirectories: true)
        let bytes = try Data(contentsOf: fileDir.appendingPathComponent("tiny.gguf"))
        try bytes.prefix(bytes.count / 2).write(to: damaged.appendingPathComponent("half.gguf"))
        let archive = work.appendingPathComponent("damaged.\(format.rawValue)")
        try Archive.create(archive, format: format, fromDirectory: damaged)
        let error = #expect(throws: ArchivedModelError.self) { try ModelInput.open(archive) }
        #expect(error?.message.hasPrefix("\(archive.path)#half.gguf: ") == true, "\(String(describing: error))")
        #expect(error?.message.contains("lathe-archive-") == false, "\(String(describing: error))")
        #expect(error?.cause is GGUFError, "the reader's own error is kept for callers that match on it")
        // `check` of an archived lpack runs the lpack's own checks on the file inside.
        let packedDirectory = work.appendingPathComponent("packed")
        try FileManager.default.createDirectory(at: packedDirectory, withIntermediateDirectories: true)
        _ = try LatheBuiltins.registry.writer("lpack").write(
            graph, to: packedDirectory.appendingPathComponent("tiny.lpack"), options: WriteOptions())
        let packedArchive = work.appendingPathComponent("packed.\(format.rawValue)")
        try Archive.create(packedArchive, format: format, fromDirectory: packedDirectory)
        let report = try ModelIntegrity.check(packedArchive, values: false)
        #expect(report.path == packedArchive.path + "#tiny.lpack")
        #expect(report.format == "lpack" && report.checksummed == graph.tensors.count)
    }

    @Test("archives: an HF cache (snapshots/REV/* linked to blobs/SHA) opens as the snapshot's HF directory")
    func huggingFaceCacheArchive() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let graph = try TinyModel.graph()
        let hfDir = work.appendingPathComponent("hf")
        _ = try LatheBuiltins.registry.writer("hf").write(graph, to: hfDir, options: WriteOptions())
        // The hub's layout: blobs named by hash (no extension, so not extracted by their own name),
        // the snapshot's files symbolic links to them, refs/main naming the revision.
        let root = "models--org--tiny"
        var members: [(path: String, kind: UstarMember, data: [UInt8])] = [
            ("\(root)/refs/main", .file, Array("abc123".utf8))
        ]
        for (index, name) in try FileManager.default.contentsOfDirectory(atPath: hfDir.path).sorted().enumerated() {
            let blob = "\(root)/blobs/\(String(repeating: String(index), count: 8))"
            members.append((blob, .file, Array(try Data(contentsOf: hfDir.appendingPathComponent(name)))))
            members.append(("\(root)/snapshots/abc123/\(name)", .symlink("../../blobs/\(blob.suffix(8))"), []))
        }
        let archive = work.appendingPathComponent("cache.tar")
        try Data(Ustar.archive(members)).write(to: archive)
        let opened = try ModelInput.open(archive)
        #expect(Set(opened.tensorNames) == Set(graph.tensorNames))
        #expect(
            try TensorCodec.decode(opened.tensor(named: "model.norm.weight"))
                == TensorCodec.decode(graph.tensor(named: "model.norm.weight")))
        // `tar -cf model.tar folder/`: one model file in a folder, under a second name (a link) too.
        let file = Array(try Data(contentsOf: hfDir.appendingPathComponent("model.safetensors")))
        let nested = work.appendingPathComponent("nested.tar")
        try Data(
            Ustar.archive([
                ("top/model/m.safetensors", .file, file),
                ("top/model/alias.safetensors", .symlink("m.safetensors"), []),
            ])
        ).write(to: nested)
        #expect(Set(try ModelInput.open(nested).tensorNames) == Set(graph.tensorNames))
        // Two models at the shallowest level are named, sorted, relative to the archive.
        let two = work.appendingPathComponent("two.tar")
        try Data(Ustar.archive([("top/b.safetensors", .file, file), ("top/a.safetensors", .file, file)])).write(to: two)
        #expect {
            try ModelInput.open(two)
        } throws: { error in
            (error as? LatheError)?.errorDescription?.contains("2 models (top/a.safetensors, top/b.safetensors)")
                == true
        }
    }
}
