import SpargeAttn

/// Which CPU kernel set runs (chosen at run time, see `SpargeCPU`) and the build configuration.
enum BuildInfo {
    /// The CPU kernel level that runs (or the reason none can: a bad SPARGE_ISA).
    static var name: String { (try? SpargeCPU.currentLevel().rawValue) ?? "invalid SPARGE_ISA" }
    /// The running kernel level, how it was chosen, and what else this machine offers.
    static var detail: String {
        let supported = SpargeCPU.supportedLevels.map(\.rawValue).joined(separator: ", ")
        let cpu = SpargeCPU.processorName.isEmpty ? "" : " on \(SpargeCPU.processorName)"
        guard let level = try? SpargeCPU.currentLevel() else {
            return "CPU kernels: SPARGE_ISA names a level this build and processor lack (available: \(supported))\(cpu)"
        }
        let how = level == SpargeCPU.bestLevel ? "best available" : "forced lower, best is \(SpargeCPU.bestLevel.rawValue)"
        return "CPU kernels \(level) [\(how); available: \(supported)]\(cpu)"
    }
    #if DEBUG
    static let configuration = "debug"
    #else
    static let configuration = "release"
    #endif
}
