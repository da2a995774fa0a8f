import Foundation
import LatheCore

/// Collects the warnings reported through its `diagnostics`, for tests that check what was said.
/// `@unchecked Sendable`: the list is only touched under the lock.
public final class WarningLog: @unchecked Sendable {
    private let lock = NSLock()
    private var collected: [String] = []

    public init() {}

    public var messages: [String] { lock.withLock { collected } }

    public var diagnostics: Diagnostics {
        Diagnostics { event in
            if event.severity == .warning { self.lock.withLock { self.collected.append(event.message) } }
        }
    }
}
