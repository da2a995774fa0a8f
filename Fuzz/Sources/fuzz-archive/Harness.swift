import Compression
import Foundation
import FuzzSupport
import LatheCore

/// Seeds: a small HF-like directory (a model file, a JSON file, a nested file) as tar, tar.zst and zip.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: FuzzArgc, _ argv: FuzzArgv) -> CInt {
    Seeds.initialize(argc, argv, harness: "fuzz-archive") {
        let source = FuzzFile.directory.appendingPathComponent("seed-source")
        defer { try? FileManager.default.removeItem(at: source) }
        try FileManager.default.createDirectory(
            at: source.appendingPathComponent("nested"), withIntermediateDirectories: true)
        try Data("{\"model_type\": \"llama\"}".utf8).write(to: source.appendingPathComponent("config.json"))
        try Data(repeating: 7, count: 300).write(to: source.appendingPathComponent("nested/model.bin"))
        return try ArchiveFormat.allCases.map { format in
            try Seeds.written("seed.\(format.rawValue)") {
                try Archive.create($0, format: format, fromDirectory: source)
            }
        }
    }
}

/// One archive per input: listed, then extracted into an empty directory, which must afterwards hold
/// nothing outside itself (checked by extracting into a directory nested two levels deep).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzArchive(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzFile.withFile(data, size, name: "input.archive") { url in
        _ = try? Archive.list(url)
        let outer = FuzzFile.directory.appendingPathComponent("outer")
        let destination = outer.appendingPathComponent("inner/root")
        defer { try? FileManager.default.removeItem(at: outer) }
        _ = try? Archive.extract(url, to: destination)
        let escaped = (try? FileManager.default.contentsOfDirectory(atPath: outer.path))?.filter { $0 != "inner" }
        let escapedInner =
            (try? FileManager.default.contentsOfDirectory(
                atPath: outer.appendingPathComponent("inner").path))?.filter { $0 != "root" }
        if !(escaped ?? []).isEmpty || !(escapedInner ?? []).isEmpty {
            fatalError("fuzz-archive: extraction wrote outside its destination: \(escaped ?? []) \(escapedInner ?? [])")
        }
    }
    return 0
}
