/// Errors of the example program, with what to do about them.
enum ModelError: Error, CustomStringConvertible {
    case shape(String)
    case usage(String)
    case modelNotFound(String)

    var description: String {
        switch self {
        case .shape(let s): return "model shape: \(s)"
        case .usage(let s): return s
        case .modelNotFound(let s): return s
        }
    }
}
