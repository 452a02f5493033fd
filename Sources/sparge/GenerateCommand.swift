import Foundation
import SpargeAttn
import SpargeFormats
import SpargeWorkloads

/// `sparge generate`: writes the built-in workload's q, k, v to a safetensors file, so that
/// `sparge run` and outside tools (for example the authors' GPU code) see the same inputs.
struct GenerateCommand {
    static let usage = """
        Usage: sparge generate --output OUT.safetensors [--workload NAME] [--n N] [--d D]
                               [--heads H] [--batch B] [--seed S] [--dtype f32|f16|bf16]

        Writes q, k, v (B,H,N,D) of a built-in workload (see sparge demo --help), with the
        workload's description in the metadata.

          --output PATH    file to write (required)
          --workload NAME  mild, medium (default), sharp, gaussian, or lm (RoPE language-model-
                           like: use it with --causal; heads cycle local, retrieval, sink, mixed)
          --n N, --d D, --heads H, --batch B
                           tokens (default 4096), head dim (64), heads (4), batch (1)
          --seed S         seed of the generator (default 24301)
          --dtype T        f32 (default), f16 or bf16
        """

    var workload: VideoLikeWorkload
    var languageModel: LanguageModelLikeWorkload?
    var workloadName: String
    var output: String
    var dtype: TensorDType

    init?(arguments: [String]) throws {
        guard let a = try Arguments.parse(arguments, flags: [], options: ["output", "workload", "n", "d", "heads", "batch", "seed", "dtype"],
                                          usage: Self.usage) else { return nil }
        guard let output = a.string("output") else { throw UsageError("generate needs --output OUT.safetensors (see sparge generate --help)") }
        self.output = output
        workloadName = a.string("workload") ?? "medium"
        let isLM = workloadName == "lm"
        guard var w = isLM ? VideoLikeWorkload.medium : DemoCommand.workload(named: workloadName) else {
            throw UsageError("--workload '\(workloadName)' is not one of mild, medium, sharp, gaussian, lm")
        }
        w.tokens = try a.int("n", in: 1...1_048_576) ?? w.tokens
        w.headDim = try a.int("d", in: 1...256) ?? w.headDim
        w.heads = try a.int("heads", in: 1...1024) ?? w.heads
        w.batch = try a.int("batch", in: 1...1024) ?? w.batch
        if let s = a.string("seed") {
            guard let x = UInt64(s) else { throw UsageError("--seed '\(s)' is not a non-negative integer") }
            w.seed = x
        }
        workload = w
        // q, k, v as Float while generating, as tensors, and as the file's bytes (about 3 x 12 bytes an element).
        try MemoryLimit.check([w.batch, w.heads, w.tokens, w.headDim, 3, 12], what: "generate's q, k, v and file",
                              options: "--n, --d, --heads or --batch")
        if isLM {
            languageModel = LanguageModelLikeWorkload(batch: w.batch, heads: w.heads, tokens: w.tokens, headDim: w.headDim,
                                                      seed: w.seed)
        }
        switch (a.string("dtype") ?? "f32").lowercased() {
        case "f32", "float32": dtype = .float32
        case "f16", "float16": dtype = .float16
        case "bf16", "bfloat16": dtype = .bfloat16
        case let other: throw UsageError("--dtype '\(other)' is not f32, f16 or bf16")
        }
    }

    func execute() throws {
        try checkOutput(output, option: "--output", inputs: [])
        let t = try languageModel?.generate() ?? workload.generate()
        let s = t.shape
        let dims = [s.batch, s.heads, s.queryLength, s.headDim]
        func tensor(_ x: [Float]) throws -> Tensor {
            switch dtype {
            case .float16: return try Tensor(float16: x, shape: dims)
            case .bfloat16: return try Tensor(bfloat16: x, shape: dims)
            default: return try Tensor(floats: x, shape: dims)
            }
        }
        let file = try SafeTensorsFile(
            tensors: ["q": try tensor(t.q), "k": try tensor(t.k), "v": try tensor(t.v)],
            metadata: ["workload": "\(workloadName): \(languageModel.map { "\($0)" } ?? "\(workload)")", "seed": "\(workload.seed)"])
        try file.write(path: output)
        print(JSONValue.object([
            ("output", .string(output)), ("workload", .string(workloadName)),
            ("shape", .array(dims.map { .int($0) })), ("dtype", .string(dtype.rawValue)),
        ]).text)
    }
}
