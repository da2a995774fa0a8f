/// Keeps an archive's links from carrying a path out of the root by chaining: a link checked alone
/// can stay inside (`d/s -> ..`) and still let a later member escape through it (`d/s/t -> ..`
/// resolves to the root's parent). So no member is written through a symbolic link, and no link's
/// target passes through one; only a link's last component may name another link, which is itself
/// checked. Checked per member while reading (before anything of it is written) and over all the
/// links at the end, since a link may name one that comes later in the archive.
struct ArchiveLinkGuard {
    let archive: String
    private var symbolicLinks: [String: String] = [:]
    private var members: [String] = []

    init(archive: String) { self.archive = archive }

    /// Call before anything of `member` is written.
    mutating func admit(_ member: ArchiveMember) throws {
        let path = Self.components(member.path)
        try requireNoLink(Self.directories(of: path), member: member.path)
        // Writing over a link would write where it points.
        try requireNoLink([path.joined(separator: "/")], member: member.path, "would replace the symbolic link")
        switch member.kind {
        case .symbolicLink(let target):
            try requireNoLink(resolve(target, from: path.dropLast()).dropLast(), member: member.path)
            symbolicLinks[path.joined(separator: "/")] = target
        case .hardLink(let target):
            // All of the target: a hard link to a symbolic link is a copy of it elsewhere, where its
            // relative target means something else.
            let components = Self.components(target)
            try requireNoLink(Self.directories(of: components), member: member.path)
            try requireNoLink(
                [components.joined(separator: "/")], member: member.path, "is a hard link to the symbolic link")
        case .file, .directory: break
        }
        members.append(member.path)
    }

    /// Call after the last member: every path and link target against every link.
    func finish() throws {
        for member in members { try requireNoLink(Self.directories(of: Self.components(member)), member: member) }
        for (link, target) in symbolicLinks.sorted(by: { $0.key < $1.key }) {
            try requireNoLink(resolve(target, from: Self.components(link).dropLast()).dropLast(), member: link)
        }
    }

    /// The root-relative directories `target` walks through from `directory`, last the target
    /// itself (its `..` already refused past the root by `Archive.validate(link:)`).
    private func resolve(_ target: String, from directory: ArraySlice<String>) -> [String] {
        var stack = Array(directory)
        var walked: [String] = []
        for component in target.split(separator: "/") where component != "." {
            if component == ".." {
                if !stack.isEmpty { stack.removeLast() }
            } else {
                stack.append(String(component))
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

    private static func components(_ path: String) -> [String] {
        path.split(separator: "/").filter { $0 != "." }.map(String.init)
    }
}
