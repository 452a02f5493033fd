import Foundation

/// Seconds per phase of a forward pass: wall clock, and the CPU time of the whole process
/// (all threads), which other tenants of a shared machine disturb much less than the wall clock.
struct PhaseTimings {
    var attention = 0.0
    var projections = 0.0
    var rest = 0.0
    var attentionCPU = 0.0
    var projectionsCPU = 0.0
    var restCPU = 0.0
    var total: Double { attention + projections + rest }
    var totalCPU: Double { attentionCPU + projectionsCPU + restCPU }

    static func now() -> Double { Date.timeIntervalSinceReferenceDate }

    static func cpuNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    enum Phase { case attention, projections, rest }

    /// Runs `body`, adding its wall and CPU time to `phase`.
    @discardableResult
    mutating func measure<T>(_ phase: Phase, _ body: () throws -> T) rethrows -> T {
        let t0 = Self.now(), c0 = Self.cpuNow()
        defer {
            let wall = Self.now() - t0, cpu = Self.cpuNow() - c0
            switch phase {
            case .attention: attention += wall; attentionCPU += cpu
            case .projections: projections += wall; projectionsCPU += cpu
            case .rest: rest += wall; restCPU += cpu
            }
        }
        return try body()
    }

    var summary: String {
        func pct(_ x: Double, _ t: Double) -> Double { 100 * x / max(t, 1e-9) }
        return String(format: "wall: attention %.2f s (%.0f%%), projections %.2f s (%.0f%%), rest %.2f s, total %.2f s; "
                      + "CPU: attention %.2f s (%.0f%%), projections %.2f s, rest %.2f s, total %.2f s",
                      attention, pct(attention, total), projections, pct(projections, total), rest, total,
                      attentionCPU, pct(attentionCPU, totalCPU), projectionsCPU, restCPU, totalCPU)
    }
}

/// Progress and diagnostics go to stderr, results to stdout.
func progress(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}
