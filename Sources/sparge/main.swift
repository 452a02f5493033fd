import Foundation
import SpargeAttn
import SpargeFormats
import SpargeTuning

// `sparge`: command-line front end of the SpargeAttn library.
// Exit status: 0 success, 2 bad arguments, bad files or any library error (one line on
// stderr). Errors are values all the way up, so bad input never crashes the tool.

let usage = """
    sparge: SpargeAttn (sparse + INT8 attention) on the CPU

    Usage:
      sparge demo [options]     sparse vs exact attention on a built-in video-like workload
      sparge run --input IN.safetensors [options]
                                 sparse (or dense) attention of q, k, v stored in a file
      sparge bench [options]    speed of the dense and sparse paths per shape and input (table)
      sparge generate --output OUT.safetensors [options]
                                 write the built-in workload's q, k, v to a file
      sparge mask --input IN.safetensors [--name NAME | --predict] [--png OUT.png] [--text]
                                 picture (PNG) or text of a stored or predicted block map
      sparge check --q Q --k K --v V --gpu-output O [--preset P] [options]
                                 verify a GPU attention output against the CPU (exit 0 pass, 1 fail)
      sparge cuda-check [--golden DIR]
                                 GPU backend vs CPU path: identical masks and INT8, close outputs
                                 (builds with --traits default,CUDA)
      sparge tune --input IN.safetensors [--input ...] [--l1 0.07 --pv-l1 0.08] [--output tuned.json]
                                 tune theta, tau and lambda per head under an error bound
      sparge evaluate --input IN.safetensors [--config tuned.json] [options]
                                 per-head error and density of sparse attention against exact
      sparge selftest           every CPU kernel level of this machine against float64 (exit 0 pass)
      sparge help [COMMAND]     this text, or a command's options

    Run 'sparge COMMAND --help' for the options of a command.
    Build: \(BuildInfo.detail), \(BuildInfo.configuration).
    """

/// Prints one line on stderr and exits with status 2.
func fail(_ message: String) -> Never {
    let line = message.split(whereSeparator: \.isNewline).joined(separator: " ")
    FileHandle.standardError.write(Data("sparge: error: \(line)\n".utf8))
    exit(2)
}

func printHelp(_ command: String?) {
    switch command {
    case "demo": print(DemoCommand.usage)
    case "run": print(RunCommand.usage)
    case "bench": print(BenchCommand.usage)
    case "generate": print(GenerateCommand.usage)
    case "mask": print(MaskCommand.usage)
    case "check": print(CheckCommand.usage)
    case "selftest": print(SelfTestCommand.usage)
    case "cuda-check": print(CUDACheckCommand.usage)
    case "tune": print(TuneCommand.usage)
    case "evaluate": print(EvaluateCommand.usage)
    case nil: print(usage)
    case let other?: fail("unknown command '\(other)'; the commands are demo, run, bench, generate, mask, check, cuda-check, tune, evaluate, selftest and help")
    }
}

let argv = Array(CommandLine.arguments.dropFirst())
guard let command = argv.first else {
    fail("no command given; the commands are demo, run, bench, generate, mask, check, cuda-check, tune, evaluate, selftest and help (see sparge --help)")
}
let rest = Array(argv.dropFirst())

do {
    switch command {
    case "--help", "-h":
        printHelp(nil)
    case "help":
        printHelp(rest.first)
    case "--version":
        print("sparge (SpargeAttn), \(BuildInfo.detail)")
    case "demo":
        try DemoCommand(arguments: rest)?.execute()
    case "run":
        try RunCommand(arguments: rest)?.execute()
    case "generate":
        try GenerateCommand(arguments: rest)?.execute()
    case "bench":
        let at = rest.firstIndex(of: "--backend")
        if try Backend(at.flatMap { $0 + 1 < rest.count ? rest[$0 + 1] : nil }) == .cuda {
            try CUDABenchCommand(arguments: rest)?.execute()
        } else {
            // The CPU bench takes no --backend: drop that pair only (a bare one stays, and is refused).
            var cpuArguments = rest
            if let at, at + 1 < rest.count { cpuArguments.removeSubrange(at...(at + 1)) }
            try BenchCommand(arguments: cpuArguments)?.execute()
        }
    case "selftest":
        if try SelfTestCommand(arguments: rest)?.execute() == false { exit(1) }
    case "cuda-check":
        if try CUDACheckCommand(arguments: rest)?.execute() == false { exit(1) }
    case "mask":
        try MaskCommand(arguments: rest)?.execute()
    case "check":
        if try CheckCommand(arguments: rest)?.execute() == false { exit(1) }
    case "tune":
        try TuneCommand(arguments: rest)?.execute()
    case "evaluate":
        try EvaluateCommand(arguments: rest)?.execute()
    default:
        fail("unknown command '\(command)'; the commands are demo, run, bench, generate, mask, check, cuda-check, tune, evaluate, selftest and help (see sparge --help)")
    }
} catch let error as UsageError {
    fail(error.message)
} catch let error as SpargeError {
    fail(error.description)
} catch let error as TensorFileError {
    fail(error.description)
} catch let error as TuningError {
    fail(error.description)
} catch {
    fail(String(describing: error))
}
