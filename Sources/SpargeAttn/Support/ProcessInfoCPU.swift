import Foundation

/// CPU count, isolated here so the rest of the package needs no Foundation import.
enum ProcessInfoCPU {
    static var activeProcessorCount: Int { ProcessInfo.processInfo.activeProcessorCount }
}
