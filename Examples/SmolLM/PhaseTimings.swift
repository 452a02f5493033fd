import Foundation

/// Wall-clock seconds per phase of a forward pass.
struct PhaseTimings {
    var attention = 0.0
    var projections = 0.0
    var rest = 0.0
    var total: Double { attention + projections + rest }

    static func now() -> Double { Date.timeIntervalSinceReferenceDate }

    /// Runs `body`, adding its duration to the phase at `keyPath`.
    @discardableResult
    mutating func measure<T>(_ phase: WritableKeyPath<PhaseTimings, Double>, _ body: () throws -> T) rethrows -> T {
        let t0 = Self.now()
        defer { self[keyPath: phase] += Self.now() - t0 }
        return try body()
    }

    var summary: String {
        String(format: "attention %.2f s (%.0f%%), projections %.2f s (%.0f%%), rest %.2f s (%.0f%%), total %.2f s",
               attention, 100 * attention / max(total, 1e-9), projections, 100 * projections / max(total, 1e-9),
               rest, 100 * rest / max(total, 1e-9), total)
    }
}

/// Progress and diagnostics go to stderr, results to stdout.
func progress(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}
