import Foundation
import LatheCore

/// libFuzzer's `LLVMFuzzerInitialize` arguments.
public typealias FuzzArgc = UnsafeMutablePointer<CInt>
public typealias FuzzArgv = UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>

/// Seed corpora: each harness writes its seeds into the corpus directory it is given when that
/// directory is empty, from Lathe's own writers, so every run starts from valid files of each kind.
public enum Seeds {
    /// Writes `make()`'s seeds into the first corpus directory on the command line when it is empty
    /// (the first argument not starting with "-"); a failure to make them stops the harness.
    public static func initialize(
        _ argc: FuzzArgc, _ argv: FuzzArgv, harness: String, _ make: () throws -> [(name: String, bytes: [UInt8])]
    ) -> CInt {
        guard let corpus = emptyCorpus(argc, argv) else { return 0 }
        do {
            let seeds = try make()
            for seed in seeds {
                seed.bytes.withUnsafeBytes { FuzzFile.write($0, to: corpus.appendingPathComponent(seed.name)) }
            }
            FileHandle.standardError.write(Data("\(harness): wrote \(seeds.count) seed files to \(corpus.path)\n".utf8))
        } catch {
            fatalError("\(harness): cannot write seeds: \(error)")
        }
        return 0
    }

    /// A seed written by one of Lathe's writers: `write` is given a path, the seed is the file's bytes.
    public static func written(_ name: String, _ write: (URL) throws -> Void) throws -> (name: String, bytes: [UInt8]) {
        let url = FuzzFile.directory.appendingPathComponent("seed-\(name)")
        defer { try? FileManager.default.removeItem(at: url) }
        try write(url)
        return (name, [UInt8](try Data(contentsOf: url)))
    }

    static func emptyCorpus(_ argc: FuzzArgc, _ argv: FuzzArgv) -> URL? {
        guard let arguments = argv.pointee else { return nil }
        for index in 1..<Int(argc.pointee) {
            guard let pointer = arguments[index] else { continue }
            let argument = String(cString: pointer)
            guard !argument.hasPrefix("-") else { continue }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory), isDirectory.boolValue,
                (try? FileManager.default.contentsOfDirectory(atPath: argument))?.isEmpty == true
            else { return nil }
            return URL(fileURLWithPath: argument)
        }
        return nil
    }
}
