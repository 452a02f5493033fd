/// Wall-clock timing of a closure.
enum Timing {
    /// Seconds of one call of `body`.
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        try body()
        let elapsed = clock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }

    /// The median of `samples` (the mean of the middle two for an even count).
    static func median(_ samples: [Double]) -> Double {
        let s = samples.sorted()
        if s.isEmpty { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// Which build this is: the `Tuned` trait compiles the kernels for x86-64-v3.
enum BuildInfo {
    #if Tuned
    static let name = "tuned"
    static let detail = "tuned (--traits Tuned: x86-64-v3, AVX2 + FMA)"
    #else
    static let name = "portable"
    static let detail = "portable (baseline ISA; build with --traits Tuned for AVX2 + FMA)"
    #endif
    #if DEBUG
    static let configuration = "debug"
    #else
    static let configuration = "release"
    #endif
}
