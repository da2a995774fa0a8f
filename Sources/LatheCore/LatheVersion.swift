/// Lathe's version, shown by `lathe --version` and recorded in files Lathe writes.
public enum LatheVersion {
    public static let current = "0.1.0"
}
