import Foundation

/// The memory a command may plan to use: 3/4 of the machine's physical memory. Sizes taken
/// from options are checked against it before anything is allocated, so an oversized request
/// is a message (exit 2) instead of an abort inside the allocator.
enum MemoryLimit {
    static var bytes: Int { Int(min(ProcessInfo.processInfo.physicalMemory / 4 * 3, UInt64(Int.max))) }

    /// Throws unless `factors` multiplied (without overflow) stay within the limit.
    /// - Parameters:
    ///   - what: what needs the memory, e.g. "generate's q, k, v and file";
    ///   - options: the options that set the size, e.g. "--n, --d, --heads or --batch".
    static func check(_ factors: [Int], what: String, options: String) throws {
        var total = 1
        var overflow = false
        for f in factors {
            let (p, o) = total.multipliedReportingOverflow(by: max(f, 0))
            overflow = overflow || o
            total = p
        }
        guard overflow || total > bytes else { return }
        let need = overflow ? "more than \(Int.max)" : "\(total)"
        throw UsageError("\(what) would need \(need) bytes, more than the limit of \(bytes) bytes (3/4 of this machine's physical memory); lower \(options)")
    }
}
