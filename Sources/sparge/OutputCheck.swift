import SpargeAttn
import SpargeFormats

/// Refuses an output path before any work is done: the same file as an input (through links
/// too), a device, FIFO or directory, or a missing or read-only directory (exit 2).
func checkOutput(_ path: String, option: String, inputs: [String]) throws {
    do { try FileSafety.checkOutput(path, option: option, inputs: inputs) } catch {
        throw UsageError("cannot write \(option) '\(path)': \(error.reason)")
    }
}

/// Refuses an input that is not a readable regular file (a device would be read forever).
func checkInput(_ path: String, option: String) throws {
    do { try FileSafety.checkInput(path) } catch {
        throw UsageError("cannot read \(option) '\(path)': \(error.reason)")
    }
}
