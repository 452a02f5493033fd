import Testing
@testable import SpargeAttn

/// `parallelPhases`: every item runs exactly once, and each phase's items see everything the
/// items of the phases before it wrote, on any number of workers (including more workers than
/// items, and phases with no items).
struct ParallelPhasesTests {
    @Test(arguments: [1, 2, 3, 8])
    func phasesRunInOrderAndEveryItemOnce(threads: Int) {
        let counts = [37, 0, 5, 64, 1]
        // Phase p item i writes value[p][i] = 1 + the sum of phase p-1's values (read whole).
        let values = UnsafeMutablePointer<Int>.allocate(capacity: counts.count * 64)
        values.initialize(repeating: 0, count: counts.count * 64)
        defer { values.deallocate() }
        let runs = UnsafeMutablePointer<Int>.allocate(capacity: counts.count * 64)
        runs.initialize(repeating: 0, count: counts.count * 64)
        defer { runs.deallocate() }
        let shared = UnsafeSendable((values, runs))
        parallelPhases(counts.count, items: { counts[$0] }, threads: threads) { _, phase, item in
            let (values, runs) = shared.value
            var previous = 0
            if phase > 0 { for j in 0..<counts[phase - 1] { previous += values[(phase - 1) * 64 + j] } }
            values[phase * 64 + item] = 1 + previous
            runs[phase * 64 + item] += 1
        }
        var expected = 0  // every value of a phase: 1 + the previous phase's total
        var total = 0
        for (p, n) in counts.enumerated() {
            expected = 1 + total
            for i in 0..<n {
                #expect(runs[p * 64 + i] == 1)
                #expect(values[p * 64 + i] == expected)
            }
            total = n * expected
        }
    }
}
