import Foundation
import SpargeAttn
import SpargeFormats

// `sparge bench --decode`, second table: a sliding-window layer decoding at a long position,
// in a cache that holds every key against one of a fixed capacity that discards the key blocks
// no later call can see. Same appends, same queries, interleaved step by step.

extension BenchCommand {
    /// Rows for 32k and 128k keys: B=1 H=32 Hkv=8 D=128, window 4096, one query per step.
    func windowDecodeRows(threads: Int) throws -> JSONValue {
        let heads = 32, kvHeads = 8, d = 128, window = 4096, steps = quick ? 200 : 2000
        var p = SpargeParameters.recommended
        p.causal = true
        p.slidingWindow = window
        let windowed = window + p.blockK + 1024     // room for 1,024 tokens between discards
        say("\nsliding window \(window): B=1 H=\(heads) Hkv=\(kvHeads) D=\(d), one query per step; \(threads) threads")
        say("every key held (capacity = keys) against a fixed capacity of \(windowed) that discards the blocks no call sees;")
        say("\(steps) steps each after a warm-up, interleaved (append + sparse attend); a discard every 1,024 steps or so\n")
        let header: [(String, Int)] = [("keys", 7), ("held MiB", 8), ("step ms", 8), ("fixed MiB", 9), ("step ms", 8), ("discard ms", 10),
                                       ("worst ms", 8), ("discards", 8), ("max |diff|", 10)]
        say(header.map { DemoCommand.pad($0.0, $0.1) }.joined(separator: " "))
        say(header.map { String(repeating: "-", count: abs($0.1)) }.joined(separator: " "))
        var rows: [JSONValue] = []
        for n in [32768, 131072] {
            var draws = DecodeUniforms()
            func uniforms(_ count: Int) -> [Float] { draws.next(count) }
            let full = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: n + steps + 1, maxQueryLength: 1,
                                         parameters: p, threads: threads)
            let fixed = try SpargeKVCache(heads: heads, kvHeads: kvHeads, headDim: d, capacity: windowed, maxQueryLength: 1,
                                          parameters: p, threads: threads)
            // The prompt, in chunks the fixed cache can take (the first one sets both K means).
            let chunk = 1024
            var at = 0
            while at < n {
                let t = min(chunk, n - at)
                let k = uniforms(kvHeads * t * d), v = uniforms(kvHeads * t * d)
                for cache in [full, fixed] { try cache.append(k: k, v: v, tokens: t) }
                at += t
            }
            var fullTimes: [Double] = [], fixedTimes: [Double] = [], discardTimes: [Double] = [], maxDiff: Float = 0
            var a = [Float](repeating: 0, count: heads * d), b = a
            for step in 0...steps {
                let q = uniforms(heads * d), kt = uniforms(kvHeads * d), vt = uniforms(kvHeads * d)
                fullTimes.append(try Timing.seconds {
                    try full.append(k: kt, v: vt, tokens: 1)
                    try full.attend(q: q, output: &a, queries: 1)
                })
                let first = fixed.firstHeldKey
                fixedTimes.append(try Timing.seconds {
                    try fixed.append(k: kt, v: vt, tokens: 1)
                    try fixed.attend(q: q, output: &b, queries: 1)
                })
                if step == 0 { fullTimes = []; fixedTimes = []; continue }   // warm-up
                if fixed.firstHeldKey != first { discardTimes.append(fixedTimes.last ?? 0) }
                maxDiff = zip(a, b).reduce(maxDiff) { max($0, abs($1.0 - $1.1)) }
            }
            let mib = { (keys: Int) in Double(keys * kvHeads * d * 4 * 2) / Double(1 << 20) }   // fp32 K and V rows
            let row: [(String, Int)] = [
                ("\(n / 1024)k", 7), (String(format: "%.0f", mib(n + steps + 1)), 8),
                (String(format: "%.3f", Timing.median(fullTimes) * 1e3), 8), (String(format: "%.0f", mib(windowed)), 9),
                (String(format: "%.3f", Timing.median(fixedTimes) * 1e3), 8),
                (String(format: "%.2f", (discardTimes.max() ?? 0) * 1e3), 10),
                (String(format: "%.2f", (fixedTimes.max() ?? 0) * 1e3), 8), ("\(discardTimes.count)", 8), (String(format: "%.1e", maxDiff), 10),
            ]
            say(row.map { DemoCommand.pad($0.0, $0.1) }.joined(separator: " "))
            rows.append(.object([
                ("keys", .int(n)), ("window", .int(window)), ("steps", .int(steps)), ("fixed_capacity", .int(windowed)),
                ("full_step_seconds", .finite(Timing.median(fullTimes))), ("fixed_step_seconds", .finite(Timing.median(fixedTimes))),
                ("fixed_worst_step_seconds", .finite(fixedTimes.max() ?? 0)),
                ("fixed_slowest_discard_step_seconds", .finite(discardTimes.max() ?? 0)), ("discards", .int(discardTimes.count)),
                ("max_abs_difference", .finite(Double(maxDiff))),
            ]))
        }
        say("""

            held / fixed MiB: the fp32 key and value rows each cache keeps; step ms: median of one token's
            append and sparse attend; discard ms: the fixed cache's slowest step that discarded (the move
            of the held keys and their prepared blocks); worst ms: its slowest step; max |diff|: largest output
            difference between the two caches over every step (the same maps: 0 or rounding).
            """)
        return .array(rows)
    }
}
