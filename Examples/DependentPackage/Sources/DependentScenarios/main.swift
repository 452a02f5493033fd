import Foundation
import SpargeAttn

// The four scenarios of an application embedding SpargeAttn, each checked against exact
// attention, after a check that the default trait reached this package; the process exits 1
// when one fails.
let scenarios: [(String, () throws -> String)] = [
    ("(0) default trait DispatchedKernels", dispatchedKernels),
    ("(a) fused fp16 QKV prefill through a plan", fusedPrefill),
    ("(b) 64 KV-cache decode steps", decode),
    ("(c) ViT tokens: CLS + 32x32 grid in Hilbert order", visionTokens),
    ("(d) variable-length batch of 3 sequences", variableLength),
]
// SCENARIOS=ab runs only (a) and (b).
let only = ProcessInfo.processInfo.environment["SCENARIOS"]
var failed = 0
for (name, run) in scenarios where only.map({ $0.contains(name.dropFirst().prefix(1)) }) ?? true {
    let clock = ContinuousClock(), started = clock.now
    do {
        let report = try run()
        print("ok   \(name): \(report) [\(clock.now - started)]")
    } catch {
        failed += 1
        print("FAIL \(name): \(error)")
    }
}
print(failed == 0 ? "all \(scenarios.count) scenarios passed" : "\(failed) of \(scenarios.count) scenarios failed")
exit(failed == 0 ? 0 : 1)
