import Foundation
import SpargeAttn
import SpargeFormats
import SpargeTuning
import SpargeGGUF

/// The commands that run the model.
struct Commands {
    let model: LlamaModel
    let tokenizer: BPETokenizer
    let args: Arguments

    static func info(_ gguf: GGUFFile) throws {
        print("GGUF v\(gguf.version), \(gguf.tensors.count) tensors, alignment \(gguf.alignment), data at byte \(gguf.dataOffset)")
        var types: [String: Int] = [:]
        for t in gguf.tensors { types[t.type.description, default: 0] += 1 }
        print("tensor types: " + types.sorted { $0.key < $1.key }.map { "\($0.key) x\($0.value)" }.joined(separator: ", "))
        for key in gguf.metadata.keys.sorted() {
            let v = gguf.metadata[key]!
            switch v {
            case .strings(let s): print("\(key): [\(s.count) strings]")
            case .numbers(let n): print("\(key): [\(n.count) numbers]")
            case .string(let s): print("\(key): \(s.count > 80 ? String(s.prefix(80)) + "..." : s)")
            default: print("\(key): \(v)")
            }
        }
    }

    /// The first `count` tokens of the files named by `--text` (comma-separated, joined).
    func textTokens(count: Int) throws -> [Int] {
        guard let spec = args.string("text") else { throw ModelError.usage("this command needs --text FILE") }
        var text = ""
        for path in spec.split(separator: ",") {
            guard let s = try? String(contentsOfFile: String(path), encoding: .utf8) else {
                throw ModelError.usage("--text: cannot read '\(path)' as UTF-8 text")
            }
            text += text.isEmpty ? s : "\n\n" + s
        }
        let ids = tokenizer.encode(text, special: false)
        guard ids.count >= count else {
            throw ModelError.usage("--text has \(ids.count) tokens, fewer than the \(count) asked for; add files with --text A,B")
        }
        return Array(ids.prefix(count))
    }

    /// `--attention MODE` (default exact), with Q smoothing when `--smooth-q` is given and
    /// fixed-point P.V when `--fixed-point-pv` is.
    func attentionMode() throws -> AttentionMode {
        try AttentionMode.parse(args.string("attention") ?? "exact").with(smoothQ: args.flag("smooth-q"), fixedPointPV: args.flag("fixed-point-pv"))
    }

