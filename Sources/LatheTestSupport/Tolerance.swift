/// Tolerance helpers shared by the test targets.
///
/// `isClose(a, b, relative:absolute:)` accepts `|a − b| ≤ max(absolute, relative · max(|a|, |b|))`:
/// symmetric, never transitive, and not a substitute for `==`.
public func isClose<T: BinaryFloatingPoint>(_ a: T, _ b: T, relative: T, absolute: T = 0) -> Bool {
    if a == b { return true }
    guard a.isFinite, b.isFinite else { return false }
    return abs(a - b) <= max(absolute, relative * max(abs(a), abs(b)))
}

/// max |a − b|, or NaN when either array holds a NaN, so that `maxDifference(a, b) < tolerance`
/// fails on one. (Swift's `max(x, y)` returns `x` when `y` is NaN, and `Sequence.max()` compares
/// with `<`, so a running maximum silently drops NaNs.)
public func maxDifference<T: BinaryFloatingPoint>(_ a: [T], _ b: [T]) -> T {
    precondition(a.count == b.count, "arrays differ in length")
    var worst: T = 0
    for i in a.indices {
        let difference = abs(a[i] - b[i])
        if difference.isNaN { return .nan }
        if difference > worst { worst = difference }
    }
    return worst
}

/// max |x|, or NaN when `values` holds a NaN.
public func maxMagnitude<T: BinaryFloatingPoint>(_ values: [T]) -> T {
    var largest: T = 0
    for value in values {
        if value.isNaN { return .nan }
        if abs(value) > largest { largest = abs(value) }
    }
    return largest
}

/// Frobenius-norm relative error ‖a − b‖ / ‖b‖.
public func relativeError<T: BinaryFloatingPoint>(_ a: [T], _ b: [T]) -> T {
    precondition(a.count == b.count, "arrays differ in length")
    var difference: T = 0
    var norm: T = 0
    for i in a.indices {
        difference += (a[i] - b[i]) * (a[i] - b[i])
        norm += b[i] * b[i]
    }
    return norm == 0 ? difference.squareRoot() : (difference / norm).squareRoot()
}
