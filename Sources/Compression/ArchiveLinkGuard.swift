/// Keeps an archive's links from carrying a path out of the root by chaining: a link checked alone
/// can stay inside (`d/s -> ..`) and still let a later member escape through it (`d/s/t -> ..`
/// resolves to the root's parent). So no member is written through a symbolic link, no link's target
/// passes through one (only its last component may name another link, itself checked), and a hard
/// link may only name a regular file earlier in the archive (linking a directory copies its links
/// elsewhere). Checked per member while reading, before anything of it is written, and over all the
/// links at the end, since a link may name one that comes later; `Archive.extract` creates the
/// symbolic links only after that last check.
///
/// Paths are cut at "/" bytes, as the file system cuts them: cut by characters, "s\u{600}/t" (a
/// prepended mark) would read as one component.
struct ArchiveLinkGuard {
    let archive: String
    private var symbolicLinks: [String: String] = [:]
    private var files: Set<String> = []
    private var members: [String] = []

    init(archive: String) { self.archive = archive }

    /// Call before anything of `member` is written.
    mutating func admit(_ member: ArchiveMember) throws {
        let path = Self.components(member.path)
        let joined = path.joined(separator: "/")
        try requireNoLink(Self.directories(of: path), member: member.path)
        // Writing over a link would write where it points.
        try requireNoLink([joined], member: member.path, "would replace the symbolic link")
        switch member.kind {
        case .symbolicLink(let target):
            try requireNoLink(
                try resolve(target, from: path.dropLast(), member: member.path).dropLast(), member: member.path)
            symbolicLinks[joined] = target
        case .hardLink(let target):
            let source = Self.components(target).joined(separator: "/")
            guard files.contains(source) else {
                throw CompressionError.unsafeMember(
                    archive: archive, member: member.path,
                    reason: "hard link to '\(target)', which is not a regular file earlier in the archive")
            }
            files.insert(joined)
        case .file: files.insert(joined)
        case .directory: break
        }
        members.append(member.path)
    }

    /// Call after the last member: every path and link target against every link.
    func finish() throws {
        for member in members { try requireNoLink(Self.directories(of: Self.components(member)), member: member) }
        for (link, target) in symbolicLinks.sorted(by: { $0.key < $1.key }) {
            try requireNoLink(
                try resolve(target, from: Self.components(link).dropLast(), member: link).dropLast(), member: link)
        }
    }

    /// The root-relative directories `target` walks through from `directory`, last the target
    /// itself; a walk above the root is refused ("." and empty components are no level: "./x" is at
    /// the root).
    private func resolve(_ target: String, from directory: ArraySlice<String>, member: String) throws -> [String] {
        guard let walked = Self.walk(target, from: directory) else {
            throw CompressionError.unsafeMember(
                archive: archive, member: member,
                reason: "link target '\(target)' escapes the root (archive the files links point to: tar --dereference)"
            )
        }
        return walked
    }

    /// The root-relative directories `target` walks through from `directory`, last the target
    /// itself; nil when it climbs above the root.
    private static func walk(_ target: String, from directory: ArraySlice<String>) -> [String]? {
        var stack = Array(directory)
        var walked: [String] = []
        for component in components(target) {
            if component.utf8.elementsEqual("..".utf8) {
                guard !stack.isEmpty else { return nil }
                stack.removeLast()
            } else {
                stack.append(component)
            }
            walked.append(stack.joined(separator: "/"))
        }
        return walked
    }

    /// Fails when one of `paths` (root-relative directories on the way) is a link.
    private func requireNoLink(
        _ paths: some Sequence<String>, member: String, _ problem: String = "passes through the symbolic link"
    ) throws {
        for path in paths where symbolicLinks[path] != nil {
            throw CompressionError.unsafeMember(archive: archive, member: member, reason: "\(problem) '\(path)'")
        }
    }

    /// The directories above a path: "a", "a/b" for "a/b/c".
    private static func directories(of components: [String]) -> [String] {
        components.indices.dropLast().map { components[...$0].joined(separator: "/") }
    }

    /// A member path as the file system reaches it: "./a//b" is "a/b".
    static func normalized(_ path: String) -> String { components(path).joined(separator: "/") }

    /// The root-relative path a symbolic link at `link` reaches with `target`; nil above the root.
    static func resolve(_ target: String, from link: String) -> String? {
        let directory = components(link).dropLast()
        return walk(target, from: directory).map { $0.last ?? directory.joined(separator: "/") }
    }

    /// A path's components cut at "/" bytes, without empty and "." ones.
    static func components(_ path: String) -> [String] {
        path.utf8.split(separator: UInt8(ascii: "/")).compactMap { bytes in
            bytes.elementsEqual(".".utf8) ? nil : String(Substring(bytes))
        }
    }
}
