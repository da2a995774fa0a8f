import Foundation

/// Errors from the LAPACK-backed routines and the Hadamard constructions.
public enum LinearAlgebraError: Error, Equatable, LocalizedError {
    /// A matrix had the wrong shape for the routine.
    case shapeMismatch(routine: String, detail: String)
    /// LAPACK rejected argument number `argument` (a negative `info`): a bug in the caller.
    case illegalArgument(routine: String, argument: Int)
    /// The algorithm did not converge (a positive `info`).
    case didNotConverge(routine: String, info: Int)
    /// No Hadamard matrix of this order is known to the library.
    case unsupportedHadamardOrder(Int, supportedBases: [Int])

    public var errorDescription: String? {
        switch self {
        case .shapeMismatch(let routine, let detail):
            return "\(routine): \(detail)"
        case .illegalArgument(let routine, let argument):
            return "\(routine): LAPACK rejected argument \(argument); this is a bug in Lathe, please report it"
        case .didNotConverge(let routine, let info):
            return "\(routine) did not converge (info = \(info)); check the input for NaN or Inf values"
        case .unsupportedHadamardOrder(let order, let bases):
            let list = bases.map(String.init).joined(separator: ", ")
            return
                "no Hadamard matrix of order \(order): the order must be K·2^m with K in {\(list)}; pad the dimension or use a dense random rotation"
        }
    }
}

/// Maps a LAPACK `info` code to an error.
func checkLAPACK(_ info: Int32, routine: String) throws(LinearAlgebraError) {
    if info < 0 { throw .illegalArgument(routine: routine, argument: Int(-info)) }
    if info > 0 { throw .didNotConverge(routine: routine, info: Int(info)) }
}