    func perplexity() throws {
        let context = try args.int("context", default: 2048)
        let mode = try attentionMode()
        let tokens = try textTokens(count: context)
        progress("perplexity: \(context) tokens, attention \(mode.name)")
        var report = LlamaModel.PrefillReport()
        let t0 = PhaseTimings.now()
        let h = try model.prefill(tokens, attention: mode, report: &report)
        let prefillSeconds = PhaseTimings.now() - t0
        progress("prefill: " + report.timings.summary)
        // --kl: the exact model's hidden states too, for the mean KL(exact || this mode) per
        // token: a far less noisy measure of what the mode changes than a perplexity difference.
        let exactHidden = args.flag("kl") ? try exactStates(tokens) : nil
        // Loss over positions 0..<N-1 predicting tokens 1..<N, the logits a chunk at a time.
        let vocab = model.config.vocab, chunk = 256
        var logits = [Float](repeating: 0, count: chunk * vocab)
        var exactLogits = [Float](repeating: 0, count: exactHidden == nil ? 0 : chunk * vocab)
        var nll = 0.0, correct = 0, kl = 0.0
        let t1 = PhaseTimings.now()
        for start in stride(from: 0, to: context - 1, by: chunk) {
            let rows = start..<min(context - 1, start + chunk)
            model.logits(h, rows: rows, into: &logits)
            if let exactHidden { model.logits(exactHidden, rows: rows, into: &exactLogits) }
            for (r, pos) in rows.enumerated() {
                let row = (r * vocab)..<((r + 1) * vocab)
                let (logProb, argmax) = logits.withUnsafeBufferPointer {
                    Self.logSoftmax(UnsafeBufferPointer(rebasing: $0[row]), target: tokens[pos + 1])
                }
                nll -= logProb
                if argmax == tokens[pos + 1] { correct += 1 }
                if exactHidden != nil {
                    kl += exactLogits.withUnsafeBufferPointer { e in
                        logits.withUnsafeBufferPointer { x in
                            Self.divergence(UnsafeBufferPointer(rebasing: e[row]), UnsafeBufferPointer(rebasing: x[row]))
                        }
                    }
                }
            }
        }
        let lossSeconds = PhaseTimings.now() - t1
        let predictions = Double(context - 1)
        let ppl = exp(nll / predictions)
        let density = report.density.reduce(0, +) / Double(max(report.density.count, 1))
        progress(String(format: "lm head + loss: %.2f s", lossSeconds))
        let t = report.timings
        if args.flag("json") {
            let klField = exactHidden == nil ? "" : String(format: #", "kl_vs_exact": %.6f"#, kl / predictions)
            print(String(format: #"{"context": %d, "attention": "%@", "perplexity": %.4f, "accuracy": %.4f, "density": %.4f, "prefill_s": %.3f, "attention_s": %.3f, "projections_s": %.3f, "rest_s": %.3f, "prefill_cpu_s": %.3f, "attention_cpu_s": %.3f, "threads": %d%@}"#,
                         context, mode.name, ppl, Double(correct) / predictions, density, prefillSeconds,
                         t.attention, t.projections, t.rest, t.totalCPU, t.attentionCPU, model.threads, klField))
        } else {
            print(String(format: "context %d  attention %@  perplexity %.4f  next-token accuracy %.4f  density %.3f  prefill %.2f s wall (attention %.0f%%), %.2f s CPU (attention %.0f%%)",
                         context, mode.name, ppl, Double(correct) / predictions, density, prefillSeconds,
                         100 * t.attention / max(t.total, 1e-9), t.totalCPU, 100 * t.attentionCPU / max(t.totalCPU, 1e-9)))
            print("density per layer: " + report.density.map { String(format: "%.2f", $0) }.joined(separator: " "))
            if exactHidden != nil { print(String(format: "kl vs exact: %.6f nats per token", kl / predictions)) }
        }
    }

    /// The exact model's final hidden states of `tokens`, from `--exact-hidden FILE` when it
    /// holds them (else computed, and saved there when named).
    func exactStates(_ tokens: [Int]) throws -> [Float] {
        let path = args.string("exact-hidden"), dim = model.config.hidden
        if let path, let cached = try ExactHiddenCache.load(path: path, tokens: tokens, dim: dim) { return cached }
        var report = LlamaModel.PrefillReport()
        let hidden = try model.prefill(tokens, attention: .exact, report: &report)
        if let path { try ExactHiddenCache.save(hidden, path: path, tokens: tokens, dim: dim) }
        return hidden
    }

    /// `KL(softmax(p) || softmax(q))` of two logit rows, in nats.
    static func divergence(_ p: UnsafeBufferPointer<Float>, _ q: UnsafeBufferPointer<Float>) -> Double {
        func logSumExp(_ x: UnsafeBufferPointer<Float>) -> Double {
            let m = x.max() ?? 0
            var sum = 0.0
            for v in x { sum += Foundation.exp(Double(v - m)) }
            return Double(m) + Foundation.log(sum)
        }
        let lp = logSumExp(p), lq = logSumExp(q)
        var kl = 0.0
        for i in 0..<p.count {
            let a = Double(p[i]) - lp
            kl += Foundation.exp(a) * (a - (Double(q[i]) - lq))
        }
        return kl
    }

    /// `log softmax(x)[target]` and the argmax of `x`.
    static func logSoftmax(_ x: UnsafeBufferPointer<Float>, target: Int) -> (Double, Int) {
        var m = -Float.infinity, arg = 0
        for i in 0..<x.count where x[i] > m { m = x[i]; arg = i }
        var sum = 0.0
        for i in 0..<x.count { sum += Double(Foundation.exp(x[i] - m)) }
        return (Double(x[target] - m) - Foundation.log(sum), arg)
    }

    func generate() throws {
        guard let prompt = args.string("prompt") else { throw ModelError.usage("generate needs --prompt TEXT") }
        let maxTokens = try args.int("max-tokens", default: 64)
        let mode = try attentionMode()
        let text = args.flag("raw") ? prompt
            : "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n\(prompt)<|im_end|>\n<|im_start|>assistant\n"
        let tokens = tokenizer.encode(text)
        let c = model.config
        // One cache per layer; in exact mode the caches' parameters are unused (attendExact).
        var caches: [SpargeKVCache] = []
        for l in 0..<c.layers {
            var p = try mode.parameters(layer: l, heads: c.heads) ?? SpargeParameters.recommended
            p.causal = true
            caches.append(try SpargeKVCache(heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim,
                                            capacity: tokens.count + maxTokens, maxQueryLength: 1, parameters: p))
        }
        progress("generate: prompt of \(tokens.count) tokens, attention \(mode.name)")
        var report = LlamaModel.PrefillReport()
        let h = try model.prefill(tokens, attention: mode, caches: caches, report: &report)
        progress("prefill: " + report.timings.summary)
        var logits = [Float](repeating: 0, count: c.vocab)
        model.logits(h, rows: (tokens.count - 1)..<tokens.count, into: &logits)
        var next = Self.argmax(logits)
        let stops = Set([tokenizer.eosID, tokenizer.encode("<|im_end|>").first].compactMap { $0 })
        var generated: [Int] = []
        var printed = 0
        var timings = PhaseTimings()
        let t0 = PhaseTimings.now()
        let exact: Bool = if case .exact = mode { true } else { false }
        while generated.count < maxTokens && !stops.contains(next) {
            generated.append(next)
            // Print whole UTF-8 characters as they complete.
            let bytes = tokenizer.decodeBytes(generated)
            if let s = String(validating: bytes[printed...], as: UTF8.self) {
                FileHandle.standardOutput.write(Data(s.utf8))
                printed = bytes.count
            }
            if generated.count == maxTokens { break }
            let hidden = try model.decode(next, position: tokens.count + generated.count - 1, caches: caches,
                                          exact: exact, timings: &timings)
            timings.measure(.projections) { model.logits(hidden, rows: 0..<1, into: &logits) }
            next = Self.argmax(logits)
        }
        print()
        let seconds = PhaseTimings.now() - t0
        progress(String(format: "decode: %d tokens in %.2f s (%.1f tokens/s); ", generated.count, seconds,
                        Double(generated.count) / max(seconds, 1e-9)) + timings.summary)
    }

    static func argmax(_ x: [Float]) -> Int {
        var best = 0
        for i in x.indices where x[i] > x[best] { best = i }
        return best
    }

    func dumpQKV() throws {
        let context = try args.int("context", default: 2048)
        guard let dir = args.string("output") else { throw ModelError.usage("dump-qkv needs --output DIR") }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tokens = try textTokens(count: context)
        let c = model.config, width = c.qkvWidth, d = c.headDim
        var report = LlamaModel.PrefillReport()
        _ = try model.prefill(tokens, attention: .exact, report: &report) { layer, qkv in
            // Fused rows [N, H + 2 Hkv, D] to B,H,N,D tensors.
            func heads(_ first: Int, _ count: Int) -> [Float] {
                var out = [Float](repeating: 0, count: count * context * d)
                for h in 0..<count {
                    for t in 0..<context {
                        let src = t * width + (first + h) * d, dst = (h * context + t) * d
                        for j in 0..<d { out[dst + j] = qkv[src + j] }
                    }
                }
                return out
            }
            var file = try SafeTensorsFile(metadata: ["layer": AttentionMode.layerName(layer), "tokens": "\(context)"])
            try file.insert(Tensor(floats: heads(0, c.heads), shape: [1, c.heads, context, d]), named: "q")
            try file.insert(Tensor(floats: heads(c.heads, c.kvHeads), shape: [1, c.kvHeads, context, d]), named: "k")
            try file.insert(Tensor(floats: heads(c.heads + c.kvHeads, c.kvHeads), shape: [1, c.kvHeads, context, d]), named: "v")
            let path = "\(dir)/layer\(layer).safetensors"
            try file.write(path: path)
            progress("wrote \(path)")
        }
    }

    func logits() throws {
        let context = try args.int("context", default: 64)
        guard let output = args.string("output") else { throw ModelError.usage("logits needs --output OUT.safetensors") }
        let mode = try attentionMode()
        let tokens = try textTokens(count: context)
        var report = LlamaModel.PrefillReport()
        let h = try model.prefill(tokens, attention: mode, report: &report)
        var logits = [Float](repeating: 0, count: context * model.config.vocab)
        model.logits(h, rows: 0..<context, into: &logits)
        var file = try SafeTensorsFile()
        try file.insert(Tensor(floats: tokens.map(Float.init), shape: [context]), named: "tokens")
        try file.insert(Tensor(floats: logits, shape: [context, model.config.vocab]), named: "logits")
        try file.write(path: output)
        print("wrote \(output): \(context) tokens, logits [\(context), \(model.config.vocab)]")
    }
}
